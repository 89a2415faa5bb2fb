package qgemm

import "fmt"

// Rows is an A operand read in place rather than copied: row i is Seg
// segments of SegLen values, the first at A[AOff[i]], each next one
// SegStride values further. One output pixel's patch of a convolution over
// a padded NHWC input has that shape (a segment per filter row), so a
// kernel that follows segments needs no im2col copy.
type Rows struct {
	A         []int8
	AOff      []int32
	SegLen    int
	Seg       int
	SegStride int
}

// RowsInPlace reports whether the chosen kernel reads rows of segments of
// segLen values in place. GemmRows is correct with every kernel, but
// elsewhere it copies each row out and allocates: callers copy rows into
// their own buffer and use Gemm instead.
func RowsInPlace(segLen int) bool {
	return chosen.name == KernelAVX512VNNI && segLen > 0 && segLen%4 == 0
}

// GemmRows sets C row i (at c[i·ldc:], all N columns) to A row i · Bᵀ for
// the len(r.AOff) rows r describes; Seg·SegLen must be p.K.
func (p *Packed) GemmRows(r *Rows, c []int32, ldc int) error {
	m := len(r.AOff)
	if r.SegLen <= 0 || r.Seg <= 0 || r.SegLen*r.Seg != p.K || (r.Seg > 1 && r.SegStride < r.SegLen) {
		return fmt.Errorf("qgemm: GemmRows: %d segments of %d (stride %d) for k=%d", r.Seg, r.SegLen, r.SegStride, p.K)
	}
	if m == 0 || p.N == 0 {
		return nil
	}
	if ldc < p.N || len(c) < (m-1)*ldc+p.N {
		return fmt.Errorf("qgemm: GemmRows: C of %d for %d rows of %d (ldc %d)", len(c), m, p.N, ldc)
	}
	span := (r.Seg-1)*r.SegStride + r.SegLen
	for i, off := range r.AOff {
		if off < 0 || int(off)+span > len(r.A) {
			return fmt.Errorf("qgemm: GemmRows row %d at %d (+%d) outside A of %d", i, off, span, len(r.A))
		}
	}
	if p.im.name == KernelAVX512VNNI && r.SegLen%4 == 0 {
		gemmRowsVNNI(p, r, c, ldc)
		return nil
	}
	// Other kernels: each row copied out, then the packed GEMM.
	row := make([]int8, p.K)
	for i, off := range r.AOff {
		for sg := range r.Seg {
			a := int(off) + sg*r.SegStride
			copy(row[sg*r.SegLen:], r.A[a:a+r.SegLen])
		}
		if err := p.GemmCols(1, row, p.K, 0, p.N, c[i*ldc:i*ldc+p.N], p.N); err != nil {
			return err
		}
	}
	return nil
}
