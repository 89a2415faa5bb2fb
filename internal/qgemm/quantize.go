package qgemm

import "math"

// QuantizeFloat is TensorFlow Lite's AffineQuantize of float32 values into
// int8 storage: round(x / scale) half away from zero, + zp, clamped to
// [qmin, qmax], then less shift (0 for int8; 128 for uint8 tensors, which
// the engine stores as q−128).
func QuantizeFloat(in []float32, out []int8, scale float32, zp, qmin, qmax, shift int32) {
	n := len(out)
	in = in[:n]
	n16 := 0
	if hasVectorOps(chosen.name) {
		n16 = n &^ 15
		if n16 > 0 {
			prm := [5]int32{int32(math.Float32bits(scale)), zp, qmin, qmax, shift}
			quantizeF32(&in[0], &out[0], n16, &prm)
		}
	}
	for i := n16; i < n; i++ {
		v := int32(math.Round(float64(in[i]/scale))) + zp
		out[i] = int8(min(max(v, qmin), qmax) - shift)
	}
}
