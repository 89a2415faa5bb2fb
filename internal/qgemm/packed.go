package qgemm

import (
	"fmt"
	"os"

	"github.com/linesight/linesight/internal/vec"
)

// BlockCols is the column granularity of GemmCols: a range must start at a
// multiple of it (and end at one, or at N).
const BlockCols = 64

// Kernel names, as Packed.Kernel and Kernels report them.
const (
	KernelGeneric    = "generic"
	KernelAVX512VNNI = "avx512vnni"
	KernelAVX2       = "avx2"
	KernelSDOT       = "neon-sdot"
	KernelNEON       = "neon"
)

// impl is one implementation of the packed GEMM: its own layout of B,
// filled once by pack, and a gemm over a column range; and the search's
// reductions (search.go) that go with it.
type impl struct {
	name string
	// kAlign is the k granularity of the kernel: positions past the last
	// multiple go through the scalar tail, so callers that can pad k (im2col
	// rows) pad to it.
	kAlign int
	pack   func(p *Packed)
	gemm   func(p *Packed, m int, a []int8, lda, col0, ncol int, c []int32, ldc int)
	// avx512Search: Dot and ArgminBiased run their AVX-512 versions
	// (dotVNNI, argminVNNI; called directly, not through a function
	// value, so that their arguments do not escape).
	avx512Search bool
	// neonSearch: likewise dotARM64 and argminARM64 (arm64: SDOT for Dot
	// where the chosen kernel is sdot, NEON otherwise).
	neonSearch bool
}

var generic = &impl{name: KernelGeneric, kAlign: 1, pack: func(*Packed) {}, gemm: gemmGeneric}

// impls lists the implementations this machine runs, best first; the
// generic reference is always last. chosen is what Pack uses.
var (
	impls  []*impl
	chosen *impl
)

func init() {
	impls = append(archImpls(), generic)
	chosen = impls[0]
	// LINESIGHT_KERNEL=generic (or another name) forces an implementation,
	// for benchmarks and for ruling a kernel out in the field.
	if want := os.Getenv("LINESIGHT_KERNEL"); want != "" {
		for _, im := range impls {
			if im.name == want {
				chosen = im
			}
		}
	}
}

// Kernels returns the names of the implementations this machine runs, best
// first, and the one Pack uses.
func Kernels() (available []string, used string) {
	for _, im := range impls {
		available = append(available, im.name)
	}
	return available, chosen.name
}

// Packed is B (n×k int8, rows along k) laid out once for the kernel the
// dispatcher chose, so that each Gemm streams it without repacking: weights
// at model load, bank vectors when a bank is opened.
type Packed struct {
	N, K int
	b    []int8 // n×k, the reference layout (generic kernel, k tails)
	im   *impl
	u8   []byte  // AVX-512 VNNI, SDOT and NEON layouts
	i16  []int16 // AVX2 layout
	// offsetA: packed for GemmRowsRequant, whose A rows hold offset
	// bytes; the VNNI layout then keeps B signed (see PackOffsetA). rq is
	// the requantization GemmRowsRequant applies, rqBlk its parameters
	// laid out for the fused VNNI kernel (requantBlock).
	offsetA bool
	rq      *vec.Requant
	rqBlk   []int32
}

// Pack copies b (n rows of k, stride ldb) into the chosen kernel's layout.
func Pack(n, k int, b []int8, ldb int) (*Packed, error) { return packWith(chosen, n, k, b, ldb, nil) }

// PackOffsetA is Pack for GemmRowsRequant, whose A holds int8 values offset
// by 128 (each stored as x+128, the byte x XOR 0x80; see OffsetCopy), and
// whose output q requantizes (q has n channels). With A unsigned and B
// signed, VPDPBUSD needs no row sums: Σ (x+128)·w differs from Σ x·w by
// 128·Σw, a per-column constant the caller folds into q's biases. k must
// be a multiple of KAlign. A Packed made this way serves GemmRowsRequant
// only.
func PackOffsetA(n, k int, b []int8, ldb int, q *vec.Requant) (*Packed, error) {
	if k%chosen.kAlign != 0 {
		return nil, fmt.Errorf("qgemm: PackOffsetA: k=%d is not a multiple of %d", k, chosen.kAlign)
	}
	return packWith(chosen, n, k, b, ldb, q)
}

