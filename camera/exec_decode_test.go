package camera

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/jpeg"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
)

// ExecScale: 1/2, 1/4, 1/8 for exec: and pipe: JPEG streams only.
func TestExecScaleValidation(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string // "" valid
	}{
		{Config{Source: "exec:cat", ExecScale: 2}, ""},
		{Config{Source: "pipe:/run/cam", ExecScale: 8}, ""},
		{Config{Source: "exec:cat", ExecScale: 1}, ""},
		{Config{Source: "exec:cat"}, ""},
		{Config{Source: "exec:cat", ExecScale: 3}, "is not 1, 1/2, 1/4 or 1/8"},
		{Config{Source: "exec:cat", ExecScale: -2}, "is not 1, 1/2, 1/4 or 1/8"},
		{Config{Source: "exec:cat", ExecScale: 4, ExecFormat: ExecGray8, ExecWidth: 8, ExecHeight: 8}, "not raw gray8 frames"},
		{Config{Source: "dir:/srv/in", ExecScale: 2}, "not dir sources"},
	} {
		err := c.cfg.Validate()
		var es Errors
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.want != "" && (!errors.As(err, &es) || es[0].Field != "ExecScale" || !bytes.Contains([]byte(es[0].Msg), []byte(c.want))):
			t.Errorf("%+v: %v; want an ExecScale error saying %q", c.cfg, err, c.want)
		}
	}
	for s, want := range map[string]int{"": 1, "1": 1, "1/2": 2, " 1/4": 4, "1/8": 8} {
		if got, err := ParseScale(s); got != want || err != nil {
			t.Errorf("ParseScale(%q) = %d, %v", s, got, err)
		}
	}
	for _, s := range []string{"2", "1/3", "0.5", "1/16"} {
		if _, err := ParseScale(s); err == nil {
			t.Errorf("ParseScale(%q) accepted", s)
		}
	}
}

// With ExecScale 2, 4, 8 a command's frames arrive at that fraction of
// their size, in order, and match ffmpeg's own reduced decoding of them
// (-lowres 1, 2, 3: its DCT-domain reduction) within 3 in every channel.
func TestExecScaledFramesMatchFFmpegLowres(t *testing.T) {
	const n, w, h = 4, 320, 240
	stream := filepath.Join(t.TempDir(), "testsrc.mjpeg")
	ffmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=10", w, h), "-frames:v", strconv.Itoa(n), "-q:v", "3", "-f", "mjpeg", stream)
	for lowres, s := range map[int]int{1: 2, 2: 4, 3: 8} {
		sw, sh := w/s, h/s
		ref := ffmpeg(t, "-lowres", strconv.Itoa(lowres), "-i", stream, "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
		if len(ref) != n*sw*sh*3 {
			t.Fatalf("ffmpeg -lowres %d decoded %d bytes, want %d frames of %dx%d", lowres, len(ref), n, sw, sh)
		}
		cam, _, _ := start(t, Config{Source: "exec:cat " + stream, Queue: 2 * n, Drop: DropNewest, BackoffMin: time.Hour, ExecScale: s})
		for i := 0; i < n; i++ {
			f := next(t, cam, 5*time.Second)
			if f.Seq != uint64(i+1) || f.Image.W != sw || f.Image.H != sh {
				t.Fatalf("1/%d, frame %d: seq %d, %dx%d", s, i, f.Seq, f.Image.W, f.Image.H)
			}
			mean, most := frameDiff(f.Image.Pix, ref[i*sw*sh*3:(i+1)*sw*sh*3])
			if most > 3 {
				t.Errorf("1/%d, frame %d: differs from ffmpeg -lowres %d by up to %d (mean %.3f)", s, i, lowres, most, mean)
			}
			f.Release()
		}
	}
}

// mjpegStream is n frames of ffmpeg's testsrc as an MJPEG stream (Go's
// encoder when ffmpeg is absent).
func mjpegStream(tb testing.TB, w, h, n int) []byte {
	if _, err := exec.LookPath("ffmpeg"); err == nil {
		out, err := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
			fmt.Sprintf("testsrc2=size=%dx%d:rate=10", w, h), "-frames:v", strconv.Itoa(n), "-q:v", "3", "-f", "mjpeg", "-").Output()
		if err == nil && len(out) > 0 {
			return out
		}
	}
	var frames [][]byte
	for i := 0; i < n; i++ {
		frames = append(frames, testJPEG(tb, w, h, uint8(40*i)))
	}
	return bytes.Join(frames, nil)
}

// Reading a streamed frame (splitting it out and decoding it into the
// frame buffer) allocates nothing once the first frame has sized the
// buffers, at every scale.
func TestExecJPEGFrameAllocatesNothing(t *testing.T) {
	if testenv.Race {
		t.Skip("skipping: the race detector allocates")
	}
	const frames = 40
	stream := bytes.Repeat(mjpegStream(t, 320, 240, 2), frames/2)
	for _, s := range []int{1, 2, 4, 8} {
		d := &streamDriver{cfg: Config{MaxPixels: 1 << 20, ExecFormat: ExecJPEG},
			split: newJPEGSplitter(bytes.NewReader(stream), maxJPEGBytes(1<<20), nil),
			dec:   jpeg.Decoder{Scale: s, MaxPixels: 1 << 20}}
		var dst rgb.Image
		if err := d.readFrame(&dst); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(frames-5, func() {
			if err := d.readFrame(&dst); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("1/%d: %v allocations per frame", s, n)
		}
		if dst.W != 320/s || dst.H != 240/s {
			t.Errorf("1/%d: %dx%d frames", s, dst.W, dst.H)
		}
	}
}

// A streamed frame declaring more pixels than MaxPixels is a bad frame
// (a resync), refused before it is decoded.
func TestExecJPEGFrameOverMaxPixels(t *testing.T) {
	stream := mjpegStream(t, 320, 240, 1)
	d := &streamDriver{cfg: Config{MaxPixels: 320 * 239, ExecFormat: ExecJPEG},
		split: newJPEGSplitter(bytes.NewReader(stream), maxJPEGBytes(1<<20), nil),
		dec:   jpeg.Decoder{MaxPixels: 320 * 239}}
	var dst rgb.Image
	err := d.readFrame(&dst)
	var bad badFrame
	if !errors.As(err, &bad) || !errors.Is(err, jpeg.ErrTooLarge) || dst.Pix != nil {
		t.Fatalf("got %v (%dx%d); want a bad frame, too large, nothing decoded", err, dst.W, dst.H)
	}
}

// A 1280x720 streamed frame's decoding as the exec source does it now
// (internal/jpeg into the reused frame, at each scale) and as it did
// before (rgb.DecodeLimit, i.e. image/jpeg, then a copy), in one run.
func BenchmarkDecodeJPEG720p(b *testing.B) {
	frame := mjpegStream(b, 1280, 720, 1)
	for _, s := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("jpeg-1/%d", s), func(b *testing.B) {
			dec := jpeg.Decoder{Scale: s}
			var dst rgb.Image
			if err := dec.Decode(&dst, frame); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if err := dec.Decode(&dst, frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("rgb.DecodeLimit", func(b *testing.B) {
		var dst rgb.Image
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			img, err := rgb.DecodeLimit(bytes.NewReader(frame), 1<<24)
			if err != nil {
				b.Fatal(err)
			}
			dst.CopyFrom(img)
		}
	})
}
