package engine

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/linesight/linesight/model/tflite"
)

// meanChannelByChannel is the quantized spatial MEAN as TFLite's kernels
// write it, a channel's sum at a time (as this engine ran it before the
// vectorised sums).
func meanChannelByChannel(o *meanOp, x []int8) []int8 {
	n, h, w, c := o.in.shape[0], o.in.shape[1], o.in.shape[2], o.in.shape[3]
	count := int32(h * w)
	y := make([]int8, n*c)
	for b := range n {
		for ch := range c {
			var acc int32
			for i := range h * w {
				acc += int32(x[(b*h*w+i)*c+ch])
			}
			var v int32
			if o.in.u8 {
				acc += 128 * count
				v = clamp32(mulByQuantizedMultiplier(acc, o.m, o.s)+o.bias, 0, 255) - 128
			} else {
				acc = mulByQuantizedMultiplier(acc-o.in.zp*count, o.m, o.s)
				if acc > 0 {
					acc = (acc + count/2) / count
				} else {
					acc = (acc - count/2) / count
				}
				v = clamp32(acc+o.out.zp, -128, 127)
			}
			y[b*c+ch] = int8(v)
		}
	}
	return y
}

// TestMeanSumsEqualChannelByChannel: the pixel-by-pixel vectorised sums
// give the bytes of the channel-by-channel loop, for channel counts below,
// at and past the vector width (with tails), a batch of 2 (the sums start
// again per image), int8 and uint8.
func TestMeanSumsEqualChannelByChannel(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	for _, typ := range []tflite.TensorType{tflite.Int8, tflite.Uint8} {
		for _, sh := range [][4]int{{1, 7, 7, 1280}, {2, 3, 5, 17}, {1, 1, 1, 33}, {2, 4, 4, 64}, {1, 14, 14, 3}} {
			name := fmt.Sprintf("%v_%v", typ, sh)
			zi, zo := int64(-7), int64(5)
			if typ == tflite.Uint8 {
				zi, zo = 120, 133
			}
			b := tflite.NewBuilder("mean")
			in := b.Tensor("in", typ, []int32{int32(sh[0]), int32(sh[1]), int32(sh[2]), int32(sh[3])}, tflite.PerTensor(0.05, zi), nil)
			ax := b.Tensor("axes", tflite.Int32, []int32{2}, nil, []byte{1, 0, 0, 0, 2, 0, 0, 0})
			out := b.Tensor("out", typ, []int32{int32(sh[0]), 1, 1, int32(sh[3])}, tflite.PerTensor(0.03, zo), nil)
			b.Op(tflite.OpMean, 2, []int32{in, ax}, []int32{out}, tflite.ReducerOptions{KeepDims: true})
			b.IO([]int32{in}, []int32{out})
			ip, err := NewInterpreter(b.Model(), Options{Threads: 1})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			o := ip.steps[0].k.(*meanOp)
			raw := make([]byte, sh[0]*sh[1]*sh[2]*sh[3])
			x := make([]int8, len(raw))
			for i := range raw {
				raw[i] = byte(r.Intn(256))
				if i%5 == 0 {
					raw[i] = 255 // sums near the extremes
				}
				x[i] = int8(raw[i])
				if typ == tflite.Uint8 {
					x[i] = int8(raw[i] - 128)
				}
			}
			var want []byte
			for _, v := range meanChannelByChannel(o, x) {
				if typ == tflite.Uint8 {
					v += -128
				}
				want = append(want, byte(v))
			}
			ip.Close()
			if got := run1(t, b.Model(), raw, 1); !bytes.Equal(got, want) {
				t.Fatalf("%s: got %v, want %v", name, got[:min(16, len(got))], want[:min(16, len(want))])
			}
		}
	}
}
