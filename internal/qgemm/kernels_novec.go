//go:build noasm || !amd64

package qgemm

// Builds without the AVX-512 element-wise kernels (arm64 for now, other
// architectures, -tags noasm): the callers take their scalar paths, and
// these stubs are never reached.

func hasVectorOps(string) bool { return false }

func peakLoop(string, int) int64 { return 0 }

func requantRows(acc *int32, out *int8, n int, bias, mult, left, right *int32, zlh *[3]int32, rows int) {
	panic("qgemm: no vector kernels in this build")
}

func argminLanes(dot, bn *int32, n int, val, idx *[16]int32) {
	panic("qgemm: no vector kernels in this build")
}

func maxInto(dst, src *int8, n int) { panic("qgemm: no vector kernels in this build") }

func dotAVX512(a, b *int8, n int) int32 { panic("qgemm: no vector kernels in this build") }

func quantizeF32(in *float32, out *int8, n int, prm *[5]int32) {
	panic("qgemm: no vector kernels in this build")
}

func axpyF64(acc, x *float64, n int, k float64) { panic("qgemm: no vector kernels in this build") }

func lerp2x2(o, a0, a1, b0, b1 *float32, n int, w *[4]float32) {
	panic("qgemm: no vector kernels in this build")
}

func axpyBytesF32(acc *float32, x *uint8, n int, k float32) {
	panic("qgemm: no vector kernels in this build")
}

func mulAccPixels(acc *int32, x *int8, w *int32, c, npix, xstride int, zx int32) {
	panic("qgemm: no vector kernels in this build")
}

func addLUT(a, b, out *int8, n int, lut *int8) { panic("qgemm: no vector kernels in this build") }

func nearestVNNI(p *Packed, m int, a []int8, lda, col0, ncol int, bn, cols []int32, state []LaneMins) {
	panic("qgemm: no vector kernels in this build")
}

func gemmRowsRequantVNNI(p *Packed, r *Rows, q *Requant, blk []int32, out []int8, ldo int) {
	panic("qgemm: no vector kernels in this build")
}
