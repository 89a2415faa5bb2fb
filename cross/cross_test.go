package cross

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linesight/linesight/internal/testenv"
)

// The binaries under test, built by `make test-cross` before it runs this
// package (cross/build.sh amd64|arm64|armhf).
func binary(t *testing.T, arch string) string {
	t.Helper()
	if os.Getenv("LINESIGHT_CROSS") == "" {
		t.Skip("skipping: cross-built binaries are checked by `make test-cross`, which builds them first (LINESIGHT_CROSS=1)")
	}
	p, err := filepath.Abs(filepath.Join("..", "bin", "linesight-"+arch))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (make cross-%s builds it)", p, err, arch)
	}
	return p
}

func sysroot(t *testing.T, arch string) string {
	t.Helper()
	out, err := exec.Command("./sysroot.sh", "--path", arch).Output()
	if err != nil {
		t.Fatalf("cross/sysroot.sh --path %s: %v", arch, err)
	}
	return strings.TrimSpace(string(out))
}

// sharedDir is the shared folder beside the repository; the test skips
// when it or its MobileNetV2 models are missing.
func sharedDir(t *testing.T) string {
	testenv.SharedFile(t, "models/mobilenet_v2")
	return testenv.Shared(t)
}

// target is one way of running a binary: natively, or under qemu-user as
// a given CPU with the sysroot as its root for the loader and libraries.
type target struct {
	name string
	bin  string
	pre  []string
	env  []string
}

func targets(t *testing.T) (native target, foreign []target) {
	native = target{name: "amd64", bin: binary(t, "amd64")}
	arm64, armhf := binary(t, "arm64"), binary(t, "armhf")
	r64, r32 := sysroot(t, "arm64"), sysroot(t, "armhf")
	foreign = []target{
		{"arm64 (cortex-a72)", arm64, []string{"qemu-aarch64-static", "-cpu", "cortex-a72"}, []string{"QEMU_LD_PREFIX=" + r64}},
		{"arm64 (cortex-a76)", arm64, []string{"qemu-aarch64-static", "-cpu", "cortex-a76"}, []string{"QEMU_LD_PREFIX=" + r64}},
		{"armhf (cortex-a15)", armhf, []string{"qemu-arm-static", "-cpu", "cortex-a15"}, []string{"QEMU_LD_PREFIX=" + r32}},
	}
	return native, foreign
}

func (tg target) run(t *testing.T, args ...string) []byte {
	t.Helper()
	argv := append(append(append([]string{}, tg.pre...), tg.bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), tg.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", tg.name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

type classified struct {
	Image string `json:"image"`
	Top   []struct {
		Index int     `json:"index"`
		Score float64 `json:"score"`
	} `json:"top"`
}

// classify returns, per image, the top-5 "index:score" pairs: the engine is
// exact integer arithmetic, so every kernel on every architecture must give
// the same scores, not only the same order.
func classify(t *testing.T, tg target, model string, images []string) map[string][]string {
	t.Helper()
	out := tg.run(t, append([]string{"model", "run", model, "--json", "--top", "5", "--threads", "2"}, images...)...)
	res := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var c classified
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: decoding model run --json: %v", tg.name, err)
		}
		for _, k := range c.Top {
			res[filepath.Base(c.Image)] = append(res[filepath.Base(c.Image)], fmt.Sprintf("%d:%g", k.Index, k.Score))
		}
	}
	if len(res) != len(images) {
		t.Fatalf("%s: %d results for %d images", tg.name, len(res), len(images))
	}
	return res
}

// TestCrossTopFive: the cross-built binaries, run under qemu with their
// sysroots (so OpenCV and every library they link load from the Debian
// arm64/armhf archive), classify every shared photo with both shared
// MobileNetV2 models with the same top-5 classes as the amd64 build.
func TestCrossTopFive(t *testing.T) {
	native, foreign := targets(t)
	shared := sharedDir(t)
	images, _ := filepath.Glob(filepath.Join(shared, "images", "*.*"))
	var photos []string
	for _, p := range images {
		switch filepath.Ext(p) {
		case ".bmp", ".jpg", ".png":
			photos = append(photos, p)
		}
	}
	models := []string{"mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"}
	for _, m := range models {
		path := filepath.Join(shared, "models", "mobilenet_v2", m)
		want := classify(t, native, path, photos)
		for _, tg := range foreign {
			got := classify(t, tg, path, photos)
			for img, w := range want {
				if fmt.Sprint(got[img]) != fmt.Sprint(w) {
					t.Errorf("%s, %s, %s: top-5 %v, amd64 %v (index:score)", tg.name, m, img, got[img], w)
				}
			}
			fmt.Printf("cross: %s: %s: top-5 classes and scores of %d photos = amd64's\n", tg.name, m, len(photos))
		}
	}
}

// TestCrossGoCV: the cross-built binaries decode a video through OpenCV's
// videoio (FFmpeg backend, from the sysroot) to the same pixels as the
// amd64 build.
func TestCrossGoCV(t *testing.T) {
	native, foreign := targets(t)
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("skipping: ffmpeg is not installed (make deps installs it)")
	}
	dir := t.TempDir()
	video := filepath.Join(dir, "line.avi")
	if out, err := exec.Command("ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
		"-frames:v", "6", "-c:v", "mjpeg", video).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	grab := func(tg target, name string) image.Image {
		out := filepath.Join(dir, name)
		tg.run(t, "capture", video, "--count", "3", "--out", out)
		f, err := os.Open(filepath.Join(out, "frame_00003.png"))
		if err != nil {
			t.Fatalf("%s: %v", tg.name, err)
		}
		defer f.Close()
		img, _, err := image.Decode(f)
		if err != nil {
			t.Fatalf("%s: %v", tg.name, err)
		}
		return img
	}
	want := grab(native, "amd64")
	for i, tg := range foreign {
		got := grab(tg, fmt.Sprint("foreign", i))
		if got.Bounds() != want.Bounds() {
			t.Fatalf("%s: frame %v, amd64 %v", tg.name, got.Bounds(), want.Bounds())
		}
		var sum, n, worst int
		b := want.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r1, g1, b1, _ := want.At(x, y).RGBA()
				r2, g2, b2, _ := got.At(x, y).RGBA()
				for _, d := range []int{int(r1>>8) - int(r2>>8), int(g1>>8) - int(g2>>8), int(b1>>8) - int(b2>>8)} {
					if d < 0 {
						d = -d
					}
					sum += d
					n++
					worst = max(worst, d)
				}
			}
		}
		// Both decode with libjpeg-turbo; SIMD and scalar IDCTs may differ
		// by a rounding step, nothing more.
		if mean := float64(sum) / float64(n); mean > 1 || worst > 8 {
			t.Errorf("%s: frame 3 differs from amd64's: mean %.3f, max %d", tg.name, mean, worst)
		}
		fmt.Printf("cross: %s: GoCV capture, frame 3 vs amd64: mean abs diff %.3f, max %d\n", tg.name, float64(sum)/float64(n), worst)
	}
}
