package qgemm

// gemmRef is the portable reference of Gemm. It is always compiled: SIMD
// kernels are tested against it. Four columns of B share each load of A.
//
// It assumes that: m, n, k > 0; len(a) >= (m-1)*lda+k; len(b) >= (n-1)*ldb+k;
// len(c) >= (m-1)*ldc+n.
func gemmRef(m, n, k int, a []int8, lda int, b []int8, ldb int, c []int32, ldc int) {
	for i := 0; i < m; i++ {
		ar := a[i*lda : i*lda+k]
		cr := c[i*ldc : i*ldc+n]
		j := 0
		for ; j+4 <= n; j += 4 {
			b0 := b[j*ldb : j*ldb+k]
			b1 := b[(j+1)*ldb : (j+1)*ldb+k]
			b2 := b[(j+2)*ldb : (j+2)*ldb+k]
			b3 := b[(j+3)*ldb : (j+3)*ldb+k]
			var s0, s1, s2, s3 int32
			for p, av := range ar {
				x := int32(av)
				s0 += x * int32(b0[p])
				s1 += x * int32(b1[p])
				s2 += x * int32(b2[p])
				s3 += x * int32(b3[p])
			}
			cr[j], cr[j+1], cr[j+2], cr[j+3] = s0, s1, s2, s3
		}
		for ; j < n; j++ {
			cr[j] = dotRef(ar, b[j*ldb:j*ldb+k])
		}
	}
}

// dotRef assumes len(b) == len(a).
func dotRef(a, b []int8) int32 {
	var s int32
	b = b[:len(a)]
	for i, v := range a {
		s += int32(v) * int32(b[i])
	}
	return s
}
