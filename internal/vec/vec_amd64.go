//go:build !noasm && gc

package vec

import (
	"math"
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:generate go run ../asmgen vec

// The AVX-512 kernels (vec_amd64.s) work on whole vectors. Each Go
// function below (xxxAVX512) takes the generic twin's arguments, hands its
// assembly the longest prefix of whole vectors and returns the length it
// did; the entry finishes the rest with the generic twin. They are small
// enough to inline into the entries, so that a call costs what a call to
// the assembly costs (unsafe.SliceData rather than &x[0]: the lengths are
// checked by the entry and n > 0 here, and an index would cost the inliner
// its panic path).

// archImpls: the AVX-512 kernels where the CPU (and the OS, which must
// save the ZMM and mask registers; x/sys/cpu checks both) has AVX-512F and
// AVX-512BW (the byte and word forms: VPMAXSB, VMOVDQU8). They do not need
// VNNI, and which GEMM qgemm chose does not matter.
func archImpls() []*impl {
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW {
		return []*impl{avx512}
	}
	return nil
}

// The assembly. Each does its generic twin's loop on n values (n a
// positive multiple of the vector step named, so no tails), with pointers
// to the first elements the Go functions below have bounds-checked.

// axpyF64: n a multiple of 8.
//
//go:noescape
func axpyF64(acc, x *float64, n int, k float64)

// axpyBytesF32: n a multiple of 16.
//
//go:noescape
func axpyBytesF32(acc *float32, x *uint8, n int, k float32)

// lerp2x2: n a multiple of 16; w is {wx0, wx1, wy0, wy1}.
//
//go:noescape
func lerp2x2(o, a0, a1, b0, b1 *float32, n int, w *[4]float32)

// quantizeF32: n a multiple of 16; prm is scale (float32 bits), zp, qmin,
// qmax, shift.
//
//go:noescape
func quantizeF32(in *float32, out *int8, n int, prm *[5]int32)

// addLUT: n a multiple of 16; lut holds 1<<16 + 3 bytes (each lane's
// gather reads 4).
//
//go:noescape
func addLUT(a, b, out *int8, n int, lut *int8)

// mulAccPixels: c a multiple of 16, npix positive.
//
//go:noescape
func mulAccPixels(acc *int32, x *int8, w *int32, c, npix, xstride int, zx int32)

// maxInto: n a multiple of 64.
//
//go:noescape
func maxInto(dst, src *int8, n int)

// requantRows: rows rows of n channels, n and rows positive (the last
// step of a row is masked, so any n); bias, mult, left and right hold n
// values; zlh is {Zo, Lo, Hi}.
//
//go:noescape
func requantRows(acc *int32, out *int8, n int, bias, mult, left, right *int32, zlh *[3]int32, rows int)

func axpyF64AVX512(acc, x []float64, k float64) int {
	n := len(acc) &^ 7
	if n > 0 {
		axpyF64(unsafe.SliceData(acc), unsafe.SliceData(x), n, k)
	}
	return n
}

func axpyBytesF32AVX512(acc []float32, x []uint8, k float32) int {
	n := len(acc) &^ 15
	if n > 0 {
		axpyBytesF32(unsafe.SliceData(acc), unsafe.SliceData(x), n, k)
	}
	return n
}

func lerp2x2AVX512(o, a0, a1, b0, b1 []float32, w *[4]float32) int {
	n := len(o) &^ 15
	if n > 0 {
		lerp2x2(unsafe.SliceData(o), unsafe.SliceData(a0), unsafe.SliceData(a1), unsafe.SliceData(b0), unsafe.SliceData(b1), n, w)
	}
	return n
}

func quantizeAVX512(in []float32, out []int8, scale float32, zp, qmin, qmax, shift int32) int {
	n := len(out) &^ 15
	if n > 0 {
		prm := [5]int32{int32(math.Float32bits(scale)), zp, qmin, qmax, shift}
		quantizeF32(unsafe.SliceData(in), unsafe.SliceData(out), n, &prm)
	}
	return n
}

func addLUTAVX512(a, b, out, lut []int8) int {
	n := len(out) &^ 15
	if n > 0 {
		addLUT(unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(out), n, unsafe.SliceData(lut[:lutSize]))
	}
	return n
}

// mulAccPixelsAVX512 does every pixel when c is a multiple of 16, none
// otherwise.
func mulAccPixelsAVX512(acc []int32, x []int8, w []int32, c, npix, xstride int, zx int32) int {
	if c%16 != 0 {
		return 0
	}
	mulAccPixels(unsafe.SliceData(acc), unsafe.SliceData(x), unsafe.SliceData(w), c, npix, xstride, zx)
	return npix
}

func maxIntoAVX512(dst, src []int8) int {
	n := len(dst) &^ 63
	if n > 0 {
		maxInto(unsafe.SliceData(dst), unsafe.SliceData(src), n)
	}
	return n
}

// requantRowsAVX512 does every row (the kernel masks each row's last
// step).
func requantRowsAVX512(q *Requant, acc []int32, out []int8, rows int) int {
	n := len(q.Mult)
	// The fields are exported: a Requant not made by NewRequant must not
	// let the kernel read past a short slice.
	bias, left, right := q.Bias[:n], q.Left[:n], q.Right[:n]
	zlh := [3]int32{q.Zo, q.Lo, q.Hi}
	requantRows(unsafe.SliceData(acc), unsafe.SliceData(out), n, unsafe.SliceData(bias), &q.Mult[0], unsafe.SliceData(left), unsafe.SliceData(right), &zlh, rows)
	return rows
}
