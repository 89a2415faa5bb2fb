package qgemm

import "fmt"

// Gemm computes C = A·Bᵀ over int8 with int32 accumulation:
//
//	for i := 0; i < m; i++ {
//		for j := 0; j < n; j++ {
//			var s int32
//			for p := 0; p < k; p++ {
//				s += int32(a[i*lda+p]) * int32(b[j*ldb+p])
//			}
//			c[i*ldc+j] = s
//		}
//	}
//
// A is m×k and B is n×k, both row-major with rows along k, so that both
// operands stream contiguously (B holds packed weights or bank vectors).
// Values are full-range int8 (-128..127); k up to 2^16 cannot overflow int32.
func Gemm(m, n, k int, a []int8, lda int, b []int8, ldb int, c []int32, ldc int) error {
	if m < 0 || n < 0 || k < 0 {
		return fmt.Errorf("qgemm: negative size m=%d n=%d k=%d", m, n, k)
	}
	if k > MaxK {
		return fmt.Errorf("qgemm: k=%d exceeds %d (int32 accumulators could overflow)", k, MaxK)
	}
	if m == 0 || n == 0 {
		return nil
	}
	if lda < k || ldb < k || ldc < n {
		return fmt.Errorf("qgemm: leading dimensions lda=%d ldb=%d ldc=%d too small for k=%d n=%d", lda, ldb, ldc, k, n)
	}
	if len(a) < (m-1)*lda+k || len(b) < (n-1)*ldb+k || len(c) < (m-1)*ldc+n {
		return fmt.Errorf("qgemm: buffers too short: len(a)=%d len(b)=%d len(c)=%d for m=%d n=%d k=%d", len(a), len(b), len(c), m, n, k)
	}
	gemmRef(m, n, k, a, lda, b, ldb, c, ldc)
	return nil
}

// MaxK is the longest dot product the kernels accept: 128*128*MaxK < 2^31.
const MaxK = 1 << 16

// RowSums sets sums[i] to the sum of row i of the m×k matrix a.
func RowSums(m, k int, a []int8, lda int, sums []int32) {
	for i := 0; i < m; i++ {
		var s int32
		for _, v := range a[i*lda : i*lda+k] {
			s += int32(v)
		}
		sums[i] = s
	}
}
