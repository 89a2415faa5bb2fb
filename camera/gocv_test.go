//go:build !nogocv && cgo

package camera

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
)

// ffmpegVideo encodes 20 frames of ffmpeg's test pattern (160x120, 10 fps).
func ffmpegVideo(t *testing.T, path string, codec ...string) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("skipping: ffmpeg is not installed (make deps installs it)")
	}
	args := append([]string{"-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-frames:v", "20"}, codec...)
	if out, err := exec.Command("ffmpeg", append(args, path)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
}

func TestVideoFilesThroughRealDecoders(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		codec []string
	}{
		{"mjpeg.avi", []string{"-c:v", "mjpeg", "-q:v", "3"}},
		{"h264.mp4", []string{"-c:v", "libx264", "-pix_fmt", "yuv420p"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			ffmpegVideo(t, p, c.codec...)
			// ffmpeg's own decoding of frame 7, as a reference for ours.
			ref := filepath.Join(dir, c.name+".png")
			if out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-i", p, "-vf", "select=eq(n\\,7)", "-frames:v", "1", ref).CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg decode: %v\n%s", err, out)
			}
			want, err := rgb.ReadFile(ref)
			if err != nil {
				t.Fatal(err)
			}
			cam, _, _ := start(t, Config{Source: p, BackoffMin: 10 * time.Millisecond})
			var prev []uint8
			for i := 1; i <= 22; i++ {
				f := next(t, cam, 3*time.Second)
				if f.Image.W != 160 || f.Image.H != 120 || f.Seq != uint64(i) {
					t.Fatalf("frame %d: %dx%d seq %d", i, f.Image.W, f.Image.H, f.Seq)
				}
				if i == 8 {
					if d := meanAbsDiff(f.Image.Pix, want.Pix); d > 1.0 {
						t.Errorf("frame 8 differs from ffmpeg's decoding by %.2f per channel", d)
					}
				}
				if prev != nil && i <= 20 && meanAbsDiff(prev, f.Image.Pix) == 0 {
					t.Errorf("frame %d repeats frame %d", i, i-1)
				}
				prev = append(prev[:0], f.Image.Pix...)
				f.Release()
			}
			// 20 frames, then the file ended and was reopened.
			if h := cam.Health(); h.Reconnects != 1 || h.Read != 22 || h.Width != 160 {
				t.Errorf("health %+v", h)
			}
		})
	}
}

func meanAbsDiff(a, b []uint8) float64 {
	var s int
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		s += d
	}
	return float64(s) / float64(len(a))
}

func gstreamer(t *testing.T) {
	if out, err := exec.Command("gst-inspect-1.0", "videotestsrc").CombinedOutput(); err != nil {
		t.Skipf("skipping: GStreamer's videotestsrc is not available (gstreamer1.0-plugins-base): %v %s", err, out)
	}
}

func TestGStreamerPipelineIsLive(t *testing.T) {
	gstreamer(t)
	cam, cancel, done := start(t, Config{Source: "videotestsrc pattern=ball is-live=true ! video/x-raw,width=96,height=64,framerate=30/1 ! videoconvert ! video/x-raw,format=BGR ! appsink"})
	f := next(t, cam, 10*time.Second)
	if f.Image.W != 96 || f.Image.H != 64 {
		t.Fatalf("frame %dx%d", f.Image.W, f.Image.H)
	}
	f.Release()
	// A slow reader gets the newest frame; the ones in between are dropped.
	// The reader stays away until a few have been.
	testenv.Eventually(t, 10*time.Second, func() bool { return cam.Health().Dropped >= 3 }, "no frame dropped while the reader was away")
	f = next(t, cam, time.Second)
	if age := time.Since(f.Time); age > 250*time.Millisecond {
		t.Errorf("newest frame is %v old", age)
	}
	f.Release()
	h := cam.Health()
	if h.Dropped < 3 || !h.Connected || !strings.Contains(h.Backend, "gstreamer") {
		t.Errorf("health %+v; want frames dropped while the reader slept", h)
	}
	t0 := time.Now()
	cancel()
	select {
	case <-done:
		t.Logf("Run returned %v after cancel", time.Since(t0))
	case <-time.After(time.Second):
		t.Fatal("the pipeline was not released within a second")
	}
}

func TestReconnectsWhenTheSourceComesBack(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "late.avi")
	cam, _, _ := start(t, Config{Source: p, BackoffMin: 20 * time.Millisecond, BackoffMax: 80 * time.Millisecond})
	testenv.WaitUntil(t, 10*time.Second, func() error {
		if h := cam.Health(); h.Connected || h.Reconnects < 2 || h.LastError == "" {
			return fmt.Errorf("while the file is missing, health %+v; want two reconnects and the error", h)
		}
		return nil
	})
	tmp := filepath.Join(t.TempDir(), "v.avi")
	ffmpegVideo(t, tmp, "-c:v", "mjpeg")
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	f := next(t, cam, 3*time.Second)
	f.Release()
	if h := cam.Health(); !h.Connected || h.Read != 1 {
		t.Errorf("after the file came: %+v", h)
	}
}

func TestMatConversionAllocatesNothing(t *testing.T) {
	m := gocv.NewMatWithSize(120, 160, gocv.MatTypeCV8UC3)
	defer m.Close()
	tmp := gocv.NewMat()
	defer tmp.Close()
	var dst rgb.Image
	if err := matToRGB(m, &tmp, &dst); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(20, func() { matToRGB(m, &tmp, &dst) }); a != 0 {
		t.Errorf("matToRGB allocates %v times per frame after warm-up", a)
	}
	// BGR to RGB: a blue pixel comes out blue.
	m.SetUCharAt(0, 0, 255)
	matToRGB(m, &tmp, &dst)
	if c := dst.At(0, 0); c.B != 255 || c.R != 0 {
		t.Errorf("pixel %v, want blue", c)
	}
	_ = context.Background
}
