package vec

// MulAccPixels adds, for npix pixels of c channels, to pixel p's
// accumulators acc[p·c : (p+1)·c] the products (x[p·xstride : p·xstride+c]
// − zx)·w[:c]:
//
//	for p := range npix {
//		for i := range c {
//			acc[p*c+i] += (int32(x[p*xstride+i]) - zx) * w[i]
//		}
//	}
//
// Products of int8 less a zero point by int32 weights stay exact in int32
// for the filters TFLite accepts. It is one depthwise filter tap applied
// across a row of output pixels (xstride is the input's stride times its
// channels). Nothing happens when npix or c is not positive.
func MulAccPixels(acc []int32, x []int8, w []int32, c, npix, xstride int, zx int32) {
	if npix <= 0 || c <= 0 {
		return
	}
	// Bounds once, for the kernels.
	acc, x, w = acc[:npix*c], x[:(npix-1)*xstride+c], w[:c]
	done := 0
	if active == avx512 {
		done = mulAccPixelsAVX512(acc, x, w, c, npix, xstride, zx)
	} else if active == neon {
		done = mulAccPixelsNEON(acc, x, w, c, npix, xstride, zx)
	}
	if done < npix {
		mulAccPixelsGeneric(acc[done*c:], x[done*xstride:], w, c, npix-done, xstride, zx)
	}
}

func mulAccPixelsGeneric(acc []int32, x []int8, w []int32, c, npix, xstride int, zx int32) {
	for p := range npix {
		a := acc[p*c : (p+1)*c]
		xs := x[p*xstride : p*xstride+c]
		for i, v := range xs {
			a[i] += (int32(v) - zx) * w[i]
		}
	}
}

// MaxInto sets dst[i] = max(dst[i], src[i]) for i < len(dst) (a max pool
// tap across channels); src must hold at least len(dst) values.
func MaxInto(dst, src []int8) {
	src = src[:len(dst)]
	done := 0
	if active == avx512 {
		done = maxIntoAVX512(dst, src)
	} else if active == neon {
		done = maxIntoNEON(dst, src)
	}
	maxIntoGeneric(dst[done:], src[done:])
}

func maxIntoGeneric(dst, src []int8) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = max(dst[i], src[i])
	}
}
