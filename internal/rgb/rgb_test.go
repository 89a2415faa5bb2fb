package rgb

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/linesight/linesight/internal/parallel"
)

func TestDecodePNGGrayAndRGBA(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 2, 1))
	g.Pix = []uint8{10, 200}
	var buf bytes.Buffer
	png.Encode(&buf, g)
	img, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if img.W != 2 || img.H != 1 || img.At(1, 0) != (color.RGBA{200, 200, 200, 255}) {
		t.Fatalf("gray decoded as %+v", img)
	}
}

func TestDecodeSharedPhotos(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "images", "*.*"))
	n := 0
	for _, p := range paths {
		if ext := filepath.Ext(p); ext != ".bmp" && ext != ".jpg" {
			continue
		}
		img, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if img.W < 16 || img.H < 16 {
			t.Fatalf("%s: %dx%d", p, img.W, img.H)
		}
		n++
	}
	if n == 0 {
		t.Skip("skipping: ../shared/images is not beside the checkout")
	}
}

func TestResizeConstantAndAverage(t *testing.T) {
	// A constant image stays constant; halving a 2-pixel stripe averages it.
	src := New(4, 2)
	for i := range src.Pix {
		src.Pix[i] = 77
	}
	dst := New(3, 5)
	var r Resizer
	if err := r.Resize(src, 0, 0, 4, 2, dst); err != nil {
		t.Fatal(err)
	}
	for _, v := range dst.Pix {
		if v != 77 {
			t.Fatalf("constant image resized to %v", dst.Pix)
		}
	}
	src = New(2, 1)
	copy(src.Pix, []uint8{0, 0, 0, 100, 100, 100})
	dst = New(1, 1)
	r.Resize(src, 0, 0, 2, 1, dst)
	if dst.Pix[0] != 50 {
		t.Fatalf("average of 0 and 100 = %d", dst.Pix[0])
	}
}

func TestResizeRejectsBadWindow(t *testing.T) {
	var r Resizer
	if err := r.Resize(New(4, 4), 2, 2, 4, 4, New(2, 2)); err == nil {
		t.Fatal("window outside the image accepted")
	}
}

func TestCenterCrop(t *testing.T) {
	if x, y, w, h := CenterCrop(900, 600, 0.5); x != 300 || y != 150 || w != 300 || h != 300 {
		t.Fatalf("got %d %d %d %d", x, y, w, h)
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 3, 2)))
	f.Add(buf.Bytes())
	f.Add([]byte("BM\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(bytes.NewReader(data))
		if err == nil && len(img.Pix) != 3*img.W*img.H {
			t.Fatalf("%dx%d image with %d bytes", img.W, img.H, len(img.Pix))
		}
	})
}

// TestResizeSameOnEveryArch pins the resized pixels of a seeded frame, so
// that the same frame feeds the model the same input on amd64, arm64 and
// armhf (make test-qemu runs this under qemu). Go may fuse a multiply and
// an add into one FMA instruction on arm64 but not on amd64, which moved
// some pixels by one level and reordered a photo's top-5 classes on arm64;
// the resizer rounds every product to prevent it.
func TestResizeSameOnEveryArch(t *testing.T) {
	src := New(997, 613)
	x := uint32(12345)
	for i := range src.Pix {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		src.Pix[i] = uint8(x >> 24)
	}
	var r Resizer
	sums := make([]string, 0, 2)
	for _, geo := range [][4]int{{0, 0, 997, 613}, {150, 3, 613, 600}} {
		dst := New(224, 224)
		if err := r.Resize(src, geo[0], geo[1], geo[2], geo[3], dst); err != nil {
			t.Fatal(err)
		}
		sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(dst.Pix))[:16])
		// Split across workers, the pixels are the same.
		for _, threads := range []int{2, 3} {
			pr := Resizer{Pool: parallel.New(threads)}
			pd := New(224, 224)
			if err := pr.Resize(src, geo[0], geo[1], geo[2], geo[3], pd); err != nil {
				t.Fatal(err)
			}
			pr.Pool.Close()
			if !bytes.Equal(pd.Pix, dst.Pix) {
				t.Errorf("geometry %d: %d threads give other pixels than one", len(sums)-1, threads)
			}
		}
	}
	// Computed on amd64, where Go never fuses.
	want := []string{"14aca93c3fd291fa", "e02e4c0d6f8375e3"}
	for i := range want {
		if sums[i] != want[i] {
			t.Errorf("geometry %d: sha256 %s, want %s (on %s)", i, sums[i], want[i], runtime.GOARCH)
		}
	}
}

func BenchmarkResize(b *testing.B) {
	for _, sz := range [][2]int{{1280, 720}, {900, 900}} {
		src := New(sz[0], sz[1])
		for i := range src.Pix {
			src.Pix[i] = uint8(i * 7)
		}
		dst := New(224, 224)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dx%d/threads=%d", sz[0], sz[1], threads), func(b *testing.B) {
				r := Resizer{Pool: parallel.New(threads)}
				defer r.Pool.Close()
				for b.Loop() {
					if err := r.Resize(src, 0, 0, src.W, src.H, dst); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
