package qgemm

import (
	"fmt"
	"math"
)

// LaneMins is one query's running nearest-neighbour state over 16 lanes:
// [0:16] the smallest bn[j] − 2·q·b_j seen in lane j mod 16, [16:32] the
// column index that gave it (−1: none yet).
type LaneMins [32]int32

// Reset empties the state.
func (s *LaneMins) Reset() {
	for l := range 16 {
		s[l], s[16+l] = math.MaxInt32, -1
	}
}

// Best is the smallest value over the lanes and the lowest index reaching
// it (−1 if no column was seen).
func (s *LaneMins) Best() (int32, int32) {
	best, bi := int32(math.MaxInt32), int32(-1)
	for l := range 16 {
		v, j := s[l], s[16+l]
		if j >= 0 && (bi < 0 || v < best || (v == best && j < bi)) {
			best, bi = v, j
		}
	}
	return best, bi
}

// NearestInKernel reports whether NearestCols runs inside the GEMM kernel
// here for rows of k values (elsewhere it is a slow reference that
// allocates, and callers use Gemm and ArgminBiased instead).
func NearestInKernel(k int) bool { return chosen.name == KernelAVX512VNNI && k%4 == 0 }

// NearestCols folds columns [col0, col0+ncol) of B into the states of m
// query rows (rows of a, lda apart): for row i and column j,
// d = bn[j] − 2·(a_i · b_j), and lane j mod 16 of state[i] keeps the
// smallest d with cols[j], a strictly smaller d replacing. Columns must be
// folded in increasing order for ties to keep the lowest index. The column
// range is block-aligned as for GemmCols; bn and cols are indexed by column
// (len >= N).
func (p *Packed) NearestCols(m int, a []int8, lda, col0, ncol int, bn, cols []int32, state []LaneMins) error {
	if p.offsetA {
		return errOffsetA
	}
	k := p.K
	if m < 0 || ncol < 0 || col0 < 0 || col0+ncol > p.N || col0%BlockCols != 0 || ((col0+ncol)%BlockCols != 0 && col0+ncol != p.N) {
		return fmt.Errorf("qgemm: NearestCols of rows %d, columns %d..%d of %d", m, col0, col0+ncol, p.N)
	}
	if m == 0 || ncol == 0 {
		return nil
	}
	if lda < k || len(a) < (m-1)*lda+k || len(state) < m || len(bn) < col0+ncol || len(cols) < col0+ncol {
		return fmt.Errorf("qgemm: NearestCols buffers: a %d (lda %d, k %d), state %d, bn %d, cols %d for %d rows to column %d",
			len(a), lda, k, len(state), len(bn), len(cols), m, col0+ncol)
	}
	if p.im.name == KernelAVX512VNNI && k%4 == 0 && k > 0 {
		nearestVNNI(p, m, a, lda, col0, ncol, bn, cols, state)
		return nil
	}
	c := make([]int32, m*ncol)
	if err := p.GemmCols(m, a, lda, col0, ncol, c, ncol); err != nil {
		return err
	}
	for i := range m {
		s := &state[i]
		for t, dot := range c[i*ncol : (i+1)*ncol] {
			j := col0 + t
			if d := bn[j] - 2*dot; d < s[j%16] {
				s[j%16], s[16+j%16] = d, cols[j]
			}
		}
	}
	return nil
}
