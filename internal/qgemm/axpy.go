package qgemm

// AxpyF64 adds k·x[i] to acc[i] for i < len(acc), rounding the product
// before the sum (no fused multiply-add), so results are the same on every
// architecture and equal to a scalar loop of acc[i] += float64(k * x[i]).
// It is the inner loop of the anomaly map's separable Gaussian blur.
func AxpyF64(acc, x []float64, k float64) {
	n := len(acc)
	x = x[:n]
	n8 := 0
	if hasVectorOps(chosen.name) {
		n8 = n &^ 7
		if n8 > 0 {
			axpyF64(&acc[0], &x[0], n8, k)
		}
	}
	for i := n8; i < n; i++ {
		acc[i] += float64(k * x[i])
	}
}

// AxpyBytesF32 adds k·x[i] to acc[i] for i < len(acc), the bytes converted
// exactly and the product rounded before the sum, so results are the same
// on every architecture and equal to a scalar loop of
// acc[i] += float32(k * float32(x[i])). It is the inner loop of the
// resizer's vertical pass.
func AxpyBytesF32(acc []float32, x []uint8, k float32) {
	n := len(acc)
	x = x[:n]
	n16 := 0
	if hasVectorOps(chosen.name) {
		n16 = n &^ 15
		if n16 > 0 {
			axpyBytesF32(&acc[0], &x[0], n16, k)
		}
	}
	for i := n16; i < n; i++ {
		acc[i] += float32(k * float32(x[i]))
	}
}

// Lerp2x2 sets o[i] = wy0·(wx0·a0[i] + wx1·a1[i]) + wy1·(wx0·b0[i] +
// wx1·b1[i]) for i < len(o), with w = {wx0, wx1, wy0, wy1}, every product
// rounded before its sum (no fused multiply-add), so results are the same
// on every architecture and equal to the scalar expression with float32()
// around each product. It is the inner loop of the patch embedding's
// bilinear upsampling, across channels.
func Lerp2x2(o, a0, a1, b0, b1 []float32, w *[4]float32) {
	n := len(o)
	a0, a1, b0, b1 = a0[:n], a1[:n], b0[:n], b1[:n]
	n16 := 0
	if hasVectorOps(chosen.name) {
		n16 = n &^ 15
		if n16 > 0 {
			lerp2x2(&o[0], &a0[0], &a1[0], &b0[0], &b1[0], n16, w)
		}
	}
	for i := n16; i < n; i++ {
		a := float32(w[0]*a0[i]) + float32(w[1]*a1[i])
		b := float32(w[0]*b0[i]) + float32(w[1]*b1[i])
		o[i] = float32(w[2]*a) + float32(w[3]*b)
	}
}
