package jpeg

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
)

// idctFloat is the inverse DCT of T.81 A.3.3 in float64, on the n x n
// lowest frequencies of blk with the n-point kernel (n = 8: the standard
// transform), level-shifted: the reference for idct8 and idctN.
func idctFloat(blk *[64]int32, n int) []float64 {
	// basis[x*n+u] = C(u) cos((2x+1)u pi / 2n)
	basis := make([]float64, n*n)
	for x := 0; x < n; x++ {
		for u := 0; u < n; u++ {
			c := 1.0
			if u == 0 {
				c = 1 / math.Sqrt2
			}
			basis[x*n+u] = c * math.Cos(float64(2*x+1)*float64(u)*math.Pi/float64(2*n))
		}
	}
	out := make([]float64, n*n)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			var s float64
			for v := 0; v < n; v++ {
				for u := 0; u < n; u++ {
					s += basis[y*n+v] * basis[x*n+u] * float64(blk[8*v+u])
				}
			}
			out[y*n+x] = s/4 + 128
		}
	}
	return out
}

// randomBlock is dequantized coefficients like a camera's: a large DC, AC
// falling off with frequency, most of the high ones zero.
func randomBlock(r *rand.Rand) [64]int32 {
	var b [64]int32
	b[0] = int32(r.IntN(2040) - 1020)
	for k := 1; k < 64; k++ {
		if r.IntN(64) < 64-k {
			amp := 600 / (1 + k/4)
			b[zigzag[k]] = int32(r.IntN(2*amp+1) - amp)
		}
	}
	return b
}

// The integer transforms are within 1 of the exact one (before clamping)
// on every block, and a DC-only block's shortcut equals the transform.
func TestIDCTAgainstFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]uint8, 64)
	var ws [16]int32
	worst := map[int]float64{}
	for i := 0; i < 3000; i++ {
		b := randomBlock(r)
		if i%10 == 0 { // DC only
			b = [64]int32{0: b[0]}
		}
		for _, n := range []int{8, 4, 2, 1} {
			ref := idctFloat(&b, n)
			w := b
			switch n {
			case 8:
				idct8(&w, out, 8)
			case 4:
				idctN(&w, out, 8, 4, idctM4, ws[:])
			case 2:
				idctN(&w, out, 8, 2, idctM2, ws[:])
			case 1:
				out[0] = dcValue(b[0])
			}
			for y := 0; y < n; y++ {
				for x := 0; x < n; x++ {
					want := math.Max(0, math.Min(255, ref[y*n+x]))
					d := math.Abs(float64(out[y*8+x]) - want)
					worst[n] = math.Max(worst[n], d)
					if d > 1 {
						t.Fatalf("block %d, %dx%d transform, pixel (%d,%d): %d, exact %.3f", i, n, n, x, y, out[y*8+x], ref[y*n+x])
					}
				}
			}
		}
		if b == ([64]int32{0: b[0]}) {
			w := b
			idct8(&w, out, 8)
			for j := 0; j < 64; j++ {
				if out[(j/8)*8+j%8] != dcValue(b[0]) {
					t.Fatalf("DC %d: idct8 gives %d, the shortcut %d", b[0], out[j], dcValue(b[0]))
				}
			}
		}
	}
	t.Logf("largest difference to the exact transform, by size: %v", worst)
}

// diff compares two RGB buffers: the largest and mean absolute difference.
func diff(a, b []uint8) (maxd int, mean float64) {
	var sum int
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		maxd = max(maxd, d)
		sum += d
	}
	return maxd, float64(sum) / float64(len(a))
}

func decodeOurs(t *testing.T, data []byte, scale int) *rgb.Image {
	t.Helper()
	d := Decoder{Scale: scale}
	var img rgb.Image
	if err := d.Decode(&img, data); err != nil {
		t.Fatal(err)
	}
	return &img
}

func decodeGo(t *testing.T, data []byte) *rgb.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return rgb.FromImage(img)
}

// ffmpegDecode is ffmpeg's own decoding of a JPEG file to rgb24 at full
// size and at 1/2, 1/4, 1/8 (-lowres 1, 2, 3: its DCT-domain reduction),
// in one ffmpeg process (each start costs more than the decodes).
func ffmpegDecode(t *testing.T, path string) [4][]uint8 {
	t.Helper()
	dir := t.TempDir()
	var args []string
	for l := 0; l < 4; l++ {
		args = append(args, "-lowres", fmt.Sprint(l), "-i", path)
	}
	for l := 0; l < 4; l++ {
		args = append(args, "-map", fmt.Sprint(l), "-f", "rawvideo", "-pix_fmt", "rgb24", filepath.Join(dir, fmt.Sprint(l)))
	}
	if out, err := exec.Command("ffmpeg", append([]string{"-loglevel", "error"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg decoding %s: %v\n%s", path, err, out)
	}
	var res [4][]uint8
	for l := range res {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(l)))
		if err != nil {
			t.Fatal(err)
		}
		res[l] = b
	}
	return res
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("skipping: %s is not installed (scripts/deps.sh)", name)
	}
}

