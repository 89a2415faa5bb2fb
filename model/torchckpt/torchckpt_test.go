package torchckpt

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestLoadBothFormats(t *testing.T) {
	for _, f := range []string{"testdata/zip.pth", "testdata/legacy.pth"} {
		sd, err := Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		// num_batches_tracked (int64) is skipped; "module." prefixes removed.
		if want := []string{"bn.running_var", "conv.weight", "fc.weight", "half"}; !slices.Equal(sd.Keys(), want) {
			t.Fatalf("%s: keys %v, want %v", f, sd.Keys(), want)
		}
		conv := sd["conv.weight"]
		if !slices.Equal(conv.Shape, []int{2, 3, 2, 2}) || conv.Data[0] != 0 || conv.Data[23] != 23 {
			t.Errorf("%s: conv.weight %v %v", f, conv.Shape, conv.Data)
		}
		// fc.weight was saved as the transpose of [[0 1 2] [3 4 5]]: a strided view.
		if fc := sd["fc.weight"]; !slices.Equal(fc.Shape, []int{3, 2}) || !slices.Equal(fc.Data, []float32{0, 3, 1, 4, 2, 5}) {
			t.Errorf("%s: fc.weight %v %v", f, fc.Shape, fc.Data)
		}
		if v := sd["bn.running_var"].Data; !slices.Equal(v, []float32{0.5, 2}) {
			t.Errorf("%s: float64 tensor %v", f, v)
		}
		if v := sd["half"].Data; !slices.Equal(v, []float32{1.5, -2.25}) {
			t.Errorf("%s: float16 tensor %v", f, v)
		}
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	zip, _ := os.ReadFile("testdata/zip.pth")
	legacy, _ := os.ReadFile("testdata/legacy.pth")
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"text", []byte("conv.weight = [1, 2, 3]\n")},
		{"truncated zip", zip[:len(zip)/2]},
		{"truncated legacy", legacy[:len(legacy)/2]},
		{"tar-like zero block", make([]byte, 1024)},
	} {
		p := filepath.Join(dir, c.name)
		os.WriteFile(p, c.data, 0o644)
		if _, err := Load(p); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: Load = %v, want ErrFormat", c.name, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.pth")); err == nil {
		t.Error("missing file accepted")
	}
}

// FuzzLoad: whatever the bytes, Load returns tensors or an error; it never
// panics (gopickle's panics are recovered) and never hangs.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{"testdata/zip.pth", "testdata/legacy.pth"} {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "in.pth")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sd, err := Load(p)
		if err != nil {
			return
		}
		for k, v := range sd {
			n := 1
			for _, d := range v.Shape {
				n *= d
			}
			if n != len(v.Data) {
				t.Fatalf("%q: shape %v but %d values", k, v.Shape, len(v.Data))
			}
		}
	})
}
