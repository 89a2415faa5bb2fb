package vec

import "math"

// QuantizeFloat is TensorFlow Lite's AffineQuantize of float32 values into
// int8 storage: round(x / scale) half away from zero, + zp, clamped to
// [qmin, qmax], then less shift (0 for int8; 128 for uint8 tensors, which
// the engine stores as q−128):
//
//	for i := range out {
//		v := int32(math.Round(float64(in[i]/scale))) + zp
//		out[i] = int8(min(max(v, qmin), qmax) - shift)
//	}
//
// The division is float32's. A quotient out of int32's range (or NaN)
// converts as Go's conversion does on the machine, which the language
// leaves to the implementation: −2^31 on amd64, which the AVX-512 kernel
// reproduces. in must hold at least len(out) values.
func QuantizeFloat(in []float32, out []int8, scale float32, zp, qmin, qmax, shift int32) {
	in = in[:len(out)]
	done := 0
	if active == avx512 {
		done = quantizeAVX512(in, out, scale, zp, qmin, qmax, shift)
	} else if active == neon {
		done = quantizeNEON(in, out, scale, zp, qmin, qmax, shift)
	}
	if done < len(out) {
		quantizeGeneric(in[done:], out[done:], scale, zp, qmin, qmax, shift)
	}
}

func quantizeGeneric(in []float32, out []int8, scale float32, zp, qmin, qmax, shift int32) {
	in = in[:len(out)]
	for i := range out {
		v := int32(math.Round(float64(in[i]/scale))) + zp
		out[i] = int8(min(max(v, qmin), qmax) - shift)
	}
}
