package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model/resnet"
	"github.com/linesight/linesight/model/tflite"
)

func TestModelBuildCommand(t *testing.T) {
	if testenv.Race || testing.Short() {
		t.Skip("skipping model build under -race or -short (calibration runs the float graph); `make test-accept` runs it")
	}
	bottle := testenv.SharedFile(t, "data/mvtec_ad/bottle")
	calibSrc, _ := filepath.Glob(filepath.Join(bottle, "train/good/00[0-2].png"))
	if len(calibSrc) != 3 {
		t.Fatalf("%s/train/good has %d of the images 000-002", bottle, len(calibSrc))
	}
	dir := t.TempDir()
	calib := filepath.Join(dir, "calib")
	os.MkdirAll(calib, 0o755)
	for _, p := range calibSrc {
		abs, _ := filepath.Abs(p)
		os.Symlink(abs, filepath.Join(calib, filepath.Base(p)))
	}
	out := filepath.Join(dir, "r18.tflite")
	text := runOK(t, "model", "build", "--random-init", "--seed", "4", "--calib", calib, "--out", out, "--calib-method", "percentile")
	for _, want := range []string{"WARNING: --random-init", "NOT ImageNet features", "resnet18 int8 to layer3", "calibrated on 3 images (percentile)", "output layer2", "output layer3", "MiB"} {
		if !strings.Contains(text, want) {
			t.Errorf("model build output lacks %q:\n%s", want, text)
		}
	}
	m, err := tflite.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	p := resnet.ReadProvenance(m)
	if p == nil || !p.RandomWeights || p.Seed == nil || *p.Seed != 4 || p.Calibration.Method != "percentile" || !strings.Contains(m.Description, "RANDOM WEIGHTS") {
		t.Errorf("provenance %+v, description %q", p, m.Description)
	}
	info := runOK(t, "model", "info", out)
	if !strings.Contains(info, "RANDOM WEIGHTS") || !strings.Contains(info, `"layer3" [1 14 14 256] INT8`) {
		t.Errorf("model info:\n%s", info)
	}

	// A real torch.save checkpoint (zip format) with --float and --taps.
	if err := exec.Command("/usr/bin/python3", "-c", "import torch").Run(); err != nil {
		t.Skip("skipping the checkpoint half: /usr/bin/python3 cannot import torch")
	}
	ckpt := filepath.Join(dir, "r18.pth")
	if b, err := exec.Command("/usr/bin/python3", "../../model/resnet/testdata/torch_ref.py", "make", "1", ckpt, filepath.Join(dir, "legacy.pth")).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	fout := filepath.Join(dir, "r18f.tflite")
	text = runOK(t, "model", "build", "--from", ckpt, "--float", "--taps", "layer1,layer2", "--out", fout)
	if !strings.Contains(text, "resnet18 float32 to layer2") || strings.Contains(text, "NOT ImageNet") {
		t.Errorf("float build output:\n%s", text)
	}
	info = runOK(t, "model", "info", fout)
	if !strings.Contains(info, `"layer1" [1 56 56 64] FLOAT32`) || !strings.Contains(info, `"layer2" [1 28 28 128] FLOAT32`) {
		t.Errorf("float model info:\n%s", info)
	}
	// A checkpoint of another architecture is refused with the key named.
	var buf strings.Builder
	err = run([]string{"model", "build", "--from", ckpt, "--arch", "resnet34", "--float", "--out", filepath.Join(dir, "x.tflite")}, &buf)
	if err == nil || !strings.Contains(err.Error(), `"layer1.2.conv1.weight"`) {
		t.Errorf("resnet34 from a resnet18 checkpoint: %v", err)
	}
}
