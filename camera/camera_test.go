package camera

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
)

func TestKindOf(t *testing.T) {
	dir := t.TempDir()
	for src, want := range map[string]Kind{
		"/dev/video0": KindDevice, "2": KindDevice, "rtsp://cam/stream": KindURL, "http://x/mjpg": KindURL,
		"videotestsrc ! videoconvert ! appsink": KindPipeline, "dir:/srv/in": KindDir, dir: KindDir,
		"img_%04d.png": KindSequence, "part.PNG": KindImage, "line.mp4": KindVideo,
	} {
		if got := KindOf(src); got != want {
			t.Errorf("KindOf(%q) = %s, want %s", src, got, want)
		}
	}
}

func TestParseROI(t *testing.T) {
	if r, err := ParseROI("10, 20,30,40"); err != nil || r != (ROI{10, 20, 30, 40}) {
		t.Errorf("ParseROI = %v, %v", r, err)
	}
	for _, bad := range []string{"1,2,3", "a,b,c,d", "1,2,0,4", "-1,0,2,2"} {
		if _, err := ParseROI(bad); err == nil {
			t.Errorf("ParseROI(%q) accepted", bad)
		}
	}
}

// writePNG writes a w×h image whose pixels encode (x, y, tag) so frames can
// be told apart and crops checked.
func writePNG(t testing.TB, path string, w, h int, tag uint8) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), tag, 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func start(t *testing.T, cfg Config) (*Camera, context.CancelFunc, chan error) {
	t.Helper()
	cam, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cam.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Second):
			t.Error("Run did not return within a second of cancel")
		}
	})
	return cam, cancel, done
}

func next(t *testing.T, cam *Camera, within time.Duration) *Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	f, err := cam.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v (health %+v)", err, cam.Health())
	}
	return f
}

func TestImageSequenceInOrderThenRestarts(t *testing.T) {
	dir := t.TempDir()
	for i := 1; i <= 4; i++ {
		writePNG(t, filepath.Join(dir, "img_"+string(rune('0'+i))+".png"), 8, 6, uint8(i))
	}
	cam, _, _ := start(t, Config{Source: filepath.Join(dir, "img_%d.png"), BackoffMin: 10 * time.Millisecond})
	for want := 1; want <= 6; want++ {
		f := next(t, cam, 2*time.Second)
		tag := f.Image.Pix[2]
		// After the 4th image the sequence ends and is read again from 1.
		if exp := uint8((want-1)%4 + 1); tag != exp || f.Seq != uint64(want) {
			t.Fatalf("frame %d: seq %d tag %d, want tag %d", want, f.Seq, tag, exp)
		}
		f.Release()
	}
	if h := cam.Health(); h.Reconnects < 1 || h.Read != 6 || h.Backend != "image-sequence" {
		t.Errorf("health %+v", h)
	}
}