// goTestdata is Go's own JPEG test images (every sampling, restart
// intervals, RGB, gray, progressive, CMYK), beside the Go installation.
func goTestdata(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", "image", "testdata", "video-00*.jpeg"))
	if len(files) == 0 {
		t.Skip("skipping: Go's image/testdata is not beside the Go installation")
	}
	return files
}

// Against image/jpeg on Go's test images: at most 4 apart in any channel
// (the two inverse DCTs round differently, by 1 or 2 in a few pixels, and
// the colour conversions by 1 more), under 0.35 on average, progressive
// images included; the images image/jpeg decodes for us (CMYK) are
// identical.
func TestAgainstImageJPEG(t *testing.T) {
	for _, f := range goTestdata(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		d := Decoder{}
		var img rgb.Image
		if err := d.Decode(&img, data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ref := decodeGo(t, data)
		if img.W != ref.W || img.H != ref.H {
			t.Fatalf("%s: %dx%d, image/jpeg %dx%d", name, img.W, img.H, ref.W, ref.H)
		}
		m, mean := diff(img.Pix, ref.Pix)
		fellBack := strings.Count(sof(data), ",") == 3 // CMYK
		if fellBack != (d.Fallbacks == 1) {
			t.Errorf("%s: %d fallbacks", name, d.Fallbacks)
		}
		t.Logf("%-48s max %d mean %.3f", name, m, mean)
		if m > 4 || mean > 0.35 || (fellBack && m != 0) {
			t.Errorf("%s: max difference %d, mean %.3f", name, m, mean)
		}
	}
}

// A progressive image and the sequential image it was made from (Go's
// test images come in such pairs, the same coefficients in another order)
// decode to the same pixels, at every scale, and allocate nothing after
// the first frame.
func TestProgressiveEqualsSequential(t *testing.T) {
	pairs := 0
	for _, f := range goTestdata(t) {
		seqPath := strings.Replace(f, ".progressive.jpeg", ".jpeg", 1)
		if seqPath == f || strings.Contains(f, "truncated") {
			continue
		}
		prog, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seq, err := os.ReadFile(seqPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(sof(seq), "SOF2") { // both progressive
			continue
		}
		if !strings.HasPrefix(sof(prog), "SOF2") {
			t.Fatalf("%s is %s", filepath.Base(f), sof(prog))
		}
		pairs++
		for _, s := range []int{1, 2, 4, 8} {
			d := Decoder{Scale: s}
			var img rgb.Image
			if err := d.Decode(&img, prog); err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			want := decodeOurs(t, seq, s)
			if img.W != want.W || img.H != want.H || !bytes.Equal(img.Pix, want.Pix) || d.Fallbacks != 0 {
				m, _ := diff(img.Pix, want.Pix)
				t.Errorf("%s at 1/%d differs from %s by up to %d", filepath.Base(f), s, filepath.Base(seqPath), m)
			}
			if !testenv.Race {
				if n := testing.AllocsPerRun(5, func() { d.Decode(&img, prog) }); n != 0 {
					t.Errorf("%s at 1/%d: %v allocations per frame", filepath.Base(f), s, n)
				}
			}
		}
	}
	if pairs < 8 {
		t.Errorf("only %d progressive/sequential pairs", pairs)
	}
}

// encodeFFmpeg has ffmpeg encode its input arguments to one JPEG file with
// the extra output arguments.
func encodeFFmpeg(t *testing.T, dir, name string, in []string, out ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	args := append(append(append([]string{"-loglevel", "error", "-y"}, in...), "-frames:v", "1"), append(out, p)...)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
	return p
}

// encodeGst has gst-launch-1.0's jpegenc (libjpeg) encode one frame of
// videotestsrc in the raw format.
func encodeGst(t *testing.T, dir, name, format string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	pipe := fmt.Sprintf("videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=%s,width=640,height=480 ! jpegenc quality=90 ! filesink location=%s", format, p)
	if b, err := exec.Command("gst-launch-1.0", append([]string{"-q"}, strings.Fields(pipe)...)...).CombinedOutput(); err != nil {
		t.Fatalf("gst-launch-1.0 %s: %v\n%s", pipe, err, b)
	}
	return p
}

// referenceFrames are JPEGs written by independent encoders: ffmpeg's
// (testsrc 640x480 at 4:4:4, 4:2:2, 4:2:0, and 4:2:0 with restart
// intervals),
// libjpeg's through GStreamer (4:2:0, 4:2:2, 4:4:4 and gray) and the
// photos of ../shared.
func referenceFrames(t *testing.T) []string {
	needTool(t, "ffmpeg")
	needTool(t, "gst-launch-1.0")
	dir := t.TempDir()
	// 640x480, not 1280x720: the same code paths, a quarter of the time
	// under the race detector (BenchmarkDecode720 measures 1280x720).
	small := []string{"-f", "lavfi", "-i", "testsrc=size=640x480"}
	files := []string{
		encodeFFmpeg(t, dir, "testsrc420.jpg", small, "-pix_fmt", "yuvj420p", "-q:v", "2"),
		encodeFFmpeg(t, dir, "testsrc444.jpg", small, "-pix_fmt", "yuvj444p", "-q:v", "3"),
		encodeFFmpeg(t, dir, "testsrc422.jpg", small, "-pix_fmt", "yuvj422p", "-q:v", "3"),
		// Slices are separated by restart markers (DRI, RSTn).
		encodeFFmpeg(t, dir, "testsrc420-restart.jpg", small, "-pix_fmt", "yuvj420p", "-q:v", "3", "-threads", "4", "-slices", "4"),
		encodeGst(t, dir, "gst420.jpg", "I420"),
		encodeGst(t, dir, "gst422.jpg", "Y42B"),
		encodeGst(t, dir, "gst444.jpg", "Y444"),
		encodeGst(t, dir, "gstgray.jpg", "GRAY8"),
	}
	for _, photo := range []string{"hot_dog.jpg", "owl.jpg", "parrot.jpg"} {
		if p, ok := testenv.FindShared("images/" + photo); ok {
			files = append(files, p)
		} else {
			t.Logf("../shared/images/%s is absent: not compared", photo)
		}
	}
	return files
}

// sof returns what a JPEG's frame header says: components and sampling.
func sof(data []byte) string {
	for i := 2; i+4 < len(data) && data[i] == 0xFF; {
		m, n := data[i+1], int(data[i+2])<<8|int(data[i+3])
		if m >= 0xC0 && m <= 0xC2 && i+4+n <= len(data) {
			s := data[i+4 : i+2+n]
			var parts []string
			for c := 0; c < int(s[5]); c++ {
				parts = append(parts, fmt.Sprintf("%dx%d", s[7+3*c]>>4, s[7+3*c]&15))
			}
			return fmt.Sprintf("SOF%d %s", m-0xC0, strings.Join(parts, ","))
		}
		i += 2 + n
	}
	return "?"
}

// Against ffmpeg's decoding (its "simple" IDCT, swscale's conversion to
// rgb24) and image/jpeg's, on frames of independent encoders: at most 4
// apart in any channel, under 0.5 on average. ffmpeg and image/jpeg are as
// far from each other (the logs show all three pairs).
//
// Reduced sizes against ffmpeg's own DCT-domain reduction (-lowres 1, 2,
// 3): at most 3 apart, under 0.5 on average. As a check that each output
// pixel stands where it should, against the full-size decoding averaged
// over s x s pixels: under 10 on average (a reduced DCT is a low-pass
// filter, not a box: sharp edges of testsrc differ by up to ~250 in a few
// pixels).
func TestAgainstFFmpeg(t *testing.T) {
	for _, f := range referenceFrames(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		img := decodeOurs(t, data, 1)
		ffAll := ffmpegDecode(t, f)
		ff := ffAll[0]
		if len(ff) != len(img.Pix) {
			t.Fatalf("%s: ffmpeg gives %d bytes, we %dx%d", name, len(ff), img.W, img.H)
		}
		m, mean := diff(img.Pix, ff)
		goImg := decodeGo(t, data)
		gm, gmean := diff(img.Pix, goImg.Pix)
		rm, rmean := diff(goImg.Pix, ff)
		t.Logf("%-24s %-16s vs ffmpeg: max %d mean %.3f; vs image/jpeg: max %d mean %.3f; image/jpeg vs ffmpeg: max %d mean %.3f",
			name, sof(data), m, mean, gm, gmean, rm, rmean)
		if m > 4 || mean > 0.5 || gm > 4 || gmean > 0.35 {
			t.Errorf("%s: too far from ffmpeg (max %d, mean %.3f) or image/jpeg (max %d, mean %.3f)", name, m, mean, gm, gmean)
		}
		if strings.Contains(name, "restart") && !bytes.Contains(data, []byte{0xFF, 0xDD}) {
			t.Errorf("%s has no DRI: the restart case tests nothing", name)
		}
		testScaled(t, f, data, img, ffAll)
	}
}

func testScaled(t *testing.T, f string, data []byte, full *rgb.Image, ffAll [4][]uint8) {
	name := filepath.Base(f)
	{
		for lowres, s := range []int{1, 2, 4, 8} {
			if s == 1 {
				continue
			}
			img := decodeOurs(t, data, s)
			if img.W != (full.W+s-1)/s || img.H != (full.H+s-1)/s {
				t.Fatalf("%s 1/%d: %dx%d from %dx%d", name, s, img.W, img.H, full.W, full.H)
			}
			box := boxMean(full, s)
			bm, bmean := diff(img.Pix, box.Pix)
			ff := ffAll[lowres]
			fm, fmean := -1, -1.0
			if len(ff) == len(img.Pix) {
				fm, fmean = diff(img.Pix, ff)
			}
			t.Logf("%-24s 1/%d: vs ffmpeg -lowres %d: max %d mean %.3f; vs the box mean of the full decoding: max %d mean %.3f", name, s, lowres, fm, fmean, bm, bmean)
			if fm < 0 && !strings.HasPrefix(name, "gst") && img.W%2 == 0 {
				t.Errorf("%s 1/%d: ffmpeg -lowres gives %d bytes, we %dx%d", name, s, len(ff), img.W, img.H)
			}
			if bmean > 10 || (fm >= 0 && (fm > 3 || fmean > 0.5)) {
				t.Errorf("%s 1/%d: too far from the box mean (max %d, mean %.3f) or ffmpeg (max %d, mean %.3f)", name, s, bm, bmean, fm, fmean)
			}
		}
	}
}

// boxMean averages s x s pixels (fewer at the right and bottom edges).
func boxMean(src *rgb.Image, s int) *rgb.Image {
	out := &rgb.Image{}
	ow, oh := (src.W+s-1)/s, (src.H+s-1)/s
	out.Ensure(ow, oh)
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			for k := 0; k < 3; k++ {
				sum, n := 0, 0
				for yy := y * s; yy < min(y*s+s, src.H); yy++ {
					for xx := x * s; xx < min(x*s+s, src.W); xx++ {
						sum += int(src.Pix[3*(yy*src.W+xx)+k])
						n++
					}
				}
				out.Pix[3*(y*ow+x)+k] = uint8((sum + n/2) / n)
			}
		}
	}
	return out
}

