package main

import "bytes"

// The arm64 kernels of package vec (Advanced SIMD, which every arm64 CPU
// has). Each works on whole steps (the Go side hands it the longest prefix
// of whole steps and the generic twin does the rest) and gives its generic
// twin's bits: the integer ones wrap, saturate and round exactly as the Go
// expressions do (see each function), and the float ones multiply and add
// in separate, correctly rounded instructions (never FMLA, which would
// fuse them), as the twins' explicit conversions require. Linux runs
// arm64 processes with FPCR.FZ and FPCR.DN clear, the same for vector and
// scalar instructions, so subnormals are kept on both sides.

func vecARM64() []byte {
	header("!noasm && gc")
	neonRequant()
	neonMaxInto()
	neonQuantize()
	neonAxpyF64()
	neonAxpyBytesF32()
	neonLerp2x2()
	neonMulAccPixels()
	neonAdd()
	return bytes.Clone(out.Bytes())
}

// ld4 and st4 load or store four consecutive vectors, advancing the pointer.
func ld4(reg string, v0 int, arr string) {
	p("\tVLD1.P 64(%s), [V%d.%s, V%d.%s, V%d.%s, V%d.%s]", reg, v0, arr, v0+1, arr, v0+2, arr, v0+3, arr)
}

func st4(reg string, v0 int, arr string) {
	p("\tVST1.P [V%d.%s, V%d.%s, V%d.%s, V%d.%s], 64(%s)", v0, arr, v0+1, arr, v0+2, arr, v0+3, arr, reg)
}

// each emits f(i) for the four vectors of a step.
func each(f func(i int) string) {
	for i := range 4 {
		p("\t%s", f(i))
	}
}

// narrow16 narrows four int32 vectors V0..V3 (truncating, as Go's int8()
// conversion does) into the 16 bytes of V0.
func narrow16() {
	p("\t%s", xtn(0, 0, s4, false))
	p("\t%s", xtn(0, 1, s4, true))
	p("\t%s", xtn(2, 2, s4, false))
	p("\t%s", xtn(2, 3, s4, true))
	p("\t%s", xtn(0, 0, h8, false))
	p("\t%s", xtn(0, 2, h8, true))
}

