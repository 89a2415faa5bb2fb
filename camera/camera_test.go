package camera

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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

// TestThousandTriggersOneFrameEach: on a still image and on a sequence,
// 1,000 triggers (sent in back-to-back bursts, refused beyond the bounded
// queue and sent again) give exactly 1,000 frames, in order, each read
// after its trigger; a burst beyond MaxPendingTriggers is refused, not
// queued. (Before the fix a re-armed reader was not woken: 1,000 triggers
// gave a handful of frames, each answering the trigger before.)
func TestThousandTriggersOneFrameEach(t *testing.T) {
	dir := t.TempDir()
	still := filepath.Join(dir, "still.png")
	writePNG(t, still, 4, 4, 9)
	for i := 0; i < 5; i++ {
		writePNG(t, filepath.Join(dir, fmt.Sprintf("q_%d.png", i)), 4, 4, uint8(i))
	}
	for _, src := range []string{still, filepath.Join(dir, "q_%d.png")} {
		cam, _, _ := start(t, Config{Source: src, Mode: Triggered, BackoffMin: time.Millisecond})
		const total = 1000
		got := make(chan *Frame, total)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for range total {
				f, err := cam.Next(ctx)
				if err != nil {
					close(got)
					return
				}
				got <- f
			}
			close(got)
		}()
		sent, refused := 0, 0
		var trig []time.Time
		for sent < total {
			burst := min(100, total-sent)
			for range burst {
				at := time.Now()
				if err := cam.Trigger(); err != nil {
					if !errors.Is(err, ErrTriggerQueueFull) {
						t.Fatal(err)
					}
					refused++
					break
				}
				trig = append(trig, at)
				sent++
			}
			// Let the reader catch up before the next burst.
			deadline := time.Now().Add(10 * time.Second)
			for cam.pendingTriggers() > MaxPendingTriggers/2 {
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d triggers sent, %d still waiting for frames after 10 s", src, sent, cam.pendingTriggers())
				}
				time.Sleep(time.Millisecond)
			}
		}
		n := 0
		for f := range got {
			if f.start.Before(trig[n]) {
				t.Fatalf("%s: frame %d was read before its trigger", src, n)
			}
			n++
			f.Release()
		}
		if n != total {
			t.Fatalf("%s: %d triggers gave %d frames", src, total, n)
		}
		if refused == 0 {
			t.Errorf("%s: bursts of 100 were never refused by a queue of %d", src, MaxPendingTriggers)
		}
	}
}

// memory is a Memory in a map, as the outbox keeps it on disk.
type memory struct {
	mu       sync.Mutex
	counters map[string]uint64
	seen     map[string]bool
}

func newMemory() *memory { return &memory{counters: map[string]uint64{}, seen: map[string]bool{}} }

func (m *memory) Lease(name string, n uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := m.counters[name] + 1
	m.counters[name] = first + n - 1
	return first, nil
}

func (m *memory) Remember(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen[key] = true
	return nil
}

func (m *memory) Seen(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[key]
}

