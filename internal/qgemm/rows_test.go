package qgemm

import (
	"math/rand"
	"testing"
)

// TestGemmRowsMatchesCopiedRows: rows read in place in segments equal the
// reference GEMM of the same rows copied out (im2col), for every kernel,
// on row and column tails, extreme values, strides and rows in any order;
// C is written only in its rows' first N columns.
func TestGemmRowsMatchesCopiedRows(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	for _, im := range impls {
		for _, sh := range []struct{ segLen, seg, stride, n, m int }{
			{192, 3, 58 * 64, 64, 13}, // ResNet18 layer1, padded input
			{384, 3, 30 * 128, 128, 7},
			{12, 3, 40, 100, 1},
			{16, 1, 16, 17, 6},
			{8, 5, 9, 130, 20},
			{4, 10, 6, 20, 7},   // more filter rows than one row-sum call takes
			{21, 7, 100, 64, 5}, // not a multiple of 4: copied rows
		} {
			for mode := range 3 {
				k := sh.segLen * sh.seg
				b := make([]int8, sh.n*k)
				fill(r, b, mode)
				p, err := packWith(im, sh.n, k, b, k)
				if err != nil {
					t.Fatal(err)
				}
				span := (sh.seg-1)*sh.stride + sh.segLen
				a := make([]int8, span+3*sh.m+50)
				fill(r, a, mode)
				rows := Rows{A: a, SegLen: sh.segLen, Seg: sh.seg, SegStride: sh.stride}
				copied := make([]int8, sh.m*k)
				for i := range sh.m {
					off := r.Intn(len(a) - span + 1)
					rows.AOff = append(rows.AOff, int32(off))
					for sg := range sh.seg {
						copy(copied[i*k+sg*sh.segLen:], a[off+sg*sh.stride:off+sg*sh.stride+sh.segLen])
					}
				}
				ldc := sh.n + 5
				c := make([]int32, sh.m*ldc)
				for i := range c {
					c[i] = -7 // canary
				}
				want := make([]int32, sh.m*sh.n)
				gemmRef(sh.m, sh.n, k, copied, k, b, k, want, sh.n)
				if err := p.GemmRows(&rows, c, ldc); err != nil {
					t.Fatal(err)
				}
				for i := range sh.m {
					for j := range ldc {
						got := c[i*ldc+j]
						if j >= sh.n {
							if got != -7 {
								t.Fatalf("%s %+v: C[%d][%d] past N changed to %d", im.name, sh, i, j, got)
							}
							continue
						}
						if got != want[i*sh.n+j] {
							t.Fatalf("%s %+v mode %d: C[%d][%d] = %d, want %d", im.name, sh, mode, i, j, got, want[i*sh.n+j])
						}
					}
				}
			}
		}
	}
}

func TestGemmRowsRejectsBadRows(t *testing.T) {
	p, err := Pack(4, 12, make([]int8, 48), 12)
	if err != nil {
		t.Fatal(err)
	}
	a, c := make([]int8, 30), make([]int32, 8)
	for _, r := range []Rows{
		{A: a, AOff: []int32{0}, SegLen: 4, Seg: 2, SegStride: 4},       // k = 8, not 12
		{A: a, AOff: []int32{0}, SegLen: 4, Seg: 3, SegStride: 2},       // overlapping segments
		{A: a, AOff: []int32{20}, SegLen: 4, Seg: 3, SegStride: 5},      // past the end of A
		{A: a, AOff: []int32{-1}, SegLen: 4, Seg: 3, SegStride: 4},      // negative offset
		{A: a, AOff: []int32{0, 1, 2}, SegLen: 4, Seg: 3, SegStride: 4}, // C too short
	} {
		if err := p.GemmRows(&r, c, 4); err == nil {
			t.Errorf("GemmRows accepted %+v", r)
		}
	}
}