// packWith packs for im; q non-nil packs for GemmRowsRequant (PackOffsetA).
func packWith(im *impl, n, k int, b []int8, ldb int, q *vec.Requant) (*Packed, error) {
	if n < 0 || k < 0 {
		return nil, fmt.Errorf("qgemm: negative size n=%d k=%d", n, k)
	}
	if k > MaxK {
		return nil, fmt.Errorf("qgemm: k=%d exceeds %d (int32 accumulators could overflow)", k, MaxK)
	}
	if n > 0 && (ldb < k || len(b) < (n-1)*ldb+k) {
		return nil, fmt.Errorf("qgemm: Pack of %dx%d: ldb=%d, len(b)=%d too small", n, k, ldb, len(b))
	}
	if q != nil && len(q.Mult) != n {
		return nil, fmt.Errorf("qgemm: PackOffsetA: requantization of %d channels for %d columns", len(q.Mult), n)
	}
	// The fused kernel clamps after narrowing to int8 with saturation,
	// which equals the definition's clamp for bounds inside int8 only.
	if q != nil && (q.Lo < -128 || q.Hi > 127) {
		return nil, fmt.Errorf("qgemm: PackOffsetA: clamp [%d, %d] outside int8", q.Lo, q.Hi)
	}
	p := &Packed{N: n, K: k, b: make([]int8, n*k), im: im, offsetA: q != nil, rq: q}
	for j := 0; j < n; j++ {
		copy(p.b[j*k:(j+1)*k], b[j*ldb:j*ldb+k])
	}
	im.pack(p)
	// The SIMD layouts cover every k position when k is a multiple of 4;
	// then the reference copy is not needed (a bank need not sit twice in
	// memory).
	if im != generic && k%im.kAlign == 0 {
		p.b = nil
	}
	return p, nil
}

// KAlign is the k granularity of the kernel Pack uses: a k that is a
// multiple of it runs entirely in the kernel.
func KAlign() int { return chosen.kAlign }

// Kernel names the implementation p was packed for.
func (p *Packed) Kernel() string { return p.im.name }

// Gemm computes C = A·Bᵀ for all N columns: c[i*ldc+j] = Σ_p a[i*lda+p]·B[j][p],
// exactly as the package-level Gemm does.
func (p *Packed) Gemm(m int, a []int8, lda int, c []int32, ldc int) error {
	return p.GemmCols(m, a, lda, 0, p.N, c, ldc)
}

// GemmCols computes columns col0..col0+ncol-1 of A·Bᵀ into c[i*ldc+(j-col0)].
// col0 must be a multiple of BlockCols, and col0+ncol one too or N.
func (p *Packed) GemmCols(m int, a []int8, lda, col0, ncol int, c []int32, ldc int) error {
	k := p.K
	if m < 0 || ncol < 0 {
		return fmt.Errorf("qgemm: negative size m=%d ncol=%d", m, ncol)
	}
	if p.offsetA {
		return errOffsetA
	}
	if col0 < 0 || col0+ncol > p.N || col0%BlockCols != 0 || ((col0+ncol)%BlockCols != 0 && col0+ncol != p.N) {
		return fmt.Errorf("qgemm: columns %d..%d of %d: the range must start on a multiple of %d and end on one or at N", col0, col0+ncol, p.N, BlockCols)
	}
	if m == 0 || ncol == 0 {
		return nil
	}
	if lda < k || ldc < ncol {
		return fmt.Errorf("qgemm: leading dimensions lda=%d ldc=%d too small for k=%d, %d columns", lda, ldc, k, ncol)
	}
	if len(a) < (m-1)*lda+k || len(c) < (m-1)*ldc+ncol {
		return fmt.Errorf("qgemm: buffers too short: len(a)=%d len(c)=%d for m=%d k=%d, %d columns", len(a), len(c), m, k, ncol)
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+ncol])
		}
		return nil
	}
	p.im.gemm(p, m, a, lda, col0, ncol, c, ldc)
	return nil
}

var errOffsetA = fmt.Errorf("qgemm: B packed for offset rows (PackOffsetA) serves GemmRowsRequant only")

func gemmGeneric(p *Packed, m int, a []int8, lda, col0, ncol int, c []int32, ldc int) {
	gemmRef(m, ncol, p.K, a, lda, p.b[col0*p.K:], p.K, c, ldc)
}

// addTail adds the products over k positions k0..K-1, which a kernel that
// works in groups of 4 (or 2) along k leaves out.
func (p *Packed) addTail(k0, m int, a []int8, lda, col0, ncol int, c []int32, ldc int) {
	k := p.K
	if k0 >= k {
		return
	}
	for i := 0; i < m; i++ {
		ar := a[i*lda+k0 : i*lda+k]
		cr := c[i*ldc : i*ldc+ncol]
		for j := range cr {
			br := p.b[(col0+j)*k+k0 : (col0+j+1)*k]
			s := cr[j]
			for t, v := range ar {
				s += int32(v) * int32(br[t])
			}
			cr[j] = s
		}
	}
}
