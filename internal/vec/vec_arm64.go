//go:build !noasm && gc

package vec

import (
	"math"
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:generate go run ../asmgen vec

// The NEON kernels (vec_arm64.s, Advanced SIMD) work on whole steps. Each
// Go function below (xxxNEON) takes the generic twin's arguments, hands its
// assembly the longest prefix of whole steps and returns the length it
// did; the entry finishes the rest with the generic twin, as on amd64.
// AddQuant's table of 65536 pairs would need a gather, which NEON lacks
// (TBL reaches 64 bytes): its NEON kernel computes the three fixed-point
// rescalings instead, with the requantization's instructions.

// archImpls: NEON (ASIMD) is mandatory on arm64, but x/sys/cpu reports it
// and a kernel is offered only on what the CPU says it has. None of these
// kernels needs dotprod (qgemm's Dot uses SDOT where there is one).
func archImpls() []*impl {
	if cpu.ARM64.HasASIMD {
		return []*impl{neon}
	}
	return nil
}

// The assembly: each does its generic twin's loop on n values, n a
// positive multiple of the step named (no tails), from pointers to the
// first elements the Go functions below have bounds-checked.

// axpyF64NEON: n a multiple of 8.
//
//go:noescape
func axpyF64NEONAsm(acc, x *float64, n int, k float64)

// axpyBytesF32NEONAsm: n a multiple of 16.
//
//go:noescape
func axpyBytesF32NEONAsm(acc *float32, x *uint8, n int, k float32)

// lerp2x2NEONAsm: n a multiple of 8; w is {wx0, wx1, wy0, wy1}.
//
//go:noescape
func lerp2x2NEONAsm(o, a0, a1, b0, b1 *float32, n int, w *[4]float32)

// quantizeNEONAsm: n a multiple of 16; prm is scale (float32 bits), zp,
// qmin, qmax, shift.
//
//go:noescape
func quantizeNEONAsm(in *float32, out *int8, n int, prm *[5]int32)

// mulAccPixelsNEONAsm: c a multiple of 16, npix positive.
//
//go:noescape
func mulAccPixelsNEONAsm(acc *int32, x *int8, w *int32, c, npix, xstride int, zx int32)

// maxIntoNEONAsm: n a multiple of 64.
//
//go:noescape
func maxIntoNEONAsm(dst, src *int8, n int)

// addNEONAsm: n a multiple of 16; prm is AddQuant's parameters.
//
//go:noescape
func addNEONAsm(a, b, out *int8, n int, prm *[14]int32)

// requantRowsNEONAsm: channels [0, n16) of rows rows of n channels (n16 a
// positive multiple of 16, n16 <= n, rows positive); bias, mult, left and
// right hold at least n16 values; zlh is {Zo, Lo, Hi}.
//
//go:noescape
func requantRowsNEONAsm(acc *int32, out *int8, n, n16 int, bias, mult, left, right *int32, zlh *[3]int32, rows int)

func axpyF64NEON(acc, x []float64, k float64) int {
	n := len(acc) &^ 7
	if n > 0 {
		axpyF64NEONAsm(unsafe.SliceData(acc), unsafe.SliceData(x), n, k)
	}
	return n
}

func axpyBytesF32NEON(acc []float32, x []uint8, k float32) int {
	n := len(acc) &^ 15
	if n > 0 {
		axpyBytesF32NEONAsm(unsafe.SliceData(acc), unsafe.SliceData(x), n, k)
	}
	return n
}

func lerp2x2NEON(o, a0, a1, b0, b1 []float32, w *[4]float32) int {
	n := len(o) &^ 7
	if n > 0 {
		lerp2x2NEONAsm(unsafe.SliceData(o), unsafe.SliceData(a0), unsafe.SliceData(a1), unsafe.SliceData(b0), unsafe.SliceData(b1), n, w)
	}
	return n
}

func quantizeNEON(in []float32, out []int8, scale float32, zp, qmin, qmax, shift int32) int {
	n := len(out) &^ 15
	if n > 0 {
		prm := [5]int32{int32(math.Float32bits(scale)), zp, qmin, qmax, shift}
		quantizeNEONAsm(unsafe.SliceData(in), unsafe.SliceData(out), n, &prm)
	}
	return n
}

func addNEON(prm *[14]int32, a, b, out []int8) int {
	n := len(out) &^ 15
	if n > 0 {
		addNEONAsm(unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(out), n, prm)
	}
	return n
}

// mulAccPixelsNEON does every pixel when c is a multiple of 16, none
// otherwise.
func mulAccPixelsNEON(acc []int32, x []int8, w []int32, c, npix, xstride int, zx int32) int {
	if c%16 != 0 {
		return 0
	}
	mulAccPixelsNEONAsm(unsafe.SliceData(acc), unsafe.SliceData(x), unsafe.SliceData(w), c, npix, xstride, zx)
	return npix
}

func maxIntoNEON(dst, src []int8) int {
	n := len(dst) &^ 63
	if n > 0 {
		maxIntoNEONAsm(unsafe.SliceData(dst), unsafe.SliceData(src), n)
	}
	return n
}

// requantRowsNEON does every row: the assembly the whole steps of 16
// channels of each, the generic twin the last n mod 16 channels of each.
func requantRowsNEON(q *Requant, acc []int32, out []int8, rows int) int {
	n := len(q.Mult)
	n16 := n &^ 15
	if n16 > 0 {
		// The fields are exported: a Requant not made by NewRequant must
		// not let the kernel read past a short slice.
		bias, left, right := q.Bias[:n16], q.Left[:n16], q.Right[:n16]
		zlh := [3]int32{q.Zo, q.Lo, q.Hi}
		requantRowsNEONAsm(unsafe.SliceData(acc), unsafe.SliceData(out), n, n16, unsafe.SliceData(bias), &q.Mult[0], unsafe.SliceData(left), unsafe.SliceData(right), &zlh, rows)
	}
	if n16 < n {
		for r := range rows {
			q.channelsGeneric(acc[r*n:(r+1)*n], out[r*n:(r+1)*n], n16)
		}
	}
	return rows
}
