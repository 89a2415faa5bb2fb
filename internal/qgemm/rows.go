package qgemm

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

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

// RowsStrip is the number of rows the in-place kernel multiplies at once:
// callers that split a GemmRowsRequant over threads split on multiples of
// it, so that every tile but the matrix's last is full.
const RowsStrip = 6

// RowsInPlace reports whether the chosen kernel reads rows of segments of
// segLen values in place. GemmRowsRequant is correct with every kernel,
// but elsewhere it copies the rows out and allocates: callers copy rows
// into their own buffer and use Gemm instead.
func RowsInPlace(segLen int) bool {
	return chosen.name == KernelAVX512VNNI && segLen > 0 && segLen%4 == 0
}

// check reports whether r describes rows of k values inside r.A.
func (r *Rows) check(k int) error {
	// Segments may overlap (a filter row read past its end meets zero
	// weights; the next segment starts inside the bytes read).
	if r.SegLen <= 0 || r.Seg <= 0 || r.SegLen*r.Seg != k || r.SegStride < 0 {
		return fmt.Errorf("%d segments of %d (stride %d) for k=%d", r.Seg, r.SegLen, r.SegStride, k)
	}
	span := (r.Seg-1)*r.SegStride + r.SegLen
	for i, off := range r.AOff {
		if off < 0 || int(off)+span > len(r.A) {
			return fmt.Errorf("row %d at %d (+%d) outside A of %d", i, off, span, len(r.A))
		}
	}
	return nil
}

// GemmRowsRequant multiplies rows read in place by Bᵀ and requantizes
// them: out row i (at out[i·ldo:], N values) = the requantization p was
// packed with (PackOffsetA) of A row i · Bᵀ, the row made of its segments
// (Rows). p must come from PackOffsetA and r.A hold offset bytes (x+128,
// see OffsetCopy); the requantization's biases must include −128·Σw per
// column for that offset. With the AVX-512 VNNI kernel the int32 tile is
// requantized in registers; elsewhere each row is copied out, multiplied
// and requantized apart (vec.Requant), which allocates (see RowsInPlace).
func (p *Packed) GemmRowsRequant(r *Rows, out []int8, ldo int) error {
	return p.GemmRowsRequantCols(r, 0, p.N, out, ldo)
}

// GemmRowsRequantCols is GemmRowsRequant for output columns col0..col0+ncol-1
// only, written to out[i·ldo+(j−col0)]: a convolution split over threads
// by tiles of rows and columns, not by rows alone, has many more pieces
// to even out the threads' loads when it has few output pixels. col0 must
// be a multiple of BlockCols, and col0+ncol one too or N. Each output value
// is the one GemmRowsRequant gives.
func (p *Packed) GemmRowsRequantCols(r *Rows, col0, ncol int, out []int8, ldo int) error {
	if !p.offsetA {
		return fmt.Errorf("qgemm: GemmRowsRequant needs B packed by PackOffsetA")
	}
	m := len(r.AOff)
	if err := r.check(p.K); err != nil {
		return fmt.Errorf("qgemm: GemmRowsRequant: %w", err)
	}
	if ncol < 0 || col0 < 0 || col0+ncol > p.N || col0%BlockCols != 0 || ((col0+ncol)%BlockCols != 0 && col0+ncol != p.N) {
		return fmt.Errorf("qgemm: GemmRowsRequant: columns %d..%d of %d: the range must start on a multiple of %d and end on one or at N", col0, col0+ncol, p.N, BlockCols)
	}
	if m == 0 || ncol == 0 {
		return nil
	}
	if ldo < ncol || len(out) < (m-1)*ldo+ncol {
		return fmt.Errorf("qgemm: GemmRowsRequant: out of %d for %d rows of %d (ldo %d)", len(out), m, ncol, ldo)
	}
	// A B laid out for the VNNI kernel is read by the fused kernel only
	// (k is a multiple of 4: PackOffsetA checked).
	vnni := p.im.name == KernelAVX512VNNI
	if vnni && r.SegLen%4 == 0 {
		gemmRowsRequantVNNI(p, r, col0, ncol, out, ldo)
		return nil
	}
	if col0 != 0 || ncol != p.N {
		// The slow paths below make whole rows: make them apart and
		// keep the range.
		full := make([]int8, m*p.N)
		if err := p.GemmRowsRequantCols(r, 0, p.N, full, p.N); err != nil {
			return err
		}
		for i := range m {
			copy(out[i*ldo:i*ldo+ncol], full[i*p.N+col0:])
		}
		return nil
	}
	// Elsewhere: the rows copied out contiguously, then the kernel's own
	// path.
	a := make([]int8, m*p.K)
	for i, off := range r.AOff {
		for sg := range r.Seg {
			s := int(off) + sg*r.SegStride
			copy(a[i*p.K+sg*r.SegLen:], r.A[s:s+r.SegLen])
		}
	}
	if vnni {
		aoff := make([]int32, m)
		for i := range aoff {
			aoff[i] = int32(i * p.K)
		}
		gemmRowsRequantVNNI(p, &Rows{A: a, AOff: aoff, SegLen: p.K, Seg: 1}, 0, p.N, out, ldo)
		return nil
	}
	// Other kernels multiply signed A: the offset is taken back out of
	// the rows, and 128·Σw (which q's biases subtract) is added, found
	// as a row of ones times Bᵀ.
	for i := range a {
		a[i] ^= -128
	}
	ones := make([]int8, p.K)
	for i := range ones {
		ones[i] = 1
	}
	colSum := make([]int32, p.N)
	acc := make([]int32, p.N)
	p.im.gemm(p, 1, ones, p.K, 0, p.N, colSum, p.N)
	for i := range m {
		p.im.gemm(p, 1, a[i*p.K:], p.K, 0, p.N, acc, p.N)
		for j, s := range colSum {
			acc[j] += 128 * s
		}
		p.rq.Row(acc, out[i*ldo:i*ldo+p.N])
	}
	return nil
}

// OffsetCopy copies int8 values from src into dst as offset bytes x+128
// (x XOR 0x80), the A operand of GemmRowsRequant; it copies min(len(dst),
// len(src)) values.
func OffsetCopy(dst, src []int8) {
	n := min(len(dst), len(src))
	if n == 0 {
		return
	}
	if offsetCopyArch(dst[:n], src[:n]) {
		return
	}
	// As bytes, eight at a time (one load, one store each).
	d := unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), n)
	s := unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), n)
	i := 0
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(d[i:], binary.LittleEndian.Uint64(s[i:])^0x8080808080808080)
	}
	for ; i < n; i++ {
		d[i] = s[i] ^ 0x80
	}
}