func TestFolderSource(t *testing.T) {
	dir := t.TempDir()
	done := filepath.Join(t.TempDir(), "done")
	cam, _, _ := start(t, Config{Source: "dir:" + dir, Settle: 400 * time.Millisecond, Poll: 20 * time.Millisecond, Done: "move:" + done})
	// Arrival order is modification time: a.png came first.
	now := time.Now()
	writePNG(t, filepath.Join(dir, "a.png"), 8, 6, 1)
	setMtime(t, filepath.Join(dir, "a.png"), now.Add(-2*time.Second))
	writePNG(t, filepath.Join(dir, "b.png"), 8, 6, 2)
	setMtime(t, filepath.Join(dir, "b.png"), now.Add(-time.Second))
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	for _, tag := range []uint8{1, 2} {
		f := next(t, cam, 3*time.Second)
		if f.Image.Pix[2] != tag {
			t.Fatalf("got tag %d, want %d (arrival order)", f.Image.Pix[2], tag)
		}
		f.Release()
	}
	// A corrupt file is skipped with a reason; the next good one still comes.
	os.WriteFile(filepath.Join(dir, "c.png"), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	setMtime(t, filepath.Join(dir, "c.png"), time.Now().Add(-time.Second)) // older than d.png
	// A file written in two halves, the pause shorter than Settle, is read
	// only once complete.
	tmp := filepath.Join(t.TempDir(), "d.png")
	writePNG(t, tmp, 64, 48, 4)
	data, _ := os.ReadFile(tmp)
	f, _ := os.Create(filepath.Join(dir, "d.png"))
	f.Write(data[:len(data)/2])
	f.Sync()
	// The writer's pause (part of the scenario, not a wait for the camera):
	// a few polls see the half file, its size then changes again.
	time.Sleep(60 * time.Millisecond)
	f.Write(data[len(data)/2:])
	f.Close()
	fr := next(t, cam, 3*time.Second)
	if fr.Image.W != 64 || fr.Image.Pix[2] != 4 {
		t.Fatalf("got a %dx%d frame tag %d, want the completed d.png", fr.Image.W, fr.Image.H, fr.Image.Pix[2])
	}
	fr.Release()
	if h := cam.Health(); h.Skipped != 1 || h.Read != 3 {
		t.Errorf("health %+v; want 1 skipped file and 3 frames", h)
	}
	moved, _ := filepath.Glob(filepath.Join(done, "*.png"))
	left, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	if len(moved) != 4 || len(left) != 0 {
		t.Errorf("done policy move: %d moved, %d left", len(moved), len(left))
	}
}

func TestStillImageWithROI(t *testing.T) {
	p := filepath.Join(t.TempDir(), "part.png")
	writePNG(t, p, 40, 30, 9)
	cam, _, _ := start(t, Config{Source: p, ROI: ROI{5, 7, 10, 4}, MaxFPS: 50})
	t0 := time.Now()
	for i := 0; i < 3; i++ {
		f := next(t, cam, time.Second)
		img := f.Image
		if img.W != 10 || img.H != 4 {
			t.Fatalf("ROI frame %dx%d", img.W, img.H)
		}
		// Pixel (0,0) of the crop is frame pixel (5,7).
		if c := img.At(0, 0); c.R != 5 || c.G != 7 || c.B != 9 {
			t.Fatalf("ROI pixel %v", c)
		}
		if c := img.At(9, 3); c.R != 14 || c.G != 10 {
			t.Fatalf("ROI corner pixel %v", c)
		}
		f.Release()
	}
	// MaxFPS 50: three frames take at least two intervals.
	if d := time.Since(t0); d < 40*time.Millisecond {
		t.Errorf("3 frames at MaxFPS 50 came in %v", d)
	}
	// An ROI outside the frame is an error the health shows.
	cam2, _, _ := start(t, Config{Source: p, ROI: ROI{35, 0, 10, 4}, BackoffMin: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := cam2.Next(ctx); err == nil {
		t.Error("frame delivered through an ROI outside the frame")
	}
	if h := cam2.Health(); h.LastError == "" {
		t.Errorf("health %+v has no error", h)
	}
}

func TestTriggeredRecordedSource(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		writePNG(t, filepath.Join(dir, "s_"+string(rune('0'+i))+".png"), 4, 4, uint8(i))
	}
	cam, _, _ := start(t, Config{Source: filepath.Join(dir, "s_%d.png"), Mode: Triggered})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	if _, err := cam.Next(ctx); err == nil {
		t.Fatal("triggered camera delivered a frame without a trigger")
	}
	cancel()
	for i := 0; i < 3; i++ {
		tr := time.Now()
		cam.Trigger()
		f := next(t, cam, time.Second)
		if f.Image.Pix[2] != uint8(i) || f.start.Before(tr) {
			t.Fatalf("trigger %d: frame tag %d read at %v, trigger at %v", i, f.Image.Pix[2], f.start, tr)
		}
		f.Release()
	}
}

// fakeLive is a live camera with a driver queue: a frame is exposed every
// period and queued (the oldest dropped beyond depth); a read takes
// transfer time and returns the oldest queued frame. Reads slower than
// exposures keep the queue full of frames older than any trigger.
type fakeLive struct {
	period, transfer time.Duration
	depth            int
	queue            []time.Time
	last             time.Time
}

func (f *fakeLive) Open(context.Context) (Info, error) {
	f.last = time.Now()
	return Info{Backend: "fake"}, nil
}
func (f *fakeLive) Close() error { return nil }
func (f *fakeLive) Read(ctx context.Context, dst *rgb.Image) error {
	time.Sleep(f.transfer)
	for {
		now := time.Now()
		for f.last.Add(f.period).Before(now) {
			f.last = f.last.Add(f.period)
			f.queue = append(f.queue, f.last)
			if len(f.queue) > f.depth {
				f.queue = f.queue[1:]
			}
		}
		if len(f.queue) > 0 {
			dst.Ensure(2, 2)
			exposedMu.Lock()
			exposedAt[dst] = f.queue[0]
			exposedMu.Unlock()
			f.queue = f.queue[1:]
			return nil
		}
		time.Sleep(time.Until(f.last.Add(f.period)))
	}
}

var (
	exposedMu sync.Mutex
	exposedAt = map[*rgb.Image]time.Time{}
)

func TestTriggeredLiveSkipsBufferedFrames(t *testing.T) {
	cam, err := New(Config{Source: "/dev/video9", Mode: Triggered, Buffers: 3}, nil)
	if err != nil {
		t.Skip(err) // nogocv: device sources are refused
	}
	fl := &fakeLive{period: 10 * time.Millisecond, transfer: 25 * time.Millisecond, depth: 3}
	cam.open = func(Config, *slog.Logger) (driver, error) { return fl, nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cam.Run(ctx)
	// The reader is slower than the exposures: once it has read a few
	// frames, the driver's queue holds frames older than any trigger to come.
	read := func() uint64 { return cam.Health().Read }
	testenv.Eventually(t, 10*time.Second, func() bool { return read() >= 3 }, "the camera reads no frames from the driver")
	for i := 0; i < 5; i++ {
		tr := time.Now()
		cam.Trigger()
		f := next(t, cam, time.Second)
		exposedMu.Lock()
		e := exposedAt[f.Image]
		exposedMu.Unlock()
		if e.Before(tr) {
			t.Fatalf("trigger %d at %v got a frame exposed at %v (before the trigger)", i, tr, e)
		}
		f.Release()
		// Stale frames queue up again before the next trigger.
		n := read()
		testenv.Eventually(t, 10*time.Second, func() bool { return read() >= n+2 }, "the camera stopped reading from the driver")
	}
}

// setMtime gives path the modification time mod (arrival order for the
// folder source, without sleeping between writes).
func setMtime(t *testing.T, path string, mod time.Time) {
	t.Helper()
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}
