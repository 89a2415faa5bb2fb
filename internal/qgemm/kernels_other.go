//go:build noasm || !(amd64 || arm64)

package qgemm

// archImpls: no SIMD kernels for this architecture or build (-tags noasm);
// the generic reference does the work.
func archImpls() []*impl { return nil }

func peakLoop(string, int) int64 { return 0 }

func hasRequantKernel(string) bool { return false }

func requantRows(acc *int32, out *int8, n int, bias, mult, left, right *int32, zlh *[3]int32, rows int) {
	panic("qgemm: no requantization kernel in this build")
}

func hasArgminKernel(string) bool { return false }

func argminLanes(dot, bn *int32, n int, val, idx *[16]int32) {
	panic("qgemm: no argmin kernel in this build")
}

func hasAddKernel(string) bool { return false }

func addQuant(a, b, out *int8, n int, prm *[14]int32) {
	panic("qgemm: no add kernel in this build")
}

func mulAcc(acc *int32, x *int8, w *int32, n int, zx int32) {
	panic("qgemm: no multiply-accumulate kernel in this build")
}

func maxInto(dst, src *int8, n int) { panic("qgemm: no max kernel in this build") }

func dotAVX512(a, b *int8, n int) int32 { panic("qgemm: no dot kernel in this build") }