// TestFolderKnowsFilesAndNumbersAcrossRestarts: a new part written under
// the name of one already read is read again; after a restart (a new
// camera on the same Memory) the files read before are not read again, and
// frame numbers go on from where they were, never repeating. (Before, a
// re-used name was never read, and a restart with done: keep re-read the
// whole folder numbering from 1.)
func TestFolderKnowsFilesAndNumbersAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	mem := newMemory()
	cfg := Config{Source: "dir:" + dir, Settle: 20 * time.Millisecond, Poll: 10 * time.Millisecond, Memory: mem}
	writePNG(t, filepath.Join(dir, "part.png"), 4, 4, 1)
	cam, cancel, done := start(t, cfg)
	f := next(t, cam, 5*time.Second)
	first := f.Seq
	f.Release()
	// The same name, another part (another size and time).
	old := time.Now().Add(-time.Hour)
	writePNG(t, filepath.Join(dir, "part.png"), 6, 4, 2)
	os.Chtimes(filepath.Join(dir, "part.png"), old, old)
	f = next(t, cam, 5*time.Second)
	if f.Image.W != 6 || f.Seq != first+1 {
		t.Fatalf("the re-used name gave a %dx%d frame, seq %d", f.Image.W, f.Image.H, f.Seq)
	}
	f.Release()
	cancel()
	<-done

	writePNG(t, filepath.Join(dir, "later.png"), 8, 4, 3)
	cam2, _, _ := start(t, cfg)
	f = next(t, cam2, 5*time.Second)
	defer f.Release()
	if f.Image.W != 8 {
		t.Fatalf("after the restart the first frame is %dx%d: a file read before was read again", f.Image.W, f.Image.H)
	}
	if f.Seq <= first+1 {
		t.Fatalf("after the restart seq %d repeats a number given before (%d, %d)", f.Seq, first, first+1)
	}
}

// TestImageBombRefusedBeforeDecoding: a small file declaring a 16000x16000
// image is skipped without decoding (and not retried), and the next part
// is read.
func TestImageBombRefusedBeforeDecoding(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a_bomb.png"), pngBomb(t, 16000), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(filepath.Join(dir, "a_bomb.png"), old, old)
	writePNG(t, filepath.Join(dir, "b_part.png"), 4, 4, 1)
	cam, _, _ := start(t, Config{Source: "dir:" + dir, Settle: 10 * time.Millisecond, Poll: 10 * time.Millisecond, MaxPixels: 10_000_000})
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	f := next(t, cam, 5*time.Second)
	f.Release()
	runtime.ReadMemStats(&ms)
	if alloc := ms.TotalAlloc - before; alloc > 64<<20 {
		t.Errorf("%d MB allocated reading a bomb and a 4x4 part", alloc>>20)
	}
	time.Sleep(100 * time.Millisecond) // several polls: the bomb is not retried
	if h := cam.Health(); h.Skipped != 1 {
		t.Errorf("files skipped %d, want the bomb once", h.Skipped)
	}
}

// pngBomb is a valid black n×n RGB PNG: under a megabyte of file for
// 3·n² bytes of pixels.
func pngBomb(t *testing.T, n int) []byte {
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&out, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		out.WriteString(typ)
		out.Write(data)
		binary.Write(&out, binary.BigEndian, crc.Sum32())
	}
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(n))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(n))
	chunk("IHDR", append(ihdr, 8, 2, 0, 0, 0))
	var idat bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&idat, zlib.BestCompression)
	row := make([]byte, 1+3*n) // filter byte 0, black pixels
	for range n {
		zw.Write(row)
	}
	zw.Close()
	chunk("IDAT", idat.Bytes())
	chunk("IEND", nil)
	t.Logf("bomb: %d bytes of file for %d MB of pixels", out.Len(), 3*n*n>>20)
	return out.Bytes()
}

// TestCredentialsRedacted: a source URL's password appears nowhere the
// camera reports: health, its errors, frames.
func TestCredentialsRedacted(t *testing.T) {
	for in, want := range map[string]string{
		"rtsp://admin:hunter2@10.0.0.5:554/stream": "rtsp://admin:***@10.0.0.5:554/stream",
		"opening http://u:p%40ss@cam/x failed":     "opening http://u:***@cam/x failed",
		"rtsp://10.0.0.5/stream":                   "rtsp://10.0.0.5/stream",
		"/dev/video0":                              "/dev/video0",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	c, err := New(Config{Source: "dir:/nonexistent-rtsp://admin:hunter2@cam/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.fail(errors.New("cannot open rtsp://admin:hunter2@cam/: refused"))
	h := c.Health()
	if strings.Contains(h.Source+h.LastError, "hunter2") {
		t.Errorf("health leaks the password: %+v", h)
	}
}