// After the first frame, decoding allocates nothing, at every scale.
func TestNoAllocations(t *testing.T) {
	if testenv.Race {
		t.Skip("skipping: the race detector allocates")
	}
	data := encodeGoJPEG(t, 320, 240, false)
	for _, s := range []int{1, 2, 4, 8} {
		d := Decoder{Scale: s}
		var img rgb.Image
		if err := d.Decode(&img, data); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() {
			if err := d.Decode(&img, data); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("scale 1/%d: %v allocations per frame", s, n)
		}
	}
}

// encodeGoJPEG encodes a colourful w x h test image with image/jpeg (4:2:0,
// or gray).
func encodeGoJPEG(t testing.TB, w, h int, gray bool) []byte {
	var img image.Image
	if gray {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for i := range g.Pix {
			g.Pix[i] = uint8(i*7 + i/w*3)
		}
		img = g
	} else {
		c := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x ^ y) * 4), 255})
			}
		}
		img = c
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// setSOFSize rewrites the frame header's height and width.
func setSOFSize(t *testing.T, data []byte, w, h int) []byte {
	t.Helper()
	data = bytes.Clone(data)
	for i := 2; i+8 < len(data); {
		m, n := data[i+1], int(data[i+2])<<8|int(data[i+3])
		if m == 0xC0 {
			data[i+5], data[i+6], data[i+7], data[i+8] = byte(h>>8), byte(h), byte(w>>8), byte(w)
			return data
		}
		i += 2 + n
	}
	t.Fatal("no SOF0")
	return nil
}

