package engine

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/linesight/linesight/model/tflite"
)

// TestDepthwiseAgainstPixelByPixel: a depthwise layer (multiplier 1, its
// taps applied across a row of pixels at a time, tap by tap, with the taps
// in the padding skipped) gives the sums of a pixel-by-pixel loop over the
// taps inside the input, for 16 and 32 channels (the AVX-512 kernel) and
// 5, filters of 3 and 5, strides 1 and 2, dilations 1 and 2 (which the
// TensorFlow Lite oracle's cases do not have), SAME and VALID, and inputs
// narrower than the filter's reach. The requantization is the op's own on
// both sides.
func TestDepthwiseAgainstPixelByPixel(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for _, c := range []int{16, 32, 5} {
		for _, k := range []int{3, 5} {
			for _, stride := range []int{1, 2} {
				for _, dil := range []int{1, 2} {
					for _, pad := range []tflite.Padding{tflite.PaddingSame, tflite.PaddingValid} {
						for _, hw := range [][2]int{{9, 12}, {4, 3}, {13, 7}} {
							h, w := hw[0], hw[1]
							eff := (k-1)*dil + 1
							if pad == tflite.PaddingValid && (h < eff || w < eff) {
								continue
							}
							name := fmt.Sprintf("c%d_k%d_s%d_d%d_%v_%dx%d", c, k, stride, dil, pad, h, w)
							size := func(n int) int {
								if pad == tflite.PaddingSame {
									return (n + stride - 1) / stride
								}
								return (n - eff + stride) / stride
							}
							oh, ow := size(h), size(w)
							b := tflite.NewBuilder("depthwise")
							in := b.Tensor("in", tflite.Int8, []int32{1, int32(h), int32(w), int32(c)}, tflite.PerTensor(0.05, 3), nil)
							wd := make([]byte, k*k*c)
							for i := range wd {
								wd[i] = byte(r.Intn(255) - 127)
							}
							scales := make([]float32, c)
							for i := range scales {
								scales[i] = 0.01 + 0.01*r.Float32()
							}
							wq := &tflite.Quantization{Scale: scales, ZeroPoint: make([]int64, c), QuantizedDimension: 3}
							wt := b.Tensor("w", tflite.Int8, []int32{1, int32(k), int32(k), int32(c)}, wq, wd)
							out := b.Tensor("out", tflite.Int8, []int32{1, int32(oh), int32(ow), int32(c)}, tflite.PerTensor(0.2, -5), nil)
							b.Op(tflite.OpDepthwiseConv, 3, []int32{in, wt}, []int32{out}, tflite.DepthwiseConv2DOptions{
								Padding: pad, StrideW: int32(stride), StrideH: int32(stride), DepthMultiplier: 1, DilationW: int32(dil), DilationH: int32(dil)})
							b.IO([]int32{in}, []int32{out})
							raw := make([]byte, h*w*c)
							for i := range raw {
								raw[i] = byte(r.Intn(256))
							}
							ip, err := NewInterpreter(b.Model(), Options{Threads: 1})
							if err != nil {
								t.Fatalf("%s: %v", name, err)
							}
							o := ip.steps[0].k.(*depthwiseOp)
							g := &o.g
							want := make([]byte, oh*ow*c)
							acc := make([]int32, ow*c)
							for oy := range oh {
								clear(acc)
								for ox := range ow {
									for ky := range k {
										iy := oy*stride - g.padTop + ky*dil
										for kx := range k {
											ix := ox*stride - g.padLeft + kx*dil
											if iy < 0 || iy >= h || ix < 0 || ix >= w {
												continue
											}
											for ch := range c {
												acc[ox*c+ch] += (int32(int8(raw[(iy*w+ix)*c+ch])) - 3) * o.wz[(ky*k+kx)*c+ch]
											}
										}
									}
								}
								o.requantRow(acc, 0, oy)
							}
							for i, v := range o.out.i8 {
								want[i] = byte(v)
							}
							ip.Close()
							for _, th := range []int{1, 2} {
								if got := run1(t, b.Model(), raw, th); !bytes.Equal(got, want) {
									t.Fatalf("%s, %d threads: differs from the pixel-by-pixel sums", name, th)
								}
							}
						}
					}
				}
			}
		}
	}
}
