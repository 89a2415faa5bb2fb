//go:build !noasm

package qgemm

import (
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/linesight/linesight/internal/vec"
)

//go:generate go run ../asmgen qgemm

//go:noescape
func vnniKernel(a *[6]*int8, b *byte, seg *[3]int, corr *[6]int32, c *[6]*int32, np int, mask uint16)

//go:noescape
func vnniRowSums(a *int8, lda, k, rows int, out *int32)

//go:noescape
func offsetCopyAVX512(dst, src *int8, n int)

//go:noescape
func avx2Kernel(a *[3]*int8, b *int16, kg2 int, c *[3]*int32, np int)

// The VNNI implementation's search reductions use AVX-512F/BW, which
// every VNNI machine has; AVX2's are the generic ones.
var (
	vnni = &impl{name: KernelAVX512VNNI, kAlign: 4, pack: packVNNI, gemm: gemmVNNI, avx512Search: true}
	avx2 = &impl{name: KernelAVX2, kAlign: 2, pack: packAVX2, gemm: gemmAVX2}
)

func archImpls() []*impl {
	var l []*impl
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI {
		l = append(l, vnni)
	}
	if cpu.X86.HasAVX2 {
		l = append(l, avx2)
	}
	return l
}

// offsetCopyArch is OffsetCopy's body in AVX-512 (64 bytes a step instead
// of 8) where the VNNI kernel, the only reader of offset rows in place, is
// the chosen one; it reports whether it did the copy. n = len(dst) =
// len(src) > 0.
func offsetCopyArch(dst, src []int8) bool {
	if chosen != vnni {
		return false
	}
	offsetCopyAVX512(unsafe.SliceData(dst), unsafe.SliceData(src), len(dst))
	return true
}

// AVX-512 VNNI layout. VPDPBUSD multiplies unsigned bytes by signed bytes,
// so B is stored unsigned, b+128 (b XOR 0x80), and the kernel starts each
// row's accumulators at −128·Σa, which makes the sum exact:
// Σ a·(b+128) − 128·Σa = Σ a·b (mod 2^32, and the true value fits int32).
// Columns go in blocks of 64 (4 panels of 16, one ZMM of int32 each; the
// last block of the matrix may have fewer panels), each block as kg groups
// of its panels × 16 columns × 4 bytes along k. Columns past N inside the
// last panel are packed as 0, which contributes nothing.
const (
	vnniRows  = RowsStrip
	vnniPanel = 16
)

func packVNNI(p *Packed) {
	// VPDPBUSD multiplies unsigned by signed bytes. B is stored offset
	// (w+128, undone through A's row sums) unless A is (PackOffsetA).
	flip := byte(0x80)
	if p.offsetA {
		flip = 0
		p.rqBlk = requantBlock(p.rq)
	}
	kg := p.K / 4
	nblk := (p.N + BlockCols - 1) / BlockCols
	p.u8 = make([]byte, nblk*kg*BlockCols*4)
	for blk := range nblk {
		j0 := blk * BlockCols
		np := (min(BlockCols, p.N-j0) + vnniPanel - 1) / vnniPanel
		base := blk * kg * BlockCols * 4
		for g := range kg {
			for pn := range np {
				for col := range vnniPanel {
					j := j0 + pn*vnniPanel + col
					if j >= p.N {
						continue
					}
					o := base + (g*np+pn)*64 + col*4
					for t := range 4 {
						p.u8[o+t] = byte(p.b[j*p.K+4*g+t]) ^ flip
					}
				}
			}
		}
	}
}

func gemmVNNI(p *Packed, m int, a []int8, lda, col0, ncol int, c []int32, ldc int) {
	kg := p.K / 4
	kq := 4 * kg
	var (
		ap      [vnniRows]*int8
		cp      [vnniRows]*int32
		corr    [vnniRows]int32
		scratch [vnniRows][BlockCols]int32
	)
	seg := [3]int{kg, 1, 0} // contiguous rows: one segment
	if kg > 0 {
		for i0 := 0; i0 < m; i0 += vnniRows {
			rows := min(vnniRows, m-i0)
			// The strip's row sums in one call (GemmCols checked that
			// every row holds k values).
			var sums [vnniRows]int32
			vnniRowSums(&a[i0*lda], lda, kq, rows, &sums[0])
			for r := range vnniRows {
				if r < rows {
					ap[r] = &a[(i0+r)*lda]
					corr[r] = -128 * sums[r]
				} else {
					ap[r], corr[r] = ap[0], 0
				}
			}
			for j0 := col0; j0 < col0+ncol; j0 += BlockCols {
				cols := min(BlockCols, p.N-j0)
				np, mask := vnniBlock(cols)
				for r := range vnniRows {
					if r < rows {
						cp[r] = &c[(i0+r)*ldc+(j0-col0)]
					} else {
						cp[r] = &scratch[r][0]
					}
				}
				off := (j0 / BlockCols) * kg * BlockCols * 4
				vnniKernel(&ap, &p.u8[off], &seg, &corr, &cp, np, mask)
			}
		}
	} else {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+ncol])
		}
	}
	p.addTail(kq, m, a, lda, col0, ncol, c, ldc)
}