// A header declaring more pixels than MaxPixels is refused before anything
// is allocated for it.
func TestRefusesHugeBeforeAllocating(t *testing.T) {
	data := setSOFSize(t, encodeGoJPEG(t, 64, 64, false), 65000, 65000)
	d := Decoder{MaxPixels: 1 << 20}
	var img rgb.Image
	err := d.Decode(&img, data)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if d.comps[0].plane != nil || img.Pix != nil {
		t.Error("planes or the image were allocated for a refused frame")
	}
	if n := testing.AllocsPerRun(10, func() { d.Decode(&img, data) }); n > 8 {
		t.Errorf("%v allocations refusing a frame (the error only)", n)
	}
	if w, h, err := Config(data); err != nil || w != 65000 || h != 65000 {
		t.Errorf("Config: %dx%d, %v", w, h, err)
	}
}

// Damaged images are errors (wrapping ErrFormat), each with its reason.
func TestRejections(t *testing.T) {
	good := encodeGoJPEG(t, 64, 48, false)
	sos := bytes.Index(good, []byte{0xFF, 0xDA})
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "missing SOI"},
		{"not a JPEG", []byte("\x89PNG\r\n\x1a\n"), "missing SOI"},
		{"headers only", good[:sos], "data ends before the first scan"},
		{"scan cut short", good[:sos+200], "scan data ends"},
		{"zero width", setSOFSize(t, good, 0, 48), "0x48"},
		{"segment longer than the data", append(bytes.Clone(good[:sos]), 0xFF, 0xDB, 0x40, 0x00), "length"},
		{"garbage where a marker must be", append(bytes.Clone(good[:2]), 0x12, 0x34), "where a marker must be"},
		{"SOI inside", append(bytes.Clone(good[:sos]), 0xFF, 0xD8), "SOI inside"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d Decoder
			var img rgb.Image
			err := d.Decode(&img, c.data)
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an ErrFormat saying %q", err, c.want)
			}
		})
	}
}

