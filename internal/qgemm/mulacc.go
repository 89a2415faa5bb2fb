package qgemm

// MulAccPixels adds, for npix pixels of c channels, to pixel p's
// accumulators acc[p·c : (p+1)·c] the products (x[p·xstride : p·xstride+c]
// − zx)·w[:c]. Products of int8 less a zero point by int32 weights stay
// exact in int32 for the filters TFLite accepts. It is one
// depthwise filter tap applied across a row of output pixels (xstride is
// the input's stride times its channels).
func MulAccPixels(acc []int32, x []int8, w []int32, c, npix, xstride int, zx int32) {
	if npix <= 0 || c <= 0 {
		return
	}
	// Bounds once, for the assembly and the loops below.
	acc = acc[:npix*c]
	x = x[:(npix-1)*xstride+c]
	w = w[:c]
	if hasVectorOps(chosen.name) && c%16 == 0 {
		mulAccPixels(&acc[0], &x[0], &w[0], c, npix, xstride, zx)
		return
	}
	for p := range npix {
		a := acc[p*c : (p+1)*c]
		xs := x[p*xstride : p*xstride+c]
		for i, v := range xs {
			a[i] += (int32(v) - zx) * w[i]
		}
	}
}

// MaxInto sets dst[i] = max(dst[i], src[i]) for i < len(dst).
func MaxInto(dst, src []int8) {
	n := len(dst)
	src = src[:n]
	n64 := 0
	if hasVectorOps(chosen.name) {
		n64 = n &^ 63
		if n64 > 0 {
			maxInto(&dst[0], &src[0], n64)
		}
	}
	for i := n64; i < n; i++ {
		dst[i] = max(dst[i], src[i])
	}
}
