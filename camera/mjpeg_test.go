package camera

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"strings"
	"testing"
)

// testJPEG encodes a w×h JPEG whose colour says tag.
func testJPEG(t testing.TB, w, h int, tag uint8) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{tag, uint8(4 * x), uint8(4 * y), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// trickyJPEG is a frame the splitter must not cut early: an APP1 segment
// holding an embedded thumbnail's SOI and EOI (skipped by its length), and
// entropy-coded data with stuffed FF 00, RST markers and fill bytes.
var trickyJPEG = []byte{
	0xFF, 0xD8, // SOI
	0xFF, 0xE1, 0x00, 0x08, 0xFF, 0xD8, 0xFF, 0xD9, 0x00, 0x00, // APP1, 6 bytes: FF D8 FF D9 00 00
	0xFF, 0xFF, 0xFE, 0x00, 0x03, 0xFF, // fill, COM with one FF
	0xFF, 0xDA, 0x00, 0x03, 0x00, // SOS header (length 3)
	0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD1, 0x78, // scan: stuffing, RST0, fill + RST1
	0xFF, 0xD9, // EOI
}

// trickyOut is trickyJPEG as the splitter returns it: fill bytes dropped.
var trickyOut = bytes.ReplaceAll(bytes.ReplaceAll(trickyJPEG, []byte{0xFF, 0xFF, 0xFE}, []byte{0xFF, 0xFE}), []byte{0xFF, 0xFF, 0xD1}, []byte{0xFF, 0xD1})

// split runs a splitter over data and returns the frames and the resyncs.
func split(t testing.TB, data []byte, max int) (frames [][]byte, resyncs []string) {
	s := newJPEGSplitter(bytes.NewReader(data), max, func(r string) { resyncs = append(resyncs, r) })
	for {
		f, err := s.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("splitter error %v; want io.EOF at the end", err)
			}
			return frames, resyncs
		}
		frames = append(frames, bytes.Clone(f))
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestJPEGSplitterCleanStream(t *testing.T) {
	a, b, c := testJPEG(t, 32, 24, 1), testJPEG(t, 16, 16, 2), testJPEG(t, 64, 8, 3)
	frames, resyncs := split(t, cat(a, b, trickyJPEG, c), 1<<20)
	if len(resyncs) != 0 {
		t.Errorf("resyncs in a clean stream: %q", resyncs)
	}
	want := [][]byte{a, b, trickyOut, c}
	if len(frames) != len(want) {
		t.Fatalf("%d frames, want %d", len(frames), len(want))
	}
	for i := range want {
		if !bytes.Equal(frames[i], want[i]) {
			t.Errorf("frame %d: %d bytes, want the %d bytes written", i, len(frames[i]), len(want[i]))
		}
	}
}

func TestJPEGSplitterGarbageBetweenFrames(t *testing.T) {
	a, b := testJPEG(t, 32, 24, 1), testJPEG(t, 16, 16, 2)
	frames, resyncs := split(t, cat([]byte("noise\xff\xff\x00"), a, []byte("\xff\xd9more noise"), b), 1<<20)
	if len(frames) != 2 || !bytes.Equal(frames[0], a) || !bytes.Equal(frames[1], b) {
		t.Fatalf("got %d frames; want both, whole", len(frames))
	}
	if len(resyncs) != 2 || !strings.Contains(resyncs[0], "8 bytes of garbage") || !strings.Contains(resyncs[1], "12 bytes of garbage") {
		t.Errorf("resyncs %q; want the two runs of garbage", resyncs)
	}
}

func TestJPEGSplitterFrameCutByNextFrame(t *testing.T) {
	a, b, c := testJPEG(t, 32, 24, 1), testJPEG(t, 16, 16, 2), testJPEG(t, 64, 8, 3)
	// a cut inside its scan: the SOI of b ends it, b comes whole.
	frames, resyncs := split(t, cat(a[:len(a)-20], b, c), 1<<20)
	if len(frames) != 2 || !bytes.Equal(frames[0], b) || !bytes.Equal(frames[1], c) {
		t.Fatalf("got %d frames; want the two whole ones", len(frames))
	}
	if len(resyncs) != 1 || !strings.Contains(resyncs[0], "cut short") {
		t.Errorf("resyncs %q", resyncs)
	}
	// b cut inside a marker segment: the segment's length takes the next
	// bytes, so the frame after it may be lost too, never more.
	frames, resyncs = split(t, cat(b[:30], a, c, b), 1<<20)
	if len(frames) < 2 || !bytes.Equal(frames[len(frames)-2], c) || !bytes.Equal(frames[len(frames)-1], b) {
		t.Fatalf("got %d frames; want at least the last two whole", len(frames))
	}
	if len(resyncs) == 0 {
		t.Error("no resync reported")
	}
}

func TestJPEGSplitterStreamEndsMidFrame(t *testing.T) {
	a, b := testJPEG(t, 32, 24, 1), testJPEG(t, 16, 16, 2)
	frames, resyncs := split(t, cat(a, b[:len(b)-10]), 1<<20)
	if len(frames) != 1 || len(resyncs) != 1 || !strings.Contains(resyncs[0], "stream ended") {
		t.Errorf("%d frames, resyncs %q", len(frames), resyncs)
	}
}

func TestJPEGSplitterRefusesOversizedFrames(t *testing.T) {
	small, big := testJPEG(t, 8, 8, 1), testJPEG(t, 256, 256, 2)
	if len(big) <= 2*len(small) {
		t.Fatalf("test images: big %d bytes, small %d", len(big), len(small))
	}
	limit := len(small) + 100
	frames, resyncs := split(t, cat(small, big, small), limit)
	if len(frames) != 2 || !bytes.Equal(frames[1], small) {
		t.Fatalf("%d frames; want the two small ones", len(frames))
	}
	if len(resyncs) == 0 || !strings.Contains(resyncs[0], "larger than") {
		t.Errorf("resyncs %q", resyncs)
	}
	// A segment length past the limit is refused before it is read.
	huge := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF}
	frames, resyncs = split(t, cat(huge, small), limit)
	if len(frames) != 1 || len(resyncs) == 0 || !strings.Contains(resyncs[0], "larger than") {
		t.Errorf("%d frames, resyncs %q", len(frames), resyncs)
	}
}