// neonRequant: func requantRowsNEONAsm(acc *int32, out *int8, n, n16 int, bias, mult, left, right *int32, zlh *[3]int32, rows int)
//
// Channels [0, n16) of rows rows of n (n16 a positive multiple of 16), 16
// per step, as requantRowsGeneric:
//
//	v := acc + bias                 ADD (wraps, as int32 + does)
//	v <<= left                      SSHL by left (wraps, as << on int32)
//	v = SRDHM(v, mult)              SQRDMULH: (2·v·m + 2^31) >> 32 is
//	                                (v·m + 2^30) >> 31, SRDHM's rounding;
//	                                it saturates the one case SRDHM does
//	v = RDBPOT(v, right)            SRSHL by −right rounds half up; adding
//	                                −1 to negative v first (SQADD of
//	                                (v AND −right) >> 31: 0 when right is 0)
//	                                makes ties go away from zero, as
//	                                gemmlowp's NEON path does
//	out = int8(clamp(v + zo))       ADD, SMAX, SMIN, XTN
func neonRequant() {
	p("// func requantRowsNEONAsm(acc *int32, out *int8, n, n16 int, bias, mult, left, right *int32, zlh *[3]int32, rows int)")
	p("TEXT ·requantRowsNEONAsm(SB), NOSPLIT, $0-80")
	p("\tMOVD acc+0(FP), R10")
	p("\tMOVD out+8(FP), R11")
	p("\tMOVD n+16(FP), R14")
	p("\tLSL $2, R14, R15 // a row of accumulators in bytes")
	p("\tMOVD zlh+64(FP), R7")
	p("\tMOVW 0(R7), R8")
	p("\tVDUP R8, V28.S4 // zo")
	p("\tMOVW 4(R7), R8")
	p("\tVDUP R8, V29.S4 // lo")
	p("\tMOVW 8(R7), R8")
	p("\tVDUP R8, V30.S4 // hi")
	p("\tMOVD rows+72(FP), R2")
	p("requant_row:")
	p("\tMOVD R10, R12")
	p("\tMOVD R11, R13")
	p("\tMOVD n16+24(FP), R9")
	p("\tMOVD bias+32(FP), R3")
	p("\tMOVD mult+40(FP), R4")
	p("\tMOVD left+48(FP), R5")
	p("\tMOVD right+56(FP), R6")
	p("requant_loop:")
	ld4("R12", 0, "S4")
	ld4("R3", 4, "S4")
	each(func(i int) string { return vadd(s4, i, i, 4+i) }) // v = acc + bias
	ld4("R5", 4, "S4")
	each(func(i int) string { return sshl(s4, i, i, 4+i) }) // v <<= left
	ld4("R4", 4, "S4")
	each(func(i int) string { return sqrdmulh(s4, i, i, 4+i) }) // SRDHM(v, mult)
	ld4("R6", 4, "S4")
	each(func(i int) string { return vneg(4+i, 4+i) })       // −right
	each(func(i int) string { return vand(8+i, i, 4+i) })    // v AND −right
	each(func(i int) string { return sshr4s(8+i, 8+i, 31) }) // −1 for negative v when right > 0
	each(func(i int) string { return sqadd(s4, i, i, 8+i) })
	each(func(i int) string { return srshl(s4, i, i, 4+i) }) // rounding shift right
	each(func(i int) string { return vadd(s4, i, i, 28) })   // + zo
	each(func(i int) string { return smax(s4, i, i, 29) })
	each(func(i int) string { return smin(s4, i, i, 30) })
	narrow16()
	p("\tVST1.P [V0.B16], 16(R13)")
	p("\tSUBS $16, R9, R9")
	p("\tBNE requant_loop")
	p("\tADD R15, R10, R10")
	p("\tADD R14, R11, R11")
	p("\tSUBS $1, R2, R2")
	p("\tBNE requant_row")
	p("\tRET")
	p("")
}

// neonMaxInto: func maxIntoNEONAsm(dst, src *int8, n int)
// dst = max(dst, src), 64 bytes per step (SMAX).
func neonMaxInto() {
	p("// func maxIntoNEONAsm(dst, src *int8, n int)")
	p("TEXT ·maxIntoNEONAsm(SB), NOSPLIT, $0-24")
	p("\tMOVD dst+0(FP), R0")
	p("\tMOVD src+8(FP), R1")
	p("\tMOVD n+16(FP), R2")
	p("\tMOVD R0, R3")
	p("maxinto_loop:")
	ld4("R0", 0, "B16")
	ld4("R1", 4, "B16")
	each(func(i int) string { return smax(b16, i, i, 4+i) })
	st4("R3", 0, "B16")
	p("\tSUBS $64, R2, R2")
	p("\tBNE maxinto_loop")
	p("\tRET")
	p("")
}

// neonQuantize: func quantizeNEONAsm(in *float32, out *int8, n int, prm *[5]int32)
// 16 values per step: q = in/scale (FDIV, float32's division); FCVTAS
// rounds half away from zero to int32, saturating and giving 0 for NaN,
// which is what int32(math.Round(float64(q))) does on arm64 (FRINTA, then
// FCVTZS, which saturates); + zp (wraps), clamp, − shift, XTN.
func neonQuantize() {
	p("// func quantizeNEONAsm(in *float32, out *int8, n int, prm *[5]int32)")
	p("TEXT ·quantizeNEONAsm(SB), NOSPLIT, $0-32")
	p("\tMOVD in+0(FP), R0")
	p("\tMOVD out+8(FP), R1")
	p("\tMOVD n+16(FP), R2")
	p("\tMOVD prm+24(FP), R3")
	for i, what := range []string{"scale", "zp", "qmin", "qmax", "shift"} {
		p("\tMOVW %d(R3), R4", 4*i)
		p("\tVDUP R4, V%d.S4 // %s", 27+i, what)
	}
	p("quantize_loop:")
	ld4("R0", 0, "S4")
	each(func(i int) string { return fdiv(s4, i, i, 27) })
	each(func(i int) string { return fcvtas(i, i) })
	each(func(i int) string { return vadd(s4, i, i, 28) })
	each(func(i int) string { return smax(s4, i, i, 29) })
	each(func(i int) string { return smin(s4, i, i, 30) })
	each(func(i int) string { return vsub(s4, i, i, 31) })
	narrow16()
	p("\tVST1.P [V0.B16], 16(R1)")
	p("\tSUBS $16, R2, R2")
	p("\tBNE quantize_loop")
	p("\tRET")
	p("")
}

