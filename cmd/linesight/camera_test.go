package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linesight/linesight/internal/rgb"
)

func TestCaptureAndProbe(t *testing.T) {
	src := t.TempDir()
	for i := 0; i < 3; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 20, 10))
		for p := range img.Pix {
			img.Pix[p] = uint8(40 * (i + 1))
		}
		img.Set(5, 2, color.RGBA{1, 2, 3, 255})
		f, _ := os.Create(filepath.Join(src, "s"+string(rune('0'+i))+".png"))
		png.Encode(f, img)
		f.Close()
	}
	out := runOK(t, "camera", "probe", filepath.Join(src, "s%d.png"), "--frames", "3")
	for _, want := range []string{"(sequence)", "image-sequence", "resolution  20x10", "interval"} {
		if !strings.Contains(out, want) {
			t.Errorf("probe output lacks %q:\n%s", want, out)
		}
	}
	dst := filepath.Join(t.TempDir(), "frames")
	out = runOK(t, "capture", filepath.Join(src, "s%d.png"), "--count", "2", "--out", dst, "--roi", "5,2,4,3")
	if !strings.Contains(out, "saved 2 frames") {
		t.Errorf("capture output: %s", out)
	}
	files, _ := filepath.Glob(filepath.Join(dst, "*.png"))
	if len(files) != 2 {
		t.Fatalf("%d files saved", len(files))
	}
	img, err := rgb.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if img.W != 4 || img.H != 3 || img.At(0, 0) != (color.RGBA{1, 2, 3, 255}) {
		t.Errorf("saved frame %dx%d, pixel %v", img.W, img.H, img.At(0, 0))
	}
}
