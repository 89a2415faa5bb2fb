package resnet

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linesight/linesight/internal/npy"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/tflite"
	"github.com/linesight/linesight/model/torchckpt"
)

func TestStateDictMismatchesAreNamed(t *testing.T) {
	arch := Archs["resnet18"]
	base := RandomStateDict(arch, 1)
	for _, c := range []struct {
		name, want string
		edit       func(sd torchckpt.StateDict)
	}{
		{"missing downsample", `"layer2.0.downsample.0.weight"`, func(sd torchckpt.StateDict) { delete(sd, "layer2.0.downsample.0.weight") }},
		{"wrong shape", `"layer1.1.conv2.weight" has shape [64 64 3 1]`, func(sd torchckpt.StateDict) {
			sd["layer1.1.conv2.weight"] = &torchckpt.Tensor{Shape: []int{64, 64, 3, 1}, Data: make([]float32, 64*64*3)}
		}},
		{"missing running var", `"layer3.1.bn2.running_var"`, func(sd torchckpt.StateDict) { delete(sd, "layer3.1.bn2.running_var") }},
		{"NaN", `"bn1.bias" holds NaN`, func(sd torchckpt.StateDict) {
			sd["bn1.bias"] = &torchckpt.Tensor{Shape: []int{64}, Data: make([]float32, 64)}
			sd["bn1.bias"].Data[3] = float32(math.NaN())
		}},
		{"negative variance", "negative running variance", func(sd torchckpt.StateDict) {
			sd["layer1.0.bn1.running_var"] = &torchckpt.Tensor{Shape: []int{64}, Data: make([]float32, 64)}
			sd["layer1.0.bn1.running_var"].Data[0] = -1
		}},
	} {
		sd := maps.Clone(base) // edits replace tensors, never change base's
		c.edit(sd)
		_, err := FromStateDict(sd, arch, 3)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %s", c.name, err, c.want)
		}
	}
	// layer4 is not needed for taps up to layer3: a checkpoint without it loads.
	sd := maps.Clone(base)
	for k := range sd {
		if strings.HasPrefix(k, "layer4.") {
			delete(sd, k)
		}
	}
	if _, err := FromStateDict(sd, arch, 3); err != nil {
		t.Errorf("layer4 missing but unused: %v", err)
	}
}

// TestFoldingByHand: a BatchNorm with γ=2, β=1, μ=3, σ²=3 (ε aside) scales
// the weights by 2/√(3+ε) and gives the bias 1 − 2·3/√(3+ε).
func TestFoldingByHand(t *testing.T) {
	sd := torchckpt.StateDict{
		"c.weight": {Shape: []int{1, 1, 1, 1}, Data: []float32{0.5}},
		"b.weight": {Shape: []int{1}, Data: []float32{2}}, "b.bias": {Shape: []int{1}, Data: []float32{1}},
		"b.running_mean": {Shape: []int{1}, Data: []float32{3}}, "b.running_var": {Shape: []int{1}, Data: []float32{3}},
	}
	c, err := foldConv(sd, "c", "b", 1, 1, 1, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	g := 2 / math.Sqrt(3+BNEps)
	if math.Abs(float64(c.W[0])-0.5*g) > 1e-6 || math.Abs(float64(c.B[0])-(1-3*g)) > 1e-6 {
		t.Errorf("folded w=%v b=%v, want %v %v", c.W[0], c.B[0], 0.5*g, 1-3*g)
	}
}

func python(t *testing.T) string {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch, numpy").Run(); err != nil {
		t.Skipf("skipping the comparison with PyTorch: %s cannot import torch (make deps installs python3-torch): %v", py, err)
	}
	return py
}