// neonAxpyF64: func axpyF64NEONAsm(acc, x *float64, n int, k float64)
// acc += k·x, 8 values per step: FMUL then FADD (rounded apart).
func neonAxpyF64() {
	p("// func axpyF64NEONAsm(acc, x *float64, n int, k float64)")
	p("TEXT ·axpyF64NEONAsm(SB), NOSPLIT, $0-32")
	p("\tMOVD acc+0(FP), R0")
	p("\tMOVD x+8(FP), R1")
	p("\tMOVD n+16(FP), R2")
	p("\tMOVD k+24(FP), R4")
	p("\tVDUP R4, V31.D2 // k")
	p("\tMOVD R0, R3")
	p("axpyf64_loop:")
	ld4("R0", 0, "D2")
	ld4("R1", 4, "D2")
	each(func(i int) string { return fmul(d2, 4+i, 31, 4+i) }) // k·x
	each(func(i int) string { return fadd(d2, i, i, 4+i) })    // acc + k·x
	st4("R3", 0, "D2")
	p("\tSUBS $8, R2, R2")
	p("\tBNE axpyf64_loop")
	p("\tRET")
	p("")
}

// neonAxpyBytesF32: func axpyBytesF32NEONAsm(acc *float32, x *uint8, n int, k float32)
// acc += k·float32(x), 16 values per step: USHLL twice widens the bytes
// to uint32, UCVTF converts them exactly, FMUL, FADD.
func neonAxpyBytesF32() {
	p("// func axpyBytesF32NEONAsm(acc *float32, x *uint8, n int, k float32)")
	p("TEXT ·axpyBytesF32NEONAsm(SB), NOSPLIT, $0-28")
	p("\tMOVD acc+0(FP), R0")
	p("\tMOVD x+8(FP), R1")
	p("\tMOVD n+16(FP), R2")
	p("\tMOVWU k+24(FP), R4")
	p("\tVDUP R4, V31.S4 // k")
	p("\tMOVD R0, R3")
	p("axpybytes_loop:")
	p("\tVLD1.P 16(R1), [V16.B16]")
	p("\t%s", xtl(false, 17, 16, 0, false))
	p("\t%s", xtl(false, 18, 16, 0, true))
	p("\t%s", xtl(false, 4, 17, 1, false))
	p("\t%s", xtl(false, 5, 17, 1, true))
	p("\t%s", xtl(false, 6, 18, 1, false))
	p("\t%s", xtl(false, 7, 18, 1, true))
	each(func(i int) string { return ucvtf(4+i, 4+i) })
	each(func(i int) string { return fmul(s4, 4+i, 31, 4+i) }) // k·x
	ld4("R0", 0, "S4")
	each(func(i int) string { return fadd(s4, i, i, 4+i) })
	st4("R3", 0, "S4")
	p("\tSUBS $16, R2, R2")
	p("\tBNE axpybytes_loop")
	p("\tRET")
	p("")
}

