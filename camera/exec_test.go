package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/jpeg"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
)

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		"ffmpeg -f mjpeg -":                {"ffmpeg", "-f", "mjpeg", "-"},
		"  a   b\tc ":                      {"a", "b", "c"},
		`gst-launch-1.0 'a ! b' "c d"`:     {"gst-launch-1.0", "a ! b", "c d"},
		`x "say \"hi\" \$HOME \n" 'it''s'`: {"x", `say "hi" $HOME \n`, "its"},
		`a\ b c\\d ''`:                     {"a b", `c\d`, ""},
		`sh -c 'trap "" TERM; sleep 1'`:    {"sh", "-c", `trap "" TERM; sleep 1`},
		"":                                 nil,
	} {
		got, err := SplitCommand(in)
		if err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`a 'b`, `a "b`, `a \`} {
		if _, err := SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q) accepted", bad)
		}
	}
}

func TestExecConfigValidation(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{Source: "exec:"}, "Source"},
		{Config{Source: "exec:ffmpeg 'x"}, "Source"},
		{Config{Source: "pipe: "}, "Source"},
		{Config{Source: "exec:cat", ExecFormat: "yuv420p"}, "ExecFormat"},
		{Config{Source: "exec:cat", ExecFormat: ExecRGB24, ExecHeight: 10}, "ExecWidth"},
		{Config{Source: "exec:cat", ExecFormat: ExecGray8, ExecWidth: 10}, "ExecHeight"},
		{Config{Source: "exec:cat", ExecFormat: ExecBGR24, ExecWidth: 1000, ExecHeight: 1000, MaxPixels: 1000}, "ExecWidth"},
	} {
		err := c.cfg.Validate()
		var es Errors
		if !errors.As(err, &es) || es[0].Field != c.field {
			t.Errorf("%+v: %v; want an error on %s", c.cfg, err, c.field)
		}
	}
	if err := (&Config{Source: "exec:cat", ExecFormat: ExecRGB24, ExecWidth: 4, ExecHeight: 2}).Validate(); err != nil {
		t.Error(err)
	}
	for src, want := range map[string]Kind{"exec:ffmpeg -i x ! appsink": KindExec, "pipe:/run/cam": KindPipe} {
		if k := KindOf(src); k != want || !k.Live() {
			t.Errorf("KindOf(%q) = %s", src, k)
		}
	}
}

// syncBuf is a log buffer goroutines write while a test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(w *syncBuf) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed (make deps-test installs it): %v", tool, err)
	}
}

// ffmpeg runs ffmpeg with args and returns its stdout.
func ffmpeg(t *testing.T, args ...string) []byte {
	t.Helper()
	need(t, "ffmpeg")
	out, err := exec.Command("ffmpeg", append([]string{"-nostdin", "-loglevel", "error"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ffmpeg %q: %v", args, err)
	}
	return out
}

// children lists the processes whose parent is this test and whose
// command name is comm.
func children(t *testing.T, comm string) []int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(string(stat[end+1:]))
		if len(f) > 1 && string(stat[open+1:end]) == comm && f[1] == strconv.Itoa(os.Getpid()) && f[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// near: a JPEG's colour is the colour encoded, give or take its loss.
func near(got, want uint8) bool { return int(got) > int(want)-12 && int(got) < int(want)+12 }

// alive reports whether a process (pid > 0) or a process group (pid < 0)
// still exists.
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// frameDiff is the mean and largest absolute difference of two images.
func frameDiff(a, b []byte) (mean float64, most int) {
	sum := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		sum += d
		most = max(most, d)
	}
	return float64(sum) / float64(len(a)), most
}

// Frames of ffmpeg's MJPEG stream, read by the exec source, arrive in
// order and match ffmpeg's own decoding of the same stream.
func TestExecFFmpegFramesMatchFFmpegDecoding(t *testing.T) {
	const n, w, h = 8, 320, 240
	stream := filepath.Join(t.TempDir(), "testsrc.mjpeg")
	ffmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=10", w, h), "-frames:v", strconv.Itoa(n), "-q:v", "3", "-f", "mjpeg", stream)
	ref := ffmpeg(t, "-i", stream, "-f", "rawvideo", "-pix_fmt", "rgb24", "-sws_flags", "neighbor+accurate_rnd+full_chroma_int", "-")
	if len(ref) != n*w*h*3 {
		t.Fatalf("ffmpeg decoded %d bytes, want %d frames of %dx%d", len(ref), n, w, h)
	}
	cam, _, _ := start(t, Config{Source: "exec:cat " + stream, Queue: 2 * n, Drop: DropNewest, BackoffMin: time.Hour})
	worst, worstMean := 0, 0.0
	for i := 0; i < n; i++ {
		f := next(t, cam, 5*time.Second)
		if f.Seq != uint64(i+1) || f.Image.W != w || f.Image.H != h {
			t.Fatalf("frame %d: seq %d, %dx%d", i, f.Seq, f.Image.W, f.Image.H)
		}
		// In order: frame i is closest to ffmpeg's frame i.
		best, bestMean := -1, math.Inf(1)
		for j := 0; j < n; j++ {
			m, most := frameDiff(f.Image.Pix, ref[j*w*h*3:(j+1)*w*h*3])
			if m < bestMean {
				best, bestMean = j, m
			}
			if j == i {
				worst, worstMean = max(worst, most), max(worstMean, m)
			}
		}
		if best != i {
			t.Errorf("frame %d looks most like ffmpeg's frame %d", i, best)
		}
		f.Release()
	}
	// internal/jpeg's bound against ffmpeg (its TestAgainstFFmpeg).
	t.Logf("internal/jpeg vs ffmpeg decoding of %d %dx%d frames: mean |diff| at most %.3f, max |diff| %d", n, w, h, worstMean, worst)
	if worstMean > 0.5 || worst > 4 {
		t.Errorf("our decoding differs from ffmpeg's: mean %.3f, max %d", worstMean, worst)
	}
	if h := cam.Health(); h.Resyncs != 0 || h.Backend != "exec:jpeg" {
		t.Errorf("health %+v", h)
	}
}

// A command that is killed is started again, and frames resume.
func TestExecKilledCommandRestarts(t *testing.T) {
	need(t, "ffmpeg")
	cam, _, _ := start(t, Config{Source: "exec:ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc=size=160x120:rate=30 -f mjpeg -", BackoffMin: 10 * time.Millisecond})
	next(t, cam, 5*time.Second).Release()
	pids := children(t, "ffmpeg")
	if len(pids) != 1 {
		t.Fatalf("ffmpeg children %v; want one", pids)
	}
	syscall.Kill(pids[0], syscall.SIGKILL)
	testenv.Eventually(t, 5*time.Second, func() bool { return cam.Health().Reconnects >= 1 }, "the killed command was not restarted")
	f := next(t, cam, 5*time.Second)
	f.Release()
	after := children(t, "ffmpeg")
	if len(after) != 1 || after[0] == pids[0] {
		t.Errorf("ffmpeg children after the restart %v (killed %d)", after, pids[0])
	}
	if h := cam.Health(); !strings.Contains(h.LastError, "signal: killed") {
		t.Errorf("last error %q; want the command's end", h.LastError)
	}
}

// Cancelling stops the command within a second and leaves no process;
// one that ignores SIGTERM, and what it started, are killed a second later.
func TestExecCancelStopsTheCommand(t *testing.T) {
	need(t, "ffmpeg")
	// Without -re ffmpeg writes as fast as it can: once the camera stops
	// reading, it is blocked writing to a full pipe.
	cam, cancel, done := start(t, Config{Source: "exec:ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=size=640x480:rate=30 -f mjpeg -"})
	next(t, cam, 5*time.Second).Release()
	pids := children(t, "ffmpeg")
	if len(pids) != 1 {
		t.Fatalf("ffmpeg children %v; want one", pids)
	}
	t0 := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Run did not return within a second of cancel")
	}
	took := time.Since(t0)
	t.Logf("cancel to Run's return, ffmpeg stopped: %v", took.Round(time.Millisecond))
	if took > stopGrace/2 {
		t.Errorf("ffmpeg took %v to stop; it should not need SIGKILL", took)
	}
	if alive(pids[0]) || alive(-pids[0]) {
		t.Errorf("ffmpeg (pid %d) or its group is still there", pids[0])
	}

	// sh ignores SIGTERM and so does the sleep it starts (an ignored
	// signal stays ignored across exec).
	stream := filepath.Join(t.TempDir(), "a.mjpeg")
	os.WriteFile(stream, testJPEG(t, 16, 16, 1), 0o644)
	cam, cancel, done = start(t, Config{Source: fmt.Sprintf(`exec:sh -c 'trap "" TERM; cat %s; sleep 60 & wait'`, stream)})
	next(t, cam, 5*time.Second).Release()
	sh := children(t, "sh")
	if len(sh) != 1 {
		t.Fatalf("sh children %v; want one", sh)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		out, _ := exec.Command("pgrep", "-g", strconv.Itoa(sh[0]), "sleep").Output()
		return len(out) > 0
	}, "the sleep did not start")
	t0 = time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(stopGrace + time.Second):
		t.Fatal("Run did not return within two seconds of cancel")
	}
	took = time.Since(t0)
	t.Logf("cancel to Run's return, a command ignoring SIGTERM killed: %v", took.Round(time.Millisecond))
	if took < stopGrace {
		t.Errorf("stopped after %v; the command ignoring SIGTERM had %v", took, stopGrace)
	}
	// The killed sleep, reparented, is gone once init has reaped it.
	testenv.Eventually(t, 2*time.Second, func() bool { return !alive(-sh[0]) }, fmt.Sprintf("process group %d is still there", sh[0]))
}

// A corrupted stream (garbage, a frame cut short, a frame declaring more
// pixels than allowed) is resynchronised and later frames still decode.
func TestExecCorruptedStreamResyncs(t *testing.T) {
	big := testJPEG(t, 200, 100, 9) // 20000 pixels, more than MaxPixels below
	cut := testJPEG(t, 64, 48, 8)
	stream := cat(testJPEG(t, 32, 24, 50), []byte("garbage between frames"), cut[:len(cut)-40],
		testJPEG(t, 32, 24, 120), big, []byte{0xFF, 0xD8, 0xFF, 0xD9}, testJPEG(t, 32, 24, 190))
	path := filepath.Join(t.TempDir(), "corrupt.mjpeg")
	os.WriteFile(path, stream, 0o644)
	var logs syncBuf
	cam, err := New(Config{Source: "exec:cat " + path, Queue: 8, MaxPixels: 10000, BackoffMin: time.Hour}, testLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cam.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for _, tag := range []uint8{50, 120, 190} {
		f := next(t, cam, 5*time.Second)
		if c := f.Image.At(0, 0); f.Image.W != 32 || !near(c.R, tag) {
			t.Fatalf("frame %dx%d colour %v; want the frame tagged %d", f.Image.W, f.Image.H, c, tag)
		}
		f.Release()
	}
	// Garbage, the cut frame, the oversized frame, the empty frame.
	if h := cam.Health(); h.Resyncs != 4 {
		t.Errorf("health %+v; want 4 resyncs", h)
	}
	if n := strings.Count(logs.String(), "resynchronised"); n != 1 {
		t.Errorf("resyncs logged %d times; want once:\n%s", n, logs.String())
	}
}

// A command that sends nothing for ReadTimeout is restarted; its stderr
// goes to the log.
func TestExecStalledCommandRestarts(t *testing.T) {
	stream := filepath.Join(t.TempDir(), "a.mjpeg")
	os.WriteFile(stream, testJPEG(t, 16, 16, 1), 0o644)
	var logs syncBuf
	cam, err := New(Config{Source: fmt.Sprintf(`exec:sh -c 'echo starting >&2; cat %s; exec sleep 60'`, stream), ReadTimeout: 200 * time.Millisecond, BackoffMin: 10 * time.Millisecond}, testLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cam.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i := 0; i < 2; i++ {
		next(t, cam, 5*time.Second).Release()
	}
	h := cam.Health()
	if h.Reconnects < 1 || !strings.Contains(h.LastError, "stalled") {
		t.Errorf("health %+v; want a restart after a stall", h)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "line=starting") }, "stderr not logged:\n"+logs.String())
}

// Raw frames (rgb24, bgr24, gray8) are read as ffmpeg writes them.
func TestExecRawFrames(t *testing.T) {
	const w, h = 64, 48
	src := fmt.Sprintf("testsrc=size=%dx%d:rate=10", w, h)
	want := ffmpeg(t, "-f", "lavfi", "-i", src, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
	gray := ffmpeg(t, "-f", "lavfi", "-i", src, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-")
	for format, pixFmt := range map[string]string{ExecRGB24: "rgb24", ExecBGR24: "bgr24", ExecGray8: "gray"} {
		cmd := fmt.Sprintf("exec:ffmpeg -nostdin -loglevel error -f lavfi -i %s -frames:v 3 -f rawvideo -pix_fmt %s -", src, pixFmt)
		cam, _, _ := start(t, Config{Source: cmd, ExecFormat: format, ExecWidth: w, ExecHeight: h, Queue: 4, Drop: DropNewest, BackoffMin: time.Hour})
		f := next(t, cam, 5*time.Second)
		exp := want
		if format == ExecGray8 {
			exp = (&rgb.Image{}).Pix
			for _, v := range gray {
				exp = append(exp, v, v, v)
			}
		}
		if f.Image.W != w || f.Image.H != h || !bytes.Equal(f.Image.Pix, exp) {
			t.Errorf("%s: a %dx%d frame that is not ffmpeg's", format, f.Image.W, f.Image.H)
		}
		f.Release()
	}
}

// GStreamer's jpegenc ! fdsink stream, as in the README's recipes.
func TestExecGStreamer(t *testing.T) {
	need(t, "gst-launch-1.0")
	if exec.Command("gst-inspect-1.0", "jpegenc").Run() != nil {
		t.Skip("GStreamer's jpegenc is not installed (gstreamer1.0-plugins-good; make deps-test)")
	}
	const n = 20
	cam, _, _ := start(t, Config{Source: "exec:gst-launch-1.0 -q videotestsrc num-buffers=20 ! video/x-raw,width=320,height=240 ! jpegenc ! fdsink fd=1",
		Queue: 2 * n, Drop: DropNewest, BackoffMin: time.Hour})
	for i := 1; i <= n; i++ {
		f := next(t, cam, 10*time.Second)
		if f.Seq != uint64(i) || f.Image.W != 320 || f.Image.H != 240 {
			t.Fatalf("frame %d: seq %d, %dx%d", i, f.Seq, f.Image.W, f.Image.H)
		}
		// videotestsrc's first bar is white (75%: about 191).
		if c := f.Image.At(10, 10); c.R < 180 || c.G < 180 || c.B < 180 {
			t.Errorf("frame %d: top left %v; want the white bar", i, c)
		}
		f.Release()
	}
	if h := cam.Health(); h.Resyncs != 0 {
		t.Errorf("health %+v", h)
	}
}

// A named pipe: writers may come and go; a frame a writer cut is dropped.
func TestPipeSource(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "cam.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	cam, _, _ := start(t, Config{Source: "pipe:" + fifo, Queue: 8, Drop: DropNewest})
	write := func(data []byte) {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	}
	cut := testJPEG(t, 32, 24, 7)
	write(cat(testJPEG(t, 32, 24, 50), cut[:len(cut)-20])) // cut in its scan
	write(testJPEG(t, 32, 24, 120))
	for _, tag := range []uint8{50, 120} {
		f := next(t, cam, 5*time.Second)
		if c := f.Image.At(0, 0); !near(c.R, tag) {
			t.Fatalf("frame colour %v; want tag %d", c, tag)
		}
		f.Release()
	}
	if h := cam.Health(); h.Resyncs != 1 || h.Backend != "pipe:jpeg" {
		t.Errorf("health %+v; want the cut frame as one resync", h)
	}
}

// Triggered mode and the ROI work on a command's frames as on any live
// source: the frame for a trigger was captured after it, cropped.
func TestExecTriggeredWithROI(t *testing.T) {
	need(t, "ffmpeg")
	cam, _, _ := start(t, Config{Source: "exec:ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc=size=160x120:rate=30 -f mjpeg -",
		Mode: Triggered, ROI: ROI{X: 10, Y: 20, W: 64, H: 32}})
	for i := 0; i < 3; i++ {
		at := time.Now()
		if err := cam.Trigger(); err != nil {
			t.Fatal(err)
		}
		f := next(t, cam, 5*time.Second)
		if f.Image.W != 64 || f.Image.H != 32 || f.start.Before(at) {
			t.Errorf("trigger %d: a %dx%d frame begun %v after the trigger", i, f.Image.W, f.Image.H, f.start.Sub(at))
		}
		f.Release()
	}
}

// stripDHT removes a JPEG's DHT segments, as USB cameras' MJPEG has none.
func stripDHT(t *testing.T, jpg []byte) []byte {
	out := []byte{0xFF, 0xD8}
	for i := 2; i+4 <= len(jpg); {
		if jpg[i+1] == markSOS {
			return append(out, jpg[i:]...)
		}
		n := int(jpg[i+2])<<8 | int(jpg[i+3])
		if jpg[i+1] != markDHT {
			out = append(out, jpg[i:i+2+n]...)
		}
		i += 2 + n
	}
	t.Fatal("no SOS")
	return nil
}

// Frames without Huffman tables (USB cameras' MJPEG) get the standard
// ones and decode as the frame with its tables did.
func TestExecFramesWithoutHuffmanTables(t *testing.T) {
	whole := testJPEG(t, 64, 48, 80) // Go's encoder: the standard tables
	bare := stripDHT(t, whole)
	if len(bare) >= len(whole) {
		t.Fatal("nothing stripped")
	}
	if _, err := rgb.Decode(bytes.NewReader(bare)); err == nil {
		t.Fatal("Go decodes a JPEG without Huffman tables; the test proves nothing")
	}
	var want rgb.Image
	if err := (&jpeg.Decoder{}).Decode(&want, whole); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bare.mjpeg")
	os.WriteFile(path, cat(bare, whole, bare), 0o644)
	cam, _, _ := start(t, Config{Source: "exec:cat " + path, Queue: 4, Drop: DropNewest, BackoffMin: time.Hour})
	for i := 0; i < 3; i++ {
		f := next(t, cam, 5*time.Second)
		if !bytes.Equal(f.Image.Pix, want.Pix) {
			t.Errorf("frame %d differs from the frame with its tables", i)
		}
		f.Release()
	}
	if h := cam.Health(); h.Resyncs != 0 {
		t.Errorf("health %+v", h)
	}
}