func TestJPEGSplitterBadMarkers(t *testing.T) {
	small := testJPEG(t, 8, 8, 1)
	for name, bad := range map[string][]byte{
		"no marker after SOI":   {0xFF, 0xD8, 0x12, 0x34},
		"segment length 1":      {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01},
		"stuffing outside scan": {0xFF, 0xD8, 0xFF, 0x00},
	} {
		frames, resyncs := split(t, cat(bad, small), 1<<20)
		if len(frames) != 1 || !bytes.Equal(frames[0], small) || len(resyncs) == 0 {
			t.Errorf("%s: %d frames, resyncs %q", name, len(frames), resyncs)
		}
	}
}

// FuzzJPEGStream: any bytes split without panic, into frames that start
// with SOI, end with EOI and fit the limit, and splitting the frames found
// again gives them back unchanged.
func FuzzJPEGStream(f *testing.F) {
	a, b := testJPEG(f, 16, 8, 1), testJPEG(f, 8, 8, 2)
	f.Add(cat(a, b))
	f.Add(cat([]byte("junk"), a[:len(a)/2], trickyJPEG, b))
	f.Add(trickyJPEG)
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 4096
		frames, _ := split(t, data, limit)
		for i, fr := range frames {
			if len(fr) > limit || len(fr) < 4 || !bytes.HasPrefix(fr, []byte{0xFF, 0xD8}) || !bytes.HasSuffix(fr, []byte{0xFF, 0xD9}) {
				t.Fatalf("frame %d of %d bytes: % x...", i, len(fr), fr[:min(len(fr), 8)])
			}
		}
		again, resyncs := split(t, bytes.Join(frames, nil), limit)
		if len(resyncs) != 0 || len(again) != len(frames) {
			t.Fatalf("re-split: %d frames (%q), want %d", len(again), resyncs, len(frames))
		}
		for i := range frames {
			if !bytes.Equal(again[i], frames[i]) {
				t.Fatalf("re-split frame %d differs", i)
			}
		}
	})
}