// neonLerp2x2: func lerp2x2NEONAsm(o, a0, a1, b0, b1 *float32, n int, w *[4]float32)
// 8 values per step (two vectors per operand), every product by an
// element of w rounded before its sum:
//
//	a := w0·a0 + w1·a1;  b := w0·b0 + w1·b1;  o = w2·a + w3·b
func neonLerp2x2() {
	p("// func lerp2x2NEONAsm(o, a0, a1, b0, b1 *float32, n int, w *[4]float32)")
	p("TEXT ·lerp2x2NEONAsm(SB), NOSPLIT, $0-56")
	p("\tMOVD o+0(FP), R0")
	p("\tMOVD a0+8(FP), R1")
	p("\tMOVD a1+16(FP), R2")
	p("\tMOVD b0+24(FP), R3")
	p("\tMOVD b1+32(FP), R4")
	p("\tMOVD n+40(FP), R5")
	p("\tMOVD w+48(FP), R6")
	p("\tVLD1 (R6), [V31.S4] // wx0 wx1 wy0 wy1")
	p("lerp_loop:")
	for i, r := range []string{"R1", "R2", "R3", "R4"} {
		p("\tVLD1.P 32(%s), [V%d.S4, V%d.S4]", r, 2*i, 2*i+1)
	}
	for v := range 2 {
		p("\t%s", fmulElem(v, v, 31, 0))     // w0·a0
		p("\t%s", fmulElem(2+v, 2+v, 31, 1)) // w1·a1
		p("\t%s", fmulElem(4+v, 4+v, 31, 0)) // w0·b0
		p("\t%s", fmulElem(6+v, 6+v, 31, 1)) // w1·b1
		p("\t%s", fadd(s4, v, v, 2+v))       // a
		p("\t%s", fadd(s4, 4+v, 4+v, 6+v))   // b
		p("\t%s", fmulElem(v, v, 31, 2))     // w2·a
		p("\t%s", fmulElem(4+v, 4+v, 31, 3)) // w3·b
		p("\t%s", fadd(s4, v, v, 4+v))       // o
	}
	p("\tVST1.P [V0.S4, V1.S4], 32(R0)")
	p("\tSUBS $8, R5, R5")
	p("\tBNE lerp_loop")
	p("\tRET")
	p("")
}

// neonMulAccPixels: func mulAccPixelsNEONAsm(acc *int32, x *int8, w *int32, c, npix, xstride int, zx int32)
// For each of npix pixels (x advancing xstride bytes, acc c values), 16
// channels per step: SSHLL twice sign-extends the bytes to int32, SUB zx,
// MUL by the int32 weights (low 32 bits: wraps as Go's int32 * does),
// ADD to the accumulators.
func neonMulAccPixels() {
	p("// func mulAccPixelsNEONAsm(acc *int32, x *int8, w *int32, c, npix, xstride int, zx int32)")
	p("TEXT ·mulAccPixelsNEONAsm(SB), NOSPLIT, $0-52")
	p("\tMOVD acc+0(FP), R0")
	p("\tMOVD x+8(FP), R1")
	p("\tMOVD npix+32(FP), R4")
	p("\tMOVD xstride+40(FP), R5")
	p("\tMOVW zx+48(FP), R6")
	p("\tVDUP R6, V31.S4 // zx")
	p("\tMOVD R0, R3")
	p("mulacc_pixel:")
	p("\tMOVD R1, R7")
	p("\tMOVD w+16(FP), R8")
	p("\tMOVD c+24(FP), R9")
	p("mulacc_loop:")
	p("\tVLD1.P 16(R7), [V16.B16]")
	p("\t%s", xtl(true, 17, 16, 0, false))
	p("\t%s", xtl(true, 18, 16, 0, true))
	p("\t%s", xtl(true, 0, 17, 1, false))
	p("\t%s", xtl(true, 1, 17, 1, true))
	p("\t%s", xtl(true, 2, 18, 1, false))
	p("\t%s", xtl(true, 3, 18, 1, true))
	each(func(i int) string { return vsub(s4, i, i, 31) }) // x − zx
	ld4("R8", 4, "S4")
	each(func(i int) string { return vmul(s4, i, i, 4+i) }) // · w
	ld4("R0", 20, "S4")
	each(func(i int) string { return vadd(s4, 20+i, 20+i, i) })
	st4("R3", 20, "S4")
	p("\tSUBS $16, R9, R9")
	p("\tBNE mulacc_loop")
	p("\tADD R5, R1, R1")
	p("\tSUBS $1, R4, R4")
	p("\tBNE mulacc_pixel")
	p("\tRET")
	p("")
}

