package rgb

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"path/filepath"
	"testing"
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
