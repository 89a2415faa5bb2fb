package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linesight/linesight/internal/testenv"
)

// sharedMobileNet is the shared TF2 MobileNetV2 (int8 inside, uint8 in and
// out); the test skips without it.
func sharedMobileNet(t *testing.T) string {
	return testenv.SharedFile(t, "models/mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite")
}

func TestHelpListsCommands(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"help"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"model info", "model run"} {
		if !strings.Contains(out.String(), c) {
			t.Fatalf("help does not list %q:\n%s", c, out.String())
		}
	}
	if err := run([]string{"nonsense"}, &out); err == nil {
		t.Fatal("unknown command accepted")
	}
}

func TestModelRunCat(t *testing.T) {
	mobilenet := sharedMobileNet(t)
	var out bytes.Buffer
	if err := run([]string{"model", "run", mobilenet, testenv.SharedFile(t, "images/cat.bmp"), "--json", "--top", "3"}, &out); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Image string
		Top   []struct {
			Index int
			Label string
			Score float64
		}
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(res.Top) != 3 || res.Top[0].Index != 286 || res.Top[0].Label != "Egyptian cat" {
		t.Fatalf("top = %+v", res.Top)
	}
}

func TestModelInfoTensors(t *testing.T) {
	mobilenet := sharedMobileNet(t)
	var out bytes.Buffer
	if err := run([]string{"model", "info", mobilenet, "--tensors"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"input  0:", "CONV_2D v3", "DEPTHWISE_CONV_2D v3", "tensors (index", "per-channel"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("info lacks %q", want)
		}
	}
}

// TestModelRunDumpLoadsInNumPy checks the .npy files with NumPy itself.
func TestModelRunDumpLoadsInNumPy(t *testing.T) {
	mobilenet := sharedMobileNet(t)
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy").Run(); err != nil {
		t.Skip("skipping: /usr/bin/python3 with numpy is not installed (make deps)")
	}
	dir := t.TempDir()
	var out bytes.Buffer
	err := run([]string{"model", "run", mobilenet, testenv.SharedFile(t, "images/cat.bmp"), "--dump", dir, "--tap", "tfl.quantize"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.npy"))
	if len(files) != 3 { // input, tap, output
		t.Fatalf("dumped %v", files)
	}
	script := `import numpy as np, sys, json
a = np.load(sys.argv[1]); q = np.load(sys.argv[2]); o = np.load(sys.argv[3])
meta = json.load(open(sys.argv[2][:-4] + ".json"))
assert a.dtype == np.uint8 and a.shape == (1, 224, 224, 3), a.shape
assert q.dtype == np.int8 and list(q.shape) == meta["shape"]
assert (q.astype(int) == a.astype(int) - 128).all()   # uint8 -> int8 with zp 127 -> -1
assert int(o.argmax()) == 286
print("ok")`
	cmd := exec.Command("/usr/bin/python3", "-c", script,
		filepath.Join(dir, "cat.input.npy"), filepath.Join(dir, "cat.tfl_quantize.npy"), filepath.Join(dir, "cat.Identity.npy"))
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "ok") {
		t.Fatalf("numpy check: %v\n%s", err, b)
	}
}

func TestModelRunTFLiteBackendWithoutTag(t *testing.T) {
	mobilenet := sharedMobileNet(t)
	var out bytes.Buffer
	err := run([]string{"model", "run", mobilenet, testenv.SharedFile(t, "images/cat.bmp"), "--backend", "tflite"}, &out)
	if err != nil && !strings.Contains(err.Error(), "built without") {
		t.Fatalf("unexpected error: %v", err)
	}
}