// neonAdd: func addNEONAsm(a, b, out *int8, n int, prm *[14]int32)
//
// TensorFlow Lite's int8 ADD computed, 16 values per step, with the
// instructions of neonRequant, instead of read from AddQuant's table (NEON
// has no gather): each input widened to int32, less its zero point (SUB,
// wraps as Go's int32 does), shifted left 20 then by its left shift (SHL,
// SSHL: wrap), SQRDMULH by its multiplier (SRDHM exactly, its saturation
// included), rounded right by its right shift (the ties-away fix-up, then
// SRSHL: RDBPOT); the sum (ADD) rescaled the same way to the output, plus
// its zero point, clamped and narrowed. prm is AddQuant's parameters: za zb
// zo lo hi m1 l1 r1 m2 l2 r2 mo lo ro.
func neonAdd() {
	p("// func addNEONAsm(a, b, out *int8, n int, prm *[14]int32)")
	p("TEXT ·addNEONAsm(SB), NOSPLIT, $0-40")
	p("\tMOVD a+0(FP), R0")
	p("\tMOVD b+8(FP), R1")
	p("\tMOVD out+16(FP), R2")
	p("\tMOVD n+24(FP), R3")
	p("\tMOVD prm+32(FP), R4")
	// V16.. V29: za zb zo lo hi m1 l1 r1 m2 l2 r2 mo l3 r3, the right
	// shifts negated (SRSHL shifts right by a negative amount).
	names := []string{"za", "zb", "zo", "lo", "hi", "m1", "l1", "-r1", "m2", "l2", "-r2", "mo", "l3", "-r3"}
	for i, name := range names {
		p("\tMOVW %d(R4), R5", 4*i)
		p("\tVDUP R5, V%d.S4 // %s", 16+i, name)
		if name[0] == '-' {
			p("\t%s", vneg(16+i, 16+i))
		}
	}
	// rescale: v = RDBPOT(SRDHM(v << l, m), r) on V[v0..v0+3].
	rescale := func(v0, l, m, nr int) {
		each(func(i int) string { return sshl(s4, v0+i, v0+i, l) })
		each(func(i int) string { return sqrdmulh(s4, v0+i, v0+i, m) })
		each(func(i int) string { return vand(8+i, v0+i, nr) })
		each(func(i int) string { return sshr4s(8+i, 8+i, 31) })
		each(func(i int) string { return sqadd(s4, v0+i, v0+i, 8+i) })
		each(func(i int) string { return srshl(s4, v0+i, v0+i, nr) })
	}
	p("add_loop:")
	p("\tVLD1.P 16(R0), [V12.B16]")
	p("\tVLD1.P 16(R1), [V13.B16]")
	for k, v0 := range []int{0, 4} {
		src, mid := 12+k, 8+2*k
		p("\t%s", xtl(true, mid, src, 0, false))
		p("\t%s", xtl(true, mid+1, src, 0, true))
		p("\t%s", xtl(true, v0, mid, 1, false))
		p("\t%s", xtl(true, v0+1, mid, 1, true))
		p("\t%s", xtl(true, v0+2, mid+1, 1, false))
		p("\t%s", xtl(true, v0+3, mid+1, 1, true))
	}
	each(func(i int) string { return vsub(s4, i, i, 16) })     // a − za
	each(func(i int) string { return vsub(s4, 4+i, 4+i, 17) }) // b − zb
	for i := range 8 {
		p("\t%s", shl4s(i, i, 20))
	}
	rescale(0, 22, 21, 23)
	rescale(4, 25, 24, 26)
	each(func(i int) string { return vadd(s4, i, i, 4+i) }) // sx + sy
	rescale(0, 28, 27, 29)
	each(func(i int) string { return vadd(s4, i, i, 18) }) // + zo
	each(func(i int) string { return smax(s4, i, i, 19) })
	each(func(i int) string { return smin(s4, i, i, 20) })
	narrow16()
	p("\tVST1.P [V0.B16], 16(R2)")
	p("\tSUBS $16, R3, R3")
	p("\tBNE add_loop")
	p("\tRET")
	p("")
}
