// Package rgb is the frame image type shared by the camera, the model's
// preprocessing and the anomaly maps: packed 8-bit RGB, row-major, with no
// dependency on GoCV or any decoder, so the core stays pure Go.
package rgb

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // registered decoders
	_ "image/png"
	"io"
	"os"

	_ "golang.org/x/image/bmp"
)

// Image is packed RGB: pixel (x, y) is Pix[3*(y*W+x) : 3*(y*W+x)+3].
type Image struct {
	W, H int
	Pix  []uint8
}

// New returns a black w×h image.
func New(w, h int) *Image { return &Image{W: w, H: h, Pix: make([]uint8, 3*w*h)} }

// Clone returns a copy of img with its own pixels.
func (img *Image) Clone() *Image {
	c := New(img.W, img.H)
	copy(c.Pix, img.Pix)
	return c
}

// Ensure resizes img to w×h, reusing its buffer when it is large enough, so
// per-frame code allocates only at warm-up.
func (img *Image) Ensure(w, h int) {
	img.W, img.H = w, h
	if cap(img.Pix) < 3*w*h {
		img.Pix = make([]uint8, 3*w*h)
	}
	img.Pix = img.Pix[:3*w*h]
}

// CopyFrom makes img a copy of src, reusing img's buffer (see Ensure).
func (img *Image) CopyFrom(src *Image) {
	img.Ensure(src.W, src.H)
	copy(img.Pix, src.Pix)
}

// maxPixels caps decoded images (a 16k x 16k frame) so a hostile file cannot
// exhaust memory.
const maxPixels = 1 << 28

// maxFileBytes caps how much of a stream Decode reads.
const maxFileBytes = 1 << 30

// Decode reads a PNG, JPEG or BMP image of any color model into RGB. The
// header is checked before pixels are allocated, so a hostile size field
// is an error rather than an out-of-memory.
func Decode(r io.Reader) (*Image, error) { return DecodeLimit(r, maxPixels) }

// ErrTooLarge: an image's header declares more pixels than allowed.
var ErrTooLarge = errors.New("rgb: image larger than allowed")

// DecodeLimit is Decode refusing images of more than limit pixels before
// decoding them (decoding takes about 7 bytes a pixel: the decoder's image
// and the RGB copy), so that a small file declaring a huge image (a
// 16000x16000 PNG of a few hundred KB) cannot exhaust memory.
func DecodeLimit(r io.Reader, limit int) (*Image, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("rgb: reading image: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("rgb: image file larger than %d bytes", maxFileBytes)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("rgb: decoding image header: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("rgb: %s image of %dx%d pixels is out of range", format, cfg.Width, cfg.Height)
	}
	if limit = min(limit, maxPixels); int64(cfg.Width)*int64(cfg.Height) > int64(limit) { // int64: the product overflows int on 32-bit boards
		return nil, fmt.Errorf("%w: %s image of %dx%d pixels, at most %d allowed", ErrTooLarge, format, cfg.Width, cfg.Height, limit)
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("rgb: decoding %s image: %w", format, err)
	}
	return FromImage(src), nil
}

// ReadFile decodes an image file.
func ReadFile(path string) (*Image, error) { return ReadFileLimit(path, maxPixels) }

// ReadFileLimit decodes an image file of at most limit pixels.
func ReadFileLimit(path string, limit int) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rgb: %w", err)
	}
	defer f.Close()
	img, err := DecodeLimit(f, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// FromImage converts any image.Image to RGB, dropping alpha (composited on
// black, as premultiplied color is) and expanding gray.
func FromImage(src image.Image) *Image {
	b := src.Bounds()
	out := New(b.Dx(), b.Dy())
	switch s := src.(type) {
	case *image.RGBA:
		for y := 0; y < out.H; y++ {
			row := s.Pix[(y)*s.Stride:]
			for x := 0; x < out.W; x++ {
				copy(out.Pix[3*(y*out.W+x):], row[4*x:4*x+3])
			}
		}
		return out
	case *image.Gray:
		for y := 0; y < out.H; y++ {
			for x := 0; x < out.W; x++ {
				v := s.Pix[y*s.Stride+x]
				i := 3 * (y*out.W + x)
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = v, v, v
			}
		}
		return out
	}
	tmp := image.NewRGBA(image.Rect(0, 0, out.W, out.H))
	draw.Draw(tmp, tmp.Bounds(), src, b.Min, draw.Src)
	return FromImage(tmp)
}

// ToImage returns a standard image sharing nothing with img.
func (img *Image) ToImage() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, img.W, img.H))
	for i := 0; i < img.W*img.H; i++ {
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = img.Pix[3*i], img.Pix[3*i+1], img.Pix[3*i+2], 255
	}
	return out
}

// At returns pixel (x, y) as a color, for tests and tools.
func (img *Image) At(x, y int) color.RGBA {
	i := 3 * (y*img.W + x)
	return color.RGBA{img.Pix[i], img.Pix[i+1], img.Pix[i+2], 255}
}

// ReadSize reads only the header of an image file: its width and height.
// Choosing a geometry from a folder of good parts looks at every image's
// size without decoding their pixels.
func ReadSize(path string) (w, h int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("rgb: %w", err)
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return 0, 0, fmt.Errorf("rgb: %s: decoding image header: %w", path, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return 0, 0, fmt.Errorf("rgb: %s: %s image of %dx%d pixels is out of range", path, format, cfg.Width, cfg.Height)
	}
	return cfg.Width, cfg.Height, nil
}