// A restart marker with the wrong number is an error; the same image with
// it right decodes.
func TestRestartMarkerOutOfOrder(t *testing.T) {
	needTool(t, "ffmpeg")
	p := encodeFFmpeg(t, t.TempDir(), "r.jpg", []string{"-f", "lavfi", "-i", "testsrc=size=320x240"},
		"-pix_fmt", "yuvj420p", "-threads", "4", "-slices", "4")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sos := bytes.Index(data, []byte{0xFF, 0xDA})
	i := bytes.Index(data[sos:], []byte{0xFF, 0xD0})
	if i < 0 {
		t.Fatal("ffmpeg wrote no RST0")
	}
	decodeOurs(t, data, 1)
	bad := bytes.Clone(data)
	bad[sos+i+1] = 0xD5
	var d Decoder
	var img rgb.Image
	if err := d.Decode(&img, bad); err == nil || !strings.Contains(err.Error(), "RST0 missing") {
		t.Fatalf("got %v, want RST0 missing", err)
	}
}

// An unknown scale is refused.
func TestBadScale(t *testing.T) {
	d := Decoder{Scale: 3}
	var img rgb.Image
	if err := d.Decode(&img, encodeGoJPEG(t, 8, 8, true)); err == nil {
		t.Fatal("scale 3 accepted")
	}
}

// FuzzDecode: any input is an image or an error, never a panic, and never
// more than MaxPixels (refused before allocating); what decodes has the
// size Config reports, reduced by the scale.
func FuzzDecode(f *testing.F) {
	f.Add(encodeGoJPEG(f, 40, 30, false), uint8(1))
	f.Add(encodeGoJPEG(f, 33, 17, true), uint8(2))
	if files, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", "image", "testdata", "video-00*.jpeg")); len(files) > 0 {
		for i, p := range files {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data, uint8(i))
			}
		}
	}
	if entries, err := os.ReadDir("testdata"); err == nil {
		for _, e := range entries {
			if data, err := os.ReadFile(filepath.Join("testdata", e.Name())); err == nil {
				f.Add(data, uint8(0))
			}
		}
	}
	var img rgb.Image
	f.Fuzz(func(t *testing.T, data []byte, s uint8) {
		scale := []int{1, 2, 4, 8}[s%4]
		d := Decoder{Scale: scale, MaxPixels: 1 << 18}
		if err := d.Decode(&img, data); err != nil {
			return
		}
		w, h, err := Config(data)
		if err != nil {
			t.Fatalf("decoded, but Config: %v", err)
		}
		if w*h > 1<<18 || img.W != (w+scale-1)/scale || img.H != (h+scale-1)/scale || len(img.Pix) != 3*img.W*img.H {
			t.Fatalf("%dx%d image at 1/%d from a %dx%d header", img.W, img.H, scale, w, h)
		}
	})
}
