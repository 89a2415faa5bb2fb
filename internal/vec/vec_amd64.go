//go:build !noasm && gc

package vec

import (
	"math"

	"golang.org/x/sys/cpu"
)

//go:generate go run ../asmgen vec

// The AVX-512 kernels (vec_amd64.s) work on whole vectors: each Go
// function below hands its assembly the longest prefix it takes and
// finishes the tail with the generic twin (or, for Lerp2x2, its
// per-element function, which inlines), so that together they have the
// generic twin's signature and contract.

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

func axpyF64AVX512(acc, x []float64, k float64) {
	n8 := len(acc) &^ 7
	if n8 > 0 {
		axpyF64(&acc[0], &x[0], n8, k)
	}
	axpyF64Generic(acc[n8:], x[n8:], k)
}

func axpyBytesF32AVX512(acc []float32, x []uint8, k float32) {
	n16 := len(acc) &^ 15
	if n16 > 0 {
		axpyBytesF32(&acc[0], &x[0], n16, k)
	}
	axpyBytesF32Generic(acc[n16:], x[n16:], k)
}

func lerp2x2AVX512(o, a0, a1, b0, b1 []float32, w *[4]float32) {
	n16 := len(o) &^ 15
	if n16 > 0 {
		lerp2x2(&o[0], &a0[0], &a1[0], &b0[0], &b1[0], n16, w)
	}
	for i := n16; i < len(o); i++ {
		o[i] = lerp1(w, a0[i], a1[i], b0[i], b1[i])
	}
}

func quantizeAVX512(in []float32, out []int8, scale float32, zp, qmin, qmax, shift int32) {
	n16 := len(out) &^ 15
	if n16 > 0 {
		prm := [5]int32{int32(math.Float32bits(scale)), zp, qmin, qmax, shift}
		quantizeF32(&in[0], &out[0], n16, &prm)
	}
	quantizeGeneric(in[n16:], out[n16:], scale, zp, qmin, qmax, shift)
}

func addLUTAVX512(a, b, out, lut []int8) {
	n16 := len(out) &^ 15
	if n16 > 0 {
		addLUT(&a[0], &b[0], &out[0], n16, &lut[:lutSize][0])
	}
	addLUTGeneric(a[n16:], b[n16:], out[n16:], lut)
}

func mulAccPixelsAVX512(acc []int32, x []int8, w []int32, c, npix, xstride int, zx int32) {
	if c%16 != 0 {
		mulAccPixelsGeneric(acc, x, w, c, npix, xstride, zx)
		return
	}
	mulAccPixels(&acc[0], &x[0], &w[0], c, npix, xstride, zx)
}

func maxIntoAVX512(dst, src []int8) {
	n64 := len(dst) &^ 63
	if n64 > 0 {
		maxInto(&dst[0], &src[0], n64)
	}
	maxIntoGeneric(dst[n64:], src[n64:])
}

func requantRowsAVX512(q *Requant, acc []int32, out []int8, rows int) {
	n := len(q.Mult)
	// The fields are exported: a Requant not made by NewRequant must not
	// let the kernel read past a short slice.
	bias, left, right := q.Bias[:n], q.Left[:n], q.Right[:n]
	zlh := [3]int32{q.Zo, q.Lo, q.Hi}
	requantRows(&acc[0], &out[0], n, &bias[0], &q.Mult[0], &left[0], &right[0], &zlh, rows)
}
