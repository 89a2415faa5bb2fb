package model

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model/tflite"
)

// Feeder turns frames into the input tensor of a backbone: an optional
// centre crop, an antialiased bilinear resize to the input's height and
// width, then the pixel values in the input's type. Quantized inputs take
// plain pixels (uint8: the pixel, int8: pixel-128), as TFLite image models
// do: the normalisation lives in the input's quantization. Float inputs take
// pixel values 0..255 as float32; a model that wants normalised floats folds
// the normalisation into its first layer (the ResNet builder does).
//
// A Feeder reuses its buffers: after the first frame of a given size, Feed
// allocates nothing.
type Feeder struct {
	info   TensorInfo
	crop   float64
	rz     rgb.Resizer
	scaled rgb.Image
	raw    []byte
}

// NewFeeder prepares feeding for an NHWC RGB input. crop is the fraction of
// the frame's shorter side kept by the centre crop (0 = no crop).
func NewFeeder(in TensorInfo, crop float64) (*Feeder, error) {
	if len(in.Shape) != 4 || in.Shape[0] != 1 || in.Shape[3] != 3 {
		return nil, fmt.Errorf("model: input %s is not a 1xHxWx3 image", in)
	}
	switch in.Type {
	case tflite.Uint8, tflite.Int8, tflite.Float32:
	default:
		return nil, fmt.Errorf("model: input %s has type %v; images feed UINT8, INT8 or FLOAT32", in, in.Type)
	}
	if crop < 0 || crop > 1 {
		return nil, fmt.Errorf("model: crop fraction %g outside [0, 1]", crop)
	}
	f := &Feeder{info: in, crop: crop, raw: make([]byte, in.Bytes())}
	f.scaled.Ensure(in.Shape[2], in.Shape[1])
	return f, nil
}

// Prepare resizes img and converts it to the input's raw bytes, returned
// (valid until the next call).
func (f *Feeder) Prepare(img *rgb.Image) ([]byte, error) {
	x, y, w, h := rgb.CenterCrop(img.W, img.H, f.crop)
	if err := f.rz.Resize(img, x, y, w, h, &f.scaled); err != nil {
		return nil, err
	}
	switch f.info.Type {
	case tflite.Uint8:
		copy(f.raw, f.scaled.Pix)
	case tflite.Int8:
		for i, p := range f.scaled.Pix {
			f.raw[i] = p ^ 0x80 // p - 128 in two's complement
		}
	case tflite.Float32:
		for i, p := range f.scaled.Pix {
			binary.LittleEndian.PutUint32(f.raw[4*i:], math.Float32bits(float32(p)))
		}
	}
	return f.raw, nil
}

// Feed prepares img and sets it as b's input.
func (f *Feeder) Feed(b Backbone, img *rgb.Image) error {
	raw, err := f.Prepare(img)
	if err != nil {
		return err
	}
	return b.SetInput(raw)
}

// SetPool splits the resize across p's workers (nil: the caller's thread).
// The pixels do not depend on it. p must not run other loops during Feed.
func (f *Feeder) SetPool(p *parallel.Pool) { f.rz.Pool = p }

// Scaled is the resized frame that was last fed, at the input's size.
func (f *Feeder) Scaled() *rgb.Image { return &f.scaled }
