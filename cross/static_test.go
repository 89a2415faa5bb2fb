package cross

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// staticBinary is cross/static.sh's binary for arch, built by `make
// test-static` before it runs this test (LINESIGHT_STATIC=1).
func staticBinary(t *testing.T, arch string) string {
	t.Helper()
	if os.Getenv("LINESIGHT_STATIC") == "" {
		t.Skip("skipping: the static builds are checked by `make test-static`, which builds them first (LINESIGHT_STATIC=1)")
	}
	p, err := filepath.Abs(filepath.Join("..", "bin", "linesight-static-"+arch))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (make static-%s builds it)", p, err, arch)
	}
	return p
}

// inspectScores runs inspect --json on frames and returns image base
// name -> "verdict score".
func inspectScores(t *testing.T, tg target, dir, db string, frames []string) map[string]string {
	t.Helper()
	out := tg.runIn(t, dir, append([]string{"inspect", "--db", db, "--json"}, frames...)...)
	res := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var r struct {
			Image   string  `json:"image"`
			Verdict string  `json:"verdict"`
			Score   float64 `json:"score"`
		}
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s: decoding inspect --json: %v", tg.name, err)
		}
		res[filepath.Base(r.Image)] = fmt.Sprintf("%s %.17g", r.Verdict, r.Score)
	}
	if len(res) != len(frames) {
		t.Fatalf("%s: %d results for %d frames", tg.name, len(res), len(frames))
	}
	return res
}

func (tg target) runIn(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	argv := append(append(append([]string{}, tg.pre...), tg.bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), tg.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", tg.name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// pixels decodes a PNG into its raw RGBA bytes.
func pixels(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%v:", b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			buf.Write([]byte{byte(r >> 8), byte(g >> 8), byte(bl >> 8), byte(a >> 8)})
		}
	}
	return buf.String()
}

func pngs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no PNG in %s (%v)", dir, err)
	}
	sort.Strings(m)
	return m
}

// TestStaticExecSource: the static arm64 binary (CGO_ENABLED=0, nogocv),
// under qemu as a Cortex-A72 and a Cortex-A76, and the static armhf binary
// (GOARM=7) as a Cortex-A7 (a Raspberry Pi 2, or a Pi 3/4 running a 32-bit
// OS), capture frames from an exec: source whose child is ffmpeg streaming
// MJPEG (qemu-user hands execve to the host kernel, so the amd64 ffmpeg
// runs natively, no binfmt needed), and inspect them with the scores of
// the static amd64 binary:
// the same frames as amd64 captures from the same source, and the same
// verdicts and scores to the last bit on those frames (the engine is exact
// integer arithmetic, as TestCrossTopFive asserts for the GoCV builds).
func TestStaticExecSource(t *testing.T) {
	amd64, arm64, armhf := staticBinary(t, "amd64"), staticBinary(t, "arm64"), staticBinary(t, "armhf")
	for _, tool := range []string{"qemu-aarch64-static", "qemu-arm-static", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s is not installed (make deps installs it)", tool)
		}
	}
	native := target{name: "amd64 (static)", bin: amd64}
	foreign := []target{
		{"arm64 static (cortex-a72)", arm64, []string{"qemu-aarch64-static", "-cpu", "cortex-a72"}, nil},
		{"arm64 static (cortex-a76)", arm64, []string{"qemu-aarch64-static", "-cpu", "cortex-a76"}, nil},
		{"armhf static (cortex-a7)", armhf, []string{"qemu-arm-static", "-cpu", "cortex-a7"}, nil},
	}
	a76 := foreign[1]
	dir := t.TempDir()

	// A small line, a random-weight backbone and a bank, on amd64.
	native.runIn(t, dir, "sample-line", "line", "--train", "12", "--test-good", "2", "--per-defect", "1")
	native.runIn(t, dir, "model", "build", "--random-init", "--seed", "1", "--calib", "line/train/good", "--calib-count", "8", "--out", "m.tflite")
	native.runIn(t, dir, "bank", "build", "--model", "m.tflite", "--images", "line/train/good", "--db", "b.db", "--seed", "1")

	// The test parts, numbered for ffmpeg's image2 pattern, streamed in a
	// loop as MJPEG at 10 frames/s.
	tests, _ := filepath.Glob(filepath.Join(dir, "line", "test", "*", "*.png"))
	sort.Strings(tests)
	if err := os.Mkdir(filepath.Join(dir, "feed"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, p := range tests {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "feed", fmt.Sprintf("%03d.png", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := "exec:ffmpeg -loglevel error -stream_loop -1 -re -framerate 10 -i feed/%03d.png -f mjpeg -q:v 2 -"

	// amd64's frames: two rounds of the loop show every part.
	native.runIn(t, dir, "capture", src, "--count", fmt.Sprint(4*len(tests)), "--out", "cap-amd64")
	want := map[string]bool{}
	for _, p := range pngs(t, filepath.Join(dir, "cap-amd64")) {
		want[pixels(t, p)] = true
	}
	if len(want) != len(tests) {
		t.Fatalf("amd64 captured %d distinct frames from %d parts", len(want), len(tests))
	}

	for i, tg := range foreign {
		began := time.Now()
		out := fmt.Sprintf("cap-%d", i)
		tg.runIn(t, dir, "capture", src, "--count", "3", "--out", out)
		frames := pngs(t, filepath.Join(dir, out))
		rel := make([]string, len(frames))
		for j, p := range frames {
			if !want[pixels(t, p)] {
				t.Errorf("%s: %s is none of amd64's frames from the same source", tg.name, filepath.Base(p))
			}
			rel[j], _ = filepath.Rel(dir, p)
		}
		got := inspectScores(t, tg, dir, "b.db", rel)
		ref := inspectScores(t, native, dir, "b.db", rel)
		for _, f := range rel {
			k := filepath.Base(f)
			if got[k] != ref[k] {
				t.Errorf("%s: %s: %s, amd64 %s", tg.name, k, got[k], ref[k])
			} else {
				fmt.Printf("static: %s: %s from exec:ffmpeg: %s = amd64\n", tg.name, k, got[k])
			}
		}
		// How long a board's emulation takes, for the record (not a test).
		fmt.Printf("static: %s: 3 frames captured and inspected in %v\n", tg.name, time.Since(began).Round(time.Second))
	}

	// And amd64's own frames, one per part (good and each defect), inspected
	// as a Cortex-A76 (as a Cortex-A72, without dotprod, or as a 32-bit
	// Cortex-A7, qemu takes seconds a frame: their three frames above are
	// enough).
	var parts []string
	seen := map[string]bool{}
	for _, p := range pngs(t, filepath.Join(dir, "cap-amd64")) {
		if px := pixels(t, p); !seen[px] {
			seen[px] = true
			r, _ := filepath.Rel(dir, p)
			parts = append(parts, r)
		}
	}
	ref := inspectScores(t, native, dir, "b.db", parts)
	for _, tg := range []target{a76} {
		got := inspectScores(t, tg, dir, "b.db", parts)
		for k, v := range ref {
			if got[k] != v {
				t.Errorf("%s: amd64's %s: %s, amd64 %s", tg.name, k, got[k], v)
			}
		}
		fmt.Printf("static: %s: inspect of amd64's %d frames (one per part) = amd64's verdicts and scores\n", tg.name, len(parts))
	}
}