// AVX2 layout: int16 (sign-extended B), blocks of 32 columns (4 panels of
// 8, one YMM of int32 each), each block as kg2 groups of its panels × 8
// columns × 2 values along k. VPMADDWD of int16 pairs is exact.
const (
	avx2Rows  = 3
	avx2Panel = 8
	avx2Block = 32
)

func packAVX2(p *Packed) {
	kg2 := p.K / 2
	nblk := (p.N + avx2Block - 1) / avx2Block
	p.i16 = make([]int16, nblk*kg2*avx2Block*2)
	for blk := range nblk {
		j0 := blk * avx2Block
		np := (min(avx2Block, p.N-j0) + avx2Panel - 1) / avx2Panel
		base := blk * kg2 * avx2Block * 2
		for g := range kg2 {
			for pn := range np {
				for col := range avx2Panel {
					j := j0 + pn*avx2Panel + col
					if j >= p.N {
						continue
					}
					o := base + (g*np+pn)*16 + col*2
					p.i16[o] = int16(p.b[j*p.K+2*g])
					p.i16[o+1] = int16(p.b[j*p.K+2*g+1])
				}
			}
		}
	}
}

func gemmAVX2(p *Packed, m int, a []int8, lda, col0, ncol int, c []int32, ldc int) {
	kg2 := p.K / 2
	var (
		ap      [avx2Rows]*int8
		cp      [avx2Rows]*int32
		scratch [avx2Rows][avx2Block]int32
	)
	if kg2 == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+ncol])
		}
		p.addTail(0, m, a, lda, col0, ncol, c, ldc)
		return
	}
	for i0 := 0; i0 < m; i0 += avx2Rows {
		rows := min(avx2Rows, m-i0)
		for r := range avx2Rows {
			if r < rows {
				ap[r] = &a[(i0+r)*lda]
			} else {
				ap[r] = ap[0]
			}
		}
		for j0 := col0; j0 < col0+ncol; j0 += avx2Block {
			cols := min(avx2Block, col0+ncol-j0)
			np := (cols + avx2Panel - 1) / avx2Panel
			partial := cols != np*avx2Panel
			for r := range avx2Rows {
				if r < rows && !partial {
					cp[r] = &c[(i0+r)*ldc+(j0-col0)]
				} else {
					cp[r] = &scratch[r][0]
				}
			}
			off := (j0 / avx2Block) * kg2 * avx2Block * 2
			avx2Kernel(&ap, &p.i16[off], kg2, &cp, np)
			if partial {
				for r := range rows {
					copy(c[(i0+r)*ldc+(j0-col0):(i0+r)*ldc+(j0-col0)+cols], scratch[r][:cols])
				}
			}
		}
	}
	p.addTail(2*kg2, m, a, lda, col0, ncol, c, ldc)
}

//go:noescape
func vnniPeak(iters int)

//go:noescape
func avx2Peak(iters int)

// peakLoop runs the chosen kernel's multiply-accumulate instruction back to
// back for iters iterations and returns the MACs it did; 0 when the kernel
// has no such loop.
func peakLoop(name string, iters int) int64 {
	switch name {
	case KernelAVX512VNNI:
		vnniPeak(iters)
		return int64(iters) * 24 * 64
	case KernelAVX2:
		avx2Peak(iters)
		return int64(iters) * 12 * 16
	}
	return 0
}

// argminLanes: for n a positive multiple of 16, per lane l the smallest
// bn[j]−2·dot[j] over j ≡ l (mod 16) and the first j reaching it.
//
//go:noescape
func argminLanes(dot, bn *int32, n int, val, idx *[16]int32)

// dotAVX512: the dot product of n int8 values, n a positive multiple of 32.
//
//go:noescape
func dotAVX512(a, b *int8, n int) int32

// dotVNNI is the dot product of the longest prefix of a and b in whole
// steps of 32 (AVX-512), and that prefix's length; Dot adds the rest. It
// assumes len(a) >= 32 and len(b) == len(a), and is small enough to inline
// into Dot (unsafe.SliceData: an index would cost the inliner its panic
// path).
func dotVNNI(a, b []int8) (int32, int) {
	n := len(a) &^ 31
	return dotAVX512(unsafe.SliceData(a), unsafe.SliceData(b), n), n
}

// argminVNNI is argminRef with the whole steps of 16 in AVX-512: 16 lanes
// of running minima, reduced with the lowest index on ties, then the tail.
func argminVNNI(dot, bn []int32) (int32, int) {
	n := len(dot)
	best, bi := int32(0), -1
	n16 := n &^ 15
	if n16 > 0 {
		var val, idx [16]int32
		argminLanes(&dot[0], &bn[0], n16, &val, &idx)
		for l := range 16 {
			v, j := val[l], int(idx[l])
			if bi < 0 || v < best || (v == best && j < bi) {
				best, bi = v, j
			}
		}
	}
	for j := n16; j < n; j++ {
		if d := bn[j] - 2*dot[j]; bi < 0 || d < best {
			best, bi = d, j
		}
	}
	return best, bi
}

