//go:build noasm || !amd64

package qgemm

// Builds without the AVX-512 VNNI kernel (every architecture but amd64,
// and -tags noasm): the entries that would call these fused paths check
// for that kernel first, so the stubs are never reached.

func peakLoop(string, int) int64 { return 0 }

func dotVNNI(a, b []int8) (int32, int) { panic("qgemm: no AVX-512 VNNI kernel in this build") }

func argminVNNI(dot, bn []int32) (int32, int) {
	panic("qgemm: no AVX-512 VNNI kernel in this build")
}

func nearestVNNI(p *Packed, m int, a []int8, lda, col0, ncol int, bn, cols []int32, state []LaneMins) {
	panic("qgemm: no AVX-512 VNNI kernel in this build")
}

func gemmRowsRequantVNNI(p *Packed, r *Rows, col0, ncol int, out []int8, ldo int) {
	panic("qgemm: no AVX-512 VNNI kernel in this build")
}

func offsetCopyArch(dst, src []int8) bool { return false }
