package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
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

// TestCaptureExecFlags: capture takes an exec: stream's format like the
// station's camera.exec.* keys: raw rgb24 frames of --exec-size, and JPEG
// frames decoded at --scale (ffmpeg's testsrc; skipped without ffmpeg).
func TestCaptureExecFlags(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	for _, c := range []struct {
		args []string
		w, h int
	}{
		{[]string{"exec:ffmpeg -loglevel error -f lavfi -i testsrc=size=320x240:rate=15 -f rawvideo -pix_fmt rgb24 -", "--exec-format", "rgb24", "--exec-size", "320x240"}, 320, 240},
		{[]string{"exec:ffmpeg -loglevel error -f lavfi -i testsrc=size=320x240:rate=15 -f mjpeg -", "--scale", "1/4"}, 80, 60},
	} {
		dst := filepath.Join(t.TempDir(), "frames")
		runOK(t, append([]string{"capture", "--count", "2", "--out", dst}, c.args...)...)
		files, _ := filepath.Glob(filepath.Join(dst, "*.png"))
		if len(files) != 2 {
			t.Fatalf("%v: %d files saved", c.args, len(files))
		}
		img, err := rgb.ReadFile(files[1])
		if err != nil {
			t.Fatal(err)
		}
		if img.W != c.w || img.H != c.h {
			t.Errorf("%v: frames %dx%d, want %dx%d", c.args, img.W, img.H, c.w, c.h)
		}
	}
	var out bytes.Buffer
	for _, bad := range [][]string{{"--scale", "1/3"}, {"--exec-size", "640"}} {
		if err := run(append([]string{"capture", "exec:true", "--count", "1"}, bad...), &out); err == nil {
			t.Errorf("capture %v: accepted", bad)
		}
	}
}