//go:noescape
func vnniArgmin(a *[6]*int8, b *byte, seg *[3]int, corr *[6]int32, st *[6]*LaneMins, np int, mask uint16, bn, cols *int32)

// nearestVNNI is NearestCols with the fused kernel: gemmVNNI's tiles, each
// folded into its rows' states instead of stored.
func nearestVNNI(p *Packed, m int, a []int8, lda, col0, ncol int, bn, cols []int32, state []LaneMins) {
	kg := p.K / 4
	var (
		ap      [vnniRows]*int8
		st      [vnniRows]*LaneMins
		corr    [vnniRows]int32
		sums    [vnniRows]int32
		scratch [vnniRows]LaneMins
	)
	seg := [3]int{kg, 1, 0}
	for i0 := 0; i0 < m; i0 += vnniRows {
		rows := min(vnniRows, m-i0)
		vnniRowSums(&a[i0*lda], lda, p.K, rows, &sums[0])
		for r := range vnniRows {
			if r < rows {
				ap[r], corr[r], st[r] = &a[(i0+r)*lda], -128*sums[r], &state[i0+r]
			} else {
				ap[r], corr[r], st[r] = ap[0], 0, &scratch[r]
			}
		}
		for j0 := col0; j0 < col0+ncol; j0 += BlockCols {
			nc := min(BlockCols, p.N-j0)
			np, mask := vnniBlock(nc)
			off := (j0 / BlockCols) * kg * BlockCols * 4
			vnniArgmin(&ap, &p.u8[off], &seg, &corr, &st, np, mask, &bn[j0], &cols[j0])
		}
	}
}

// vnniBlock is the panel count of a block of cols columns and the store
// mask of its last panel.
func vnniBlock(cols int) (np int, mask uint16) {
	np = (cols + vnniPanel - 1) / vnniPanel
	last := cols - (np-1)*vnniPanel
	return np, uint16(1<<last - 1)
}

//go:noescape
func vnniRequant(a *[6]*int8, b *byte, seg *[3]int, corr *[6]int32, out *[6]*int8, np int, mask uint16, prm *int32, zlh *[3]int32)

// requantBlock lays q's parameters out for the requantizing VNNI kernel
// (GemmRowsRequant), per panel of 16 channels seven vectors it reads as
// memory operands: bias, left shift, multiplier, the odd channels'
// multipliers moved to the even lanes (VPMULDQ reads the low half of each
// 64-bit lane), the rounding mask 2^right−1, the threshold mask>>1 and the
// right shift. Lanes past the last channel stay zero.
func requantBlock(q *vec.Requant) []int32 {
	n := len(q.Mult)
	np := (n + 15) / 16
	blk := make([]int32, np*7*16)
	for c := range n {
		v := blk[(c/16)*7*16:]
		l := c % 16
		mask := int32(1)<<uint(q.Right[c]) - 1
		v[l], v[16+l], v[32+l] = q.Bias[c], q.Left[c], q.Mult[c]
		if l%2 == 1 {
			v[48+l-1] = q.Mult[c]
		}
		v[64+l], v[80+l], v[96+l] = mask, mask>>1, q.Right[c]
	}
	return blk
}

// gemmRowsRequantVNNI is gemmVNNI over rows read in place in segments
// (Rows), with A offset and B signed (PackOffsetA), so that no row sums
// are needed, and each tile requantized into out by the kernel with the
// parameters p was packed with.
func gemmRowsRequantVNNI(p *Packed, r *Rows, col0, ncol int, out []int8, ldo int) {
	q, blk := p.rq, p.rqBlk
	m := len(r.AOff)
	var (
		ap      [vnniRows]*int8
		op      [vnniRows]*int8
		corr    [vnniRows]int32 // unused: the offset is in q's biases, where the accumulators start
		scratch [vnniRows][BlockCols]int8
	)
	seg := [3]int{r.SegLen / 4, r.Seg, r.SegStride - r.SegLen}
	zlh := [3]int32{q.Zo, q.Lo, q.Hi}
	kg := p.K / 4
	for i0 := 0; i0 < m; i0 += vnniRows {
		rows := min(vnniRows, m-i0)
		for i := range vnniRows {
			if i < rows {
				ap[i] = &r.A[r.AOff[i0+i]]
			} else {
				ap[i] = ap[0]
			}
		}
		for j0 := col0; j0 < col0+ncol; j0 += BlockCols {
			np, mask := vnniBlock(min(BlockCols, p.N-j0))
			for i := range vnniRows {
				if i < rows {
					op[i] = &out[(i0+i)*ldo+j0-col0]
				} else {
					op[i] = &scratch[i][0]
				}
			}
			off := (j0 / BlockCols) * kg * BlockCols * 4
			vnniRequant(&ap, &p.u8[off], &seg, &corr, &op, np, mask, &blk[(j0/vnniPanel)*7*vnniPanel], &zlh)
		}
	}
}
