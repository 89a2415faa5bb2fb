package vec

// AxpyF64 adds k·x[i] to acc[i] for i < len(acc), rounding the product
// before the sum (no fused multiply-add), so results are the same on every
// architecture and equal to the loop
//
//	for i := range acc {
//		acc[i] += float64(k * x[i])
//	}
//
// It is the inner loop of the anomaly map's separable Gaussian blur.
// x must hold at least len(acc) values.
func AxpyF64(acc, x []float64, k float64) {
	x = x[:len(acc)]
	done := 0
	if active == avx512 {
		done = axpyF64AVX512(acc, x, k)
	} else if active == neon {
		done = axpyF64NEON(acc, x, k)
	}
	axpyF64Generic(acc[done:], x[done:], k)
}

func axpyF64Generic(acc, x []float64, k float64) {
	x = x[:len(acc)]
	for i := range acc {
		acc[i] += float64(k * x[i])
	}
}

// AxpyBytesF32 adds k·x[i] to acc[i] for i < len(acc), the bytes converted
// exactly and the product rounded before the sum, so results are the same
// on every architecture and equal to the loop
//
//	for i := range acc {
//		acc[i] += float32(k * float32(x[i]))
//	}
//
// It is the inner loop of the resizer's vertical pass. x must hold at
// least len(acc) values.
func AxpyBytesF32(acc []float32, x []uint8, k float32) {
	x = x[:len(acc)]
	done := 0
	if active == avx512 {
		done = axpyBytesF32AVX512(acc, x, k)
	} else if active == neon {
		done = axpyBytesF32NEON(acc, x, k)
	}
	axpyBytesF32Generic(acc[done:], x[done:], k)
}

func axpyBytesF32Generic(acc []float32, x []uint8, k float32) {
	x = x[:len(acc)]
	for i := range acc {
		acc[i] += float32(k * float32(x[i]))
	}
}

// Lerp2x2 interpolates between two rows of two pixels, with w = {wx0, wx1,
// wy0, wy1}, every product rounded before its sum (no fused multiply-add),
// so results are the same on every architecture and equal to the loop
//
//	for i := range o {
//		a := float32(w[0]*a0[i]) + float32(w[1]*a1[i])
//		b := float32(w[0]*b0[i]) + float32(w[1]*b1[i])
//		o[i] = float32(w[2]*a) + float32(w[3]*b)
//	}
//
// It is the inner loop of the patch embedding's bilinear upsampling,
// across channels. a0, a1, b0 and b1 must hold at least len(o) values.
func Lerp2x2(o, a0, a1, b0, b1 []float32, w *[4]float32) {
	n := len(o)
	a0, a1, b0, b1 = a0[:n], a1[:n], b0[:n], b1[:n]
	done := 0
	if active == avx512 && n >= 16 { // shorter: all tail, and no call
		done = lerp2x2AVX512(o, a0, a1, b0, b1, w)
	} else if active == neon && n >= 8 {
		done = lerp2x2NEON(o, a0, a1, b0, b1, w)
	}
	lerp2x2Generic(o[done:], a0[done:], a1[done:], b0[done:], b1[done:], w)
}

// lerp2x2Generic inlines into the entry (the anomaly map's upsampling
// calls Lerp2x2 once per pixel with one channel, where a second call would
// cost more than the arithmetic); the entry has sliced a0..b1 to len(o).
func lerp2x2Generic(o, a0, a1, b0, b1 []float32, w *[4]float32) {
	for i := range o {
		o[i] = lerp1(w, a0[i], a1[i], b0[i], b1[i])
	}
}

// lerp1 is Lerp2x2 for one value.
func lerp1(w *[4]float32, a0, a1, b0, b1 float32) float32 {
	a := float32(w[0]*a0) + float32(w[1]*a1)
	b := float32(w[0]*b0) + float32(w[1]*b1)
	return float32(w[2]*a) + float32(w[3]*b)
}
