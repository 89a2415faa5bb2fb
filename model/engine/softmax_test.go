package engine

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/linesight/linesight/model/tflite"
)

// softmaxPerElement is TFLite's quantized softmax as its reference kernel
// writes it (and as this engine ran it before the tables): gemmlowp's exp
// evaluated for every element, once for the sum and once for the output.
func softmaxPerElement(o *softmaxOp, x []int8) []int8 {
	const accIntBits = 12
	y := make([]int8, len(x))
	maxV := int32(-128)
	for _, v := range x {
		maxV = max(maxV, int32(v))
	}
	var sum int32
	for _, v := range x {
		if d := int32(v) - maxV; d >= o.diffMin {
			sum += fpMulPOTNeg(expOnNegativeValues(mulByQuantizedMultiplier(d, o.mult, o.leftShift), 5), -accIntBits)
		}
	}
	scale, bitsOverUnit := reciprocal(sum, accIntBits)
	for i, v := range x {
		out := int32(-128)
		if d := int32(v) - maxV; d >= o.diffMin {
			e := expOnNegativeValues(mulByQuantizedMultiplier(d, o.mult, o.leftShift), 5)
			out = clamp32(rdbpot(srdhm(scale, e), bitsOverUnit+31-8)-128, -128, 127)
		}
		y[i] = int8(out)
	}
	return y
}

// TestSoftmaxTablesEqualPerElement: the tabulated softmax gives every
// output byte the per-element evaluation gives, for rows shorter and
// longer than the 256 differences (a classifier's 1001), int8 and uint8,
// narrow and wide input scales (some differences past the radius, whose
// output is the zero point however large the sum) and several betas, on 1
// and 2 threads.
func TestSoftmaxTablesEqualPerElement(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	const rows = 4
	for _, typ := range []tflite.TensorType{tflite.Int8, tflite.Uint8} {
		for _, depth := range []int{1, 5, 37, 256, 257, 1001} {
			for _, scale := range []float32{0.01, 0.1, 0.5} {
				for _, beta := range []float32{1, 0.37, 2.5} {
					name := fmt.Sprintf("%v_depth%d_scale%g_beta%g", typ, depth, scale, beta)
					zi, zo := int64(3), int64(-128)
					if typ == tflite.Uint8 {
						zi, zo = 131, 0
					}
					b := tflite.NewBuilder("softmax")
					in := b.Tensor("in", typ, []int32{rows, int32(depth)}, tflite.PerTensor(scale, zi), nil)
					out := b.Tensor("out", typ, []int32{rows, int32(depth)}, tflite.PerTensor(1.0/256, zo), nil)
					b.Op(tflite.OpSoftmax, 2, []int32{in}, []int32{out}, tflite.SoftmaxOptions{Beta: beta})
					b.IO([]int32{in}, []int32{out})
					ip, err := NewInterpreter(b.Model(), Options{Threads: 1})
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					o := ip.steps[0].k.(*softmaxOp)
					raw := make([]byte, rows*depth)
					for i := range raw {
						// Rows of the whole range, of a narrow band, of one
						// value, and of the largest value but for one
						// smallest (a sum of exponentials as large as it
						// gets, with a difference past the radius).
						switch i / depth {
						case 0:
							raw[i] = byte(r.Intn(256))
						case 1:
							raw[i] = byte(100 + r.Intn(20))
						case 2:
							raw[i] = 77
						default:
							hi, lo := byte(127), byte(128) // int8's largest and smallest
							if typ == tflite.Uint8 {
								hi, lo = 255, 0
							}
							raw[i] = hi
							if i%depth == depth/2 {
								raw[i] = lo
							}
						}
					}
					var want []byte
					for row := range rows {
						x := make([]int8, depth)
						for i, v := range raw[row*depth : (row+1)*depth] {
							x[i] = int8(v)
							if typ == tflite.Uint8 {
								x[i] = int8(v - 128) // the engine keeps uint8 shifted
							}
						}
						for _, v := range softmaxPerElement(o, x) {
							if typ == tflite.Uint8 {
								v += -128
							}
							want = append(want, byte(v))
						}
					}
					ip.Close()
					for _, th := range []int{1, 2} {
						if got := run1(t, b.Model(), raw, th); !bytes.Equal(got, want) {
							t.Fatalf("%s, %d threads: tabulated softmax differs from per element:\n got %v\nwant %v", name, th, got[:min(20, len(got))], want[:min(20, len(want))])
						}
					}
				}
			}
		}
	}
}
