package jpeg

import (
	"bytes"
	"errors"
	"fmt"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
)

// ffmpegJPEG encodes what ffmpeg reads with the input arguments in as one
// 4:2:0 JPEG at quality 3 (the format of a USB camera's MJPEG).
func ffmpegJPEG(in ...string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "jpegbench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "f.jpg")
	args := append(append([]string{"-loglevel", "error"}, in...), "-frames:v", "1", "-pix_fmt", "yuvj420p", "-q:v", "3", p)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ffmpeg %v: %v: %s", args, err, out)
	}
	return os.ReadFile(p)
}

// The benchmark frames, 1280x720: ffmpeg's testsrc (flat areas, ~26 KB)
// and a photo of ../shared scaled to that size (texture, ~150 KB).
var (
	testsrc720 = sync.OnceValues(func() ([]byte, error) {
		return ffmpegJPEG("-f", "lavfi", "-i", "testsrc=size=1280x720")
	})
	photo720 = sync.OnceValues(func() ([]byte, error) {
		p, ok := testenv.FindShared("images/parrot.jpg")
		if !ok {
			return nil, errors.New("../shared/images/parrot.jpg is absent")
		}
		return ffmpegJPEG("-i", p, "-vf", "scale=1280:720")
	})
)

// BenchmarkDecode720 decodes the same 1280x720 frame with this package at
// each scale and with image/jpeg (through rgb.DecodeLimit, what camera used
// before, and image/jpeg alone), in one run so the ratios are paired.
func BenchmarkDecode720(b *testing.B) {
	for _, f := range []struct {
		name  string
		frame func() ([]byte, error)
	}{{"testsrc", testsrc720}, {"photo", photo720}} {
		b.Run(f.name, func(b *testing.B) {
			data, err := f.frame()
			if err != nil {
				b.Skipf("skipping: %v", err)
			}
			benchDecode(b, data)
		})
	}
}

func benchDecode(b *testing.B, data []byte) {
	for _, s := range []struct {
		name  string
		scale int
	}{{"ours/1", 1}, {"ours/2", 2}, {"ours/4", 4}, {"ours/8", 8}} {
		b.Run(s.name, func(b *testing.B) {
			d := Decoder{Scale: s.scale}
			var img rgb.Image
			if err := d.Decode(&img, data); err != nil { // warm-up
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := d.Decode(&img, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("image-jpeg", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rgb.DecodeLimit", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := rgb.DecodeLimit(bytes.NewReader(data), 1<<28); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecode720Paired times this package, image/jpeg alone (to its
// YCbCr image) and the path this package replaces in the camera
// (rgb.DecodeLimit: image/jpeg and the conversion to RGB) alternately on the
// same frame, so that load on a shared machine hits them alike, and
// reports the medians of each and of the per-round ratios (speedups).
func BenchmarkDecode720Paired(b *testing.B) {
	for _, f := range []struct {
		name  string
		frame func() ([]byte, error)
	}{{"testsrc", testsrc720}, {"photo", photo720}} {
		for _, scale := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("%s/1:%d", f.name, scale), func(b *testing.B) {
				data, err := f.frame()
				if err != nil {
					b.Skipf("skipping: %v", err)
				}
				d := Decoder{Scale: scale}
				var img rgb.Image
				if err := d.Decode(&img, data); err != nil {
					b.Fatal(err)
				}
				var ours, std, ref, ratioStd, ratio []float64
				for b.Loop() {
					t0 := time.Now()
					if err := d.Decode(&img, data); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					if _, err := rgb.DecodeLimit(bytes.NewReader(data), 1<<28); err != nil {
						b.Fatal(err)
					}
					t2 := time.Now()
					if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
						b.Fatal(err)
					}
					t3 := time.Now()
					o, r, g := t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), t3.Sub(t2).Seconds()
					ours, ref, std = append(ours, o), append(ref, r), append(std, g)
					ratio, ratioStd = append(ratio, r/o), append(ratioStd, g/o)
				}
				b.ReportMetric(median(ours)*1e3, "ours-ms")
				b.ReportMetric(median(std)*1e3, "image/jpeg-ms")
				b.ReportMetric(median(ref)*1e3, "rgb.DecodeLimit-ms")
				b.ReportMetric(median(ratioStd), "x-vs-image/jpeg")
				b.ReportMetric(median(ratio), "x-vs-DecodeLimit")
			})
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