// TestAgainstPyTorch builds a torch-made checkpoint (random weights,
// randomised BatchNorm statistics) in int8 and float, and compares layer2
// and layer3 with torch's on bottle images.
func TestAgainstPyTorch(t *testing.T) {
	if testenv.Race || testing.Short() {
		t.Skip("skipping the PyTorch comparison under -race or -short (calibration runs the float graph); `make test-accept` runs it")
	}
	bottle := testenv.SharedFile(t, "data/mvtec_ad/bottle")
	py := python(t)
	dir := t.TempDir()
	zipPath, legacyPath := filepath.Join(dir, "r18.pth"), filepath.Join(dir, "r18_legacy.pth")
	if out, err := exec.Command(py, "testdata/torch_ref.py", "make", "3", zipPath, legacyPath).CombinedOutput(); err != nil {
		t.Fatalf("torch_ref.py make: %v\n%s", err, out)
	}
	sd, err := torchckpt.Load(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := torchckpt.Load(legacyPath)
	if err != nil {
		t.Fatal(err)
	}
	// 102 float tensors: torch's 122 entries minus the 20 integer
	// num_batches_tracked buffers, which are skipped.
	if len(sd) != 102 || len(legacy) != 102 {
		t.Fatalf("state dicts hold %d (zip) and %d (legacy) float tensors, want 102", len(sd), len(legacy))
	}
	for k, v := range sd {
		w, ok := legacy[k]
		if !ok || len(w.Data) != len(v.Data) {
			t.Fatalf("legacy checkpoint differs at %q", k)
		}
		for i := range v.Data {
			if v.Data[i] != w.Data[i] {
				t.Fatalf("legacy checkpoint differs at %q[%d]", k, i)
			}
		}
	}
	calib, _ := filepath.Glob(filepath.Join(bottle, "train/good/0[0-7]0.png"))
	opts := Options{Calib: calib, Source: zipPath, Threads: 2}
	qm, rep, err := Build(sd, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Float = true
	fm, _, err := Build(sd, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("calibrated on %d images in %.1fs", rep.Images, rep.CalibTime.Seconds())
	// Both must survive our writer and reader as user files do.
	for _, m := range []**tflite.Model{&qm, &fm} {
		raw, err := tflite.Write(*m)
		if err != nil {
			t.Fatal(err)
		}
		if *m, err = tflite.Read(raw); err != nil {
			t.Fatal(err)
		}
	}
	if p := ReadProvenance(qm); p == nil || p.Type != "int8" || p.Calibration.Images != 8 || p.RandomWeights {
		t.Errorf("provenance %+v", p)
	}

	test, _ := filepath.Glob(filepath.Join(bottle, "test/*/00[0-2].png"))
	var pixels []byte
	outs := map[string][]float32{}
	for _, kind := range []string{"int8", "float"} {
		m := qm
		if kind == "float" {
			m = fm
		}
		ip, err := engine.NewInterpreter(m, engine.Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		feeder, _ := model.NewFeeder(ip.Input(), 0)
		for _, p := range test {
			img, err := rgb.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := feeder.Feed(ip, img); err != nil {
				t.Fatal(err)
			}
			if kind == "int8" {
				pixels = append(pixels, feeder.Scaled().Pix...)
			}
			if err := ip.Invoke(); err != nil {
				t.Fatal(err)
			}
			for i, o := range ip.Outputs() {
				raw := make([]byte, o.Bytes())
				ip.ReadOutput(i, raw)
				name := kind + "_" + o.Name
				for j := 0; j < o.Elements(); j++ {
					if kind == "int8" {
						outs[name] = append(outs[name], o.Dequantize(0, int64(int8(raw[j]))))
					} else {
						outs[name] = append(outs[name], math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:])))
					}
				}
			}
		}
		ip.Close()
	}
	n := len(test)
	if err := npy.WriteFile(filepath.Join(dir, "pixels.npy"), "|u1", []int{n, 224, 224, 3}, pixels); err != nil {
		t.Fatal(err)
	}
	for name, v := range outs {
		shape := []int{n, 28, 28, 128}
		if strings.HasSuffix(name, "layer3") {
			shape = []int{n, 14, 14, 256}
		}
		buf := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		}
		if err := npy.WriteFile(filepath.Join(dir, name+".npy"), "<f4", shape, buf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(py, "testdata/torch_ref.py", "compare", zipPath, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("torch_ref.py compare: %v\n%s", err, stderr.String())
	}
	var got map[string]struct {
		SQNR   float64 `json:"sqnr_db"`
		Cosine float64 `json:"cosine"`
		Rel    float64 `json:"rel_error"`
		MaxAbs float64 `json:"max_abs_error"`
	}
	if err := json.Unmarshal(res, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"int8_layer2", "int8_layer3", "float_layer2", "float_layer3"} {
		s := got[k]
		t.Logf("%-13s vs torch on %d bottle images: SQNR %.2f dB, cosine %.6f, relative error %.2e, max abs error %.3g", k, n, s.SQNR, s.Cosine, s.Rel, s.MaxAbs)
	}
	if s := got["int8_layer2"]; s.SQNR < 25 || s.Cosine < 0.99 {
		t.Errorf("int8 layer2: SQNR %.2f dB (want >= 25), cosine %.4f (want >= 0.99)", s.SQNR, s.Cosine)
	}
	if s := got["int8_layer3"]; s.SQNR < 20 || s.Cosine < 0.99 {
		t.Errorf("int8 layer3: SQNR %.2f dB (want >= 20), cosine %.4f (want >= 0.99)", s.SQNR, s.Cosine)
	}
	for _, k := range []string{"float_layer2", "float_layer3"} {
		if got[k].Rel > 1e-4 {
			t.Errorf("%s: relative error %.2e, want <= 1e-4", k, got[k].Rel)
		}
	}
}

// TestNonSquareInput: the builder writes a 64-wide, 96-high graph (float,
// random weights) whose layer3 is 4x6; the engine running the square 64x64
// build of the same weights at 96x64 (re-planned at load) gives the same
// bits on every tap as the graph written at that size.
func TestNonSquareInput(t *testing.T) {
	sd := RandomStateDict(Archs["resnet18"], 3)
	build := func(w, h int) *tflite.Model {
		m, _, err := Build(sd, Options{Input: w, InputH: h, Float: true, Random: true, Source: "random-init", Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tall, square := build(64, 96), build(64, 64)
	if p := ReadProvenance(tall); p == nil || p.Input != 64 || p.InputH != 96 {
		t.Fatalf("provenance %+v", p)
	}
	if p := ReadProvenance(square); p == nil || p.InputH != 0 {
		t.Fatalf("square provenance %+v", p)
	}
	taps := []string{"layer2", "layer3"}
	a, err := engine.NewInterpreter(tall, engine.Options{Threads: 2, Taps: taps})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := engine.NewInterpreter(square, engine.Options{Threads: 2, Taps: taps, InputH: 96, InputW: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := a.Outputs()[1].Shape; fmt.Sprint(got) != "[1 6 4 256]" {
		t.Fatalf("layer3 of the 64x96 graph is %v", got)
	}
	in := make([]byte, a.Input().Bytes())
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(in); i += 4 {
		binary.LittleEndian.PutUint32(in[i:], math.Float32bits(float32(rng.IntN(256))))
	}
	for _, ip := range []*engine.Interpreter{a, b} {
		if err := ip.SetInput(in); err != nil {
			t.Fatal(err)
		}
		if err := ip.Invoke(); err != nil {
			t.Fatal(err)
		}
	}
	for i, o := range a.Outputs() {
		x, y := make([]byte, o.Bytes()), make([]byte, b.Outputs()[i].Bytes())
		a.ReadOutput(i, x)
		b.ReadOutput(i, y)
		if !bytes.Equal(x, y) {
			t.Errorf("tap %s: the re-planned square model differs from the graph built at 64x96", taps[i])
		}
	}
}
