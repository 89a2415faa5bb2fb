package main

import "bytes"

// The amd64 kernels of package vec (AVX-512F and AVX-512BW).

func vecAMD64() []byte {
	header("!noasm && gc")
	requant()
	maxInto()
	quantizeF32()
	axpyF64()
	axpyBytesF32()
	lerp2x2()
	mulAccPixels()
	addLUT()
	return bytes.Clone(out.Bytes())
}

// requant: func requantRows(acc *int32, out *int8, n int, bias, mult, left, right *int32, zlh *[3]int32, rows int)
//
// TFLite's requantization, 16 channels per step: v = acc+bias; v <<= left;
// v = SaturatingRoundingDoublingHighMul(v, mult) (64-bit products of even
// and odd lanes, nudge, division by 2^31 toward zero); v =
// RoundingDivideByPOT(v, right); v += zo; clamp to [lo, hi]; narrow to int8.
// The multiplier is positive (a Q31 mantissa), so the one saturating case
// (both operands −2^31) cannot occur. Tails run masked. rows ≥ 1
// contiguous rows of n share the parameters (set up once per call).
func requant() {
	p("// func requantRows(acc *int32, out *int8, n int, bias, mult, left, right *int32, zlh *[3]int32, rows int)")
	p("TEXT ·requantRows(SB), NOSPLIT, $0-72")
	p("\tMOVQ acc+0(FP), R14")
	p("\tMOVQ out+8(FP), R15")
	p("\tMOVQ zlh+56(FP), R12")
	p("\tVPBROADCASTD 0(R12), Z20")
	p("\tVPBROADCASTD 4(R12), Z21")
	p("\tVPBROADCASTD 8(R12), Z22")
	p("\tMOVQ $0x40000000, AX")
	p("\tVPBROADCASTQ AX, Z23")
	p("\tMOVQ $-2147483647, AX")
	p("\tVPBROADCASTQ AX, Z24")
	p("\tMOVQ $0x7fffffff, AX")
	p("\tVPBROADCASTQ AX, Z25")
	p("\tMOVL $1, AX")
	p("\tVPBROADCASTD AX, Z26")
	p("\tMOVL $0xaaaa, AX")
	p("\tKMOVW AX, K2")
	p("\tMOVQ rows+64(FP), R13")
	p("requant_row:")
	p("\tMOVQ R14, SI")
	p("\tMOVQ R15, DI")
	p("\tMOVQ n+16(FP), CX")
	p("\tMOVQ bias+24(FP), R8")
	p("\tMOVQ mult+32(FP), R9")
	p("\tMOVQ left+40(FP), R10")
	p("\tMOVQ right+48(FP), R11")
	p("requant_loop:")
	p("\tTESTQ CX, CX")
	p("\tJLE requant_done")
	p("\tMOVL $0xffff, AX")
	p("\tCMPQ CX, $16")
	p("\tJGE requant_full")
	p("\tMOVL $1, AX")
	p("\tSHLL CX, AX")
	p("\tDECL AX")
	p("requant_full:")
	p("\tKMOVW AX, K1")
	p("\tVMOVDQU32.Z (SI), K1, Z0")
	p("\tVMOVDQU32.Z (R8), K1, Z1")
	p("\tVPADDD Z1, Z0, Z0")
	p("\tVMOVDQU32.Z (R10), K1, Z1")
	p("\tVPSLLVD Z1, Z0, Z0")
	p("\tVMOVDQU32.Z (R9), K1, Z2")
	p("\tVPMULDQ Z2, Z0, Z3")
	p("\tVPSRLQ $32, Z0, Z4")
	p("\tVPSRLQ $32, Z2, Z5")
	p("\tVPMULDQ Z5, Z4, Z4")
	srdhmHigh("Z3", "Z4", "Z23", "Z0")
	p("\tVMOVDQU32.Z (R11), K1, Z1")
	p("\tVPSLLVD Z1, Z26, Z7")
	p("\tVPSUBD Z26, Z7, Z7")
	p("\tVPANDD Z7, Z0, Z8")
	p("\tVPSRAD $1, Z7, Z9")
	p("\tVPSRLD $31, Z0, Z10")
	p("\tVPADDD Z10, Z9, Z9")
	p("\tVPSUBD Z8, Z9, Z9")
	p("\tVPSRAD $31, Z9, Z9")
	p("\tVPSRAVD Z1, Z0, Z0")
	p("\tVPSUBD Z9, Z0, Z0")
	p("\tVPADDD Z20, Z0, Z0")
	p("\tVPMAXSD Z21, Z0, Z0")
	p("\tVPMINSD Z22, Z0, Z0")
	p("\tVPMOVSDB Z0, K1, (DI)")
	for _, r := range []string{"SI", "R8", "R9", "R10", "R11"} {
		p("\tADDQ $64, %s", r)
	}
	p("\tADDQ $16, DI")
	p("\tSUBQ $16, CX")
	p("\tJMP requant_loop")
	p("requant_done:")
	p("\tMOVQ n+16(FP), CX")
	p("\tLEAQ (R14)(CX*4), R14")
	p("\tADDQ CX, R15")
	p("\tDECQ R13")
	p("\tJNE requant_row")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// maxInto: func maxInto(dst, src *int8, n int), n a positive multiple of
// 64: dst[i] = max(dst[i], src[i]) (a max pool tap across channels).
func maxInto() {
	p("// func maxInto(dst, src *int8, n int)")
	p("TEXT ·maxInto(SB), NOSPLIT, $0-24")
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ src+8(FP), SI")
	p("\tMOVQ n+16(FP), CX")
	p("max_loop:")
	p("\tVMOVDQU8 (SI), Z0")
	p("\tVPMAXSB (DI), Z0, Z0")
	p("\tVMOVDQU8 Z0, (DI)")
	p("\tADDQ $64, SI")
	p("\tADDQ $64, DI")
	p("\tSUBQ $64, CX")
	p("\tJNE max_loop")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// quantizeF32: func quantizeF32(in *float32, out *int8, n int, prm *[5]int32)
//
// TFLite's AffineQuantize, 16 floats per step, n a positive multiple of 16:
// q = x / scale (float32 division), rounded half away from zero (truncate,
// then step by one where the exact remainder reaches ±0.5), converted with
// truncation (out-of-range and NaN give 0x80000000, as Go's scalar
// conversion does on amd64), + zp with wrap-around, clamped to
// [qmin, qmax], less shift (128 for uint8 stored as int8), narrowed.
// prm: scale (float32 bits), zp, qmin, qmax, shift.
func quantizeF32() {
	p("// func quantizeF32(in *float32, out *int8, n int, prm *[5]int32)")
	p("TEXT ·quantizeF32(SB), NOSPLIT, $0-32")
	p("\tMOVQ in+0(FP), SI")
	p("\tMOVQ out+8(FP), DI")
	p("\tMOVQ n+16(FP), CX")
	p("\tMOVQ prm+24(FP), R8")
	for i := range 5 {
		p("\tVPBROADCASTD %d(R8), Z%d", 4*i, 16+i)
	}
	p("\tMOVL $0x3f000000, AX") // 0.5
	p("\tVPBROADCASTD AX, Z21")
	p("\tMOVL $0xbf000000, AX") // -0.5
	p("\tVPBROADCASTD AX, Z22")
	p("\tMOVL $0x3f800000, AX") // 1.0
	p("\tVPBROADCASTD AX, Z23")
	p("quant_loop:")
	p("\tVMOVUPS (SI), Z0")
	p("\tVDIVPS Z16, Z0, Z0")
	p("\tVRNDSCALEPS $0x0b, Z0, Z1") // truncate, no precision exception
	p("\tVSUBPS Z1, Z0, Z2")
	p("\tVCMPPS $0x0d, Z21, Z2, K1") // remainder >= 0.5
	p("\tVCMPPS $0x02, Z22, Z2, K2") // remainder <= -0.5
	p("\tVADDPS Z23, Z1, K1, Z1")
	p("\tVSUBPS Z23, Z1, K2, Z1")
	p("\tVCVTTPS2DQ Z1, Z1")
	p("\tVPADDD Z17, Z1, Z1")
	p("\tVPMAXSD Z18, Z1, Z1")
	p("\tVPMINSD Z19, Z1, Z1")
	p("\tVPSUBD Z20, Z1, Z1")
	p("\tVPMOVDB Z1, (DI)")
	p("\tADDQ $64, SI")
	p("\tADDQ $16, DI")
	p("\tSUBQ $16, CX")
	p("\tJNE quant_loop")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// axpyF64: func axpyF64(acc, x *float64, n int, k float64)
//
// acc[i] += k·x[i] for n a positive multiple of 8, multiplying and adding
// as two roundings (VMULPD, VADDPD; no FMA) so the sums equal Go's scalar
// float64(k*x) + acc on every architecture.
func axpyF64() {
	p("// func axpyF64(acc, x *float64, n int, k float64)")
	p("TEXT ·axpyF64(SB), NOSPLIT, $0-32")
	p("\tMOVQ acc+0(FP), DI")
	p("\tMOVQ x+8(FP), SI")
	p("\tMOVQ n+16(FP), CX")
	p("\tVBROADCASTSD k+24(FP), Z31")
	p("\tCMPQ CX, $32")
	p("\tJLT axpy_tail")
	p("axpy_loop4:")
	for i := range 4 {
		p("\tVMULPD %d(SI), Z31, Z%d", 64*i, i)
	}
	for i := range 4 {
		p("\tVADDPD %d(DI), Z%d, Z%d", 64*i, i, i)
	}
	for i := range 4 {
		p("\tVMOVUPD Z%d, %d(DI)", i, 64*i)
	}
	p("\tADDQ $256, SI")
	p("\tADDQ $256, DI")
	p("\tSUBQ $32, CX")
	p("\tCMPQ CX, $32")
	p("\tJGE axpy_loop4")
	p("axpy_tail:")
	p("\tTESTQ CX, CX")
	p("\tJEQ axpy_done")
	p("axpy_loop:")
	p("\tVMULPD (SI), Z31, Z0")
	p("\tVADDPD (DI), Z0, Z0")
	p("\tVMOVUPD Z0, (DI)")
	p("\tADDQ $64, SI")
	p("\tADDQ $64, DI")
	p("\tSUBQ $8, CX")
	p("\tJNE axpy_loop")
	p("axpy_done:")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// axpyBytesF32: func axpyBytesF32(acc *float32, x *uint8, n int, k float32)
//
// acc[i] += k·float32(x[i]) for n a positive multiple of 16, the bytes
// widened and converted exactly, the product rounded before the sum
// (VMULPS, VADDPS; no FMA), as Go's scalar acc[i] += float32(k * x).
func axpyBytesF32() {
	p("// func axpyBytesF32(acc *float32, x *uint8, n int, k float32)")
	p("TEXT ·axpyBytesF32(SB), NOSPLIT, $0-28")
	p("\tMOVQ acc+0(FP), DI")
	p("\tMOVQ x+8(FP), SI")
	p("\tMOVQ n+16(FP), CX")
	p("\tVBROADCASTSS k+24(FP), Z31")
	p("\tCMPQ CX, $64")
	p("\tJLT axpyb_tail")
	p("axpyb_loop4:")
	for i := range 4 {
		p("\tVPMOVZXBD %d(SI), Z%d", 16*i, i)
	}
	for i := range 4 {
		p("\tVCVTDQ2PS Z%d, Z%d", i, i)
	}
	for i := range 4 {
		p("\tVMULPS Z31, Z%d, Z%d", i, i)
	}
	for i := range 4 {
		p("\tVADDPS %d(DI), Z%d, Z%d", 64*i, i, i)
	}
	for i := range 4 {
		p("\tVMOVUPS Z%d, %d(DI)", i, 64*i)
	}
	p("\tADDQ $64, SI")
	p("\tADDQ $256, DI")
	p("\tSUBQ $64, CX")
	p("\tCMPQ CX, $64")
	p("\tJGE axpyb_loop4")
	p("axpyb_tail:")
	p("\tTESTQ CX, CX")
	p("\tJEQ axpyb_done")
	p("axpyb_loop:")
	p("\tVPMOVZXBD (SI), Z0")
	p("\tVCVTDQ2PS Z0, Z0")
	p("\tVMULPS Z31, Z0, Z0")
	p("\tVADDPS (DI), Z0, Z0")
	p("\tVMOVUPS Z0, (DI)")
	p("\tADDQ $16, SI")
	p("\tADDQ $64, DI")
	p("\tSUBQ $16, CX")
	p("\tJNE axpyb_loop")
	p("axpyb_done:")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// lerp2x2: func lerp2x2(o, a0, a1, b0, b1 *float32, n int, w *[4]float32)
//
// Bilinear interpolation of n values (a positive multiple of 16) from two
// rows of two pixels each: a = wx0·a0 + wx1·a1, b = wx0·b0 + wx1·b1,
// o = wy0·a + wy1·b, each product rounded before its sum (no FMA), as
// Go's scalar loop with float32() around every product. w: wx0, wx1, wy0,
// wy1.
func lerp2x2() {
	p("// func lerp2x2(o, a0, a1, b0, b1 *float32, n int, w *[4]float32)")
	p("TEXT ·lerp2x2(SB), NOSPLIT, $0-56")
	p("\tMOVQ o+0(FP), DI")
	p("\tMOVQ a0+8(FP), AX")
	p("\tMOVQ a1+16(FP), BX")
	p("\tMOVQ b0+24(FP), CX")
	p("\tMOVQ b1+32(FP), DX")
	p("\tMOVQ n+40(FP), SI")
	p("\tMOVQ w+48(FP), R8")
	for i := range 4 {
		p("\tVBROADCASTSS %d(R8), Z%d", 4*i, 28+i)
	}
	p("\tXORQ R9, R9")
	p("lerp_loop:")
	p("\tVMULPS (AX)(R9*4), Z28, Z0")
	p("\tVMULPS (BX)(R9*4), Z29, Z1")
	p("\tVADDPS Z1, Z0, Z0")
	p("\tVMULPS (CX)(R9*4), Z28, Z2")
	p("\tVMULPS (DX)(R9*4), Z29, Z3")
	p("\tVADDPS Z3, Z2, Z2")
	p("\tVMULPS Z30, Z0, Z0")
	p("\tVMULPS Z31, Z2, Z2")
	p("\tVADDPS Z2, Z0, Z0")
	p("\tVMOVUPS Z0, (DI)(R9*4)")
	p("\tADDQ $16, R9")
	p("\tCMPQ R9, SI")
	p("\tJLT lerp_loop")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mulAccPixels: func mulAccPixels(acc *int32, x *int8, w *int32, c, npix, xstride int, zx int32)
//
// For npix pixels p and c channels (c a positive multiple of 16):
// acc[p·c+ch] += (x[p·xstride+ch] − zx)·w[ch]. One depthwise filter tap
// across a row of output pixels: the weights are reused for every pixel,
// the input advances by the stride.
func mulAccPixels() {
	p("// func mulAccPixels(acc *int32, x *int8, w *int32, c, npix, xstride int, zx int32)")
	p("TEXT ·mulAccPixels(SB), NOSPLIT, $0-52")
	p("\tMOVQ acc+0(FP), DI")
	p("\tMOVQ x+8(FP), SI")
	p("\tMOVQ w+16(FP), DX")
	p("\tMOVQ c+24(FP), R8")
	p("\tMOVQ npix+32(FP), R9")
	p("\tMOVQ xstride+40(FP), R10")
	p("\tMOVL zx+48(FP), AX")
	p("\tVPBROADCASTD AX, Z31")
	p("mapix_pixel:")
	p("\tMOVQ DX, R11")
	p("\tMOVQ SI, R12")
	p("\tMOVQ R8, CX")
	p("mapix_chan:")
	p("\tVPMOVSXBD (R12), Z0")
	p("\tVPSUBD Z31, Z0, Z0")
	p("\tVPMULLD (R11), Z0, Z0")
	p("\tVPADDD (DI), Z0, Z0")
	p("\tVMOVDQU32 Z0, (DI)")
	p("\tADDQ $16, R12")
	p("\tADDQ $64, R11")
	p("\tADDQ $64, DI")
	p("\tSUBQ $16, CX")
	p("\tJNE mapix_chan")
	p("\tADDQ R10, SI")
	p("\tDECQ R9")
	p("\tJNE mapix_pixel")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// addLUT: func addLUT(a, b, out *int8, n int, lut *int8)
//
// out[i] = lut[uint8(a[i])<<8 | uint8(b[i])] for n a positive multiple of
// 16: the indices widened to dwords, a 16-lane gather of the 4 bytes at
// each (the table has 3 bytes of slack), the low bytes stored.
func addLUT() {
	p("// func addLUT(a, b, out *int8, n int, lut *int8)")
	p("TEXT ·addLUT(SB), NOSPLIT, $0-40")
	p("\tMOVQ a+0(FP), SI")
	p("\tMOVQ b+8(FP), DX")
	p("\tMOVQ out+16(FP), DI")
	p("\tMOVQ n+24(FP), CX")
	p("\tMOVQ lut+32(FP), R8")
	p("addlut_loop:")
	p("\tVPMOVZXBD (SI), Z0")
	p("\tVPMOVZXBD (DX), Z1")
	p("\tVPSLLD $8, Z0, Z0")
	p("\tVPORD Z1, Z0, Z0")
	p("\tKXNORW K1, K1, K1")
	p("\tVPXORD Z2, Z2, Z2")
	p("\tVPGATHERDD (R8)(Z0*1), K1, Z2")
	p("\tVPMOVDB Z2, (DI)")
	p("\tADDQ $16, SI")
	p("\tADDQ $16, DX")
	p("\tADDQ $16, DI")
	p("\tSUBQ $16, CX")
	p("\tJNE addlut_loop")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}
