package main

import (
	"bytes"
	"fmt"
)

// The amd64 kernels of package qgemm: the GEMM (AVX-512 VNNI, AVX2) and
// the search's reductions.

// Rows of A in one VNNI micro-kernel call, and 16-column panels of B (one
// ZMM register of int32 each) per block.
const (
	vnniRows   = 6
	vnniPanels = 4
)

var aRegs = []string{"AX", "BX", "CX", "DX", "SI", "DI"}

func gemmAMD64() []byte {
	header("!noasm")
	vnniKernel()
	vnniRowSums()
	vnniArgmin()
	vnniRequant()
	offsetCopy()
	avx2Kernel()
	peaks()
	argmin()
	dot()
	return bytes.Clone(out.Bytes())
}

// vnniKernel: func vnniKernel(a *[6]*int8, b *byte, seg *[3]int, corr *[6]int32, c *[6]*int32, np int, mask uint16)
//
// acc[r][p] starts at corr[r] (−128·Σ a_r, which undoes the +128 bias of
// B's unsigned bytes) and gains VPDPBUSD(B_p unsigned, broadcast 4 bytes
// of a_r signed) per group of 4 along k. B is packed as kg groups of np
// panels of 64 bytes (16 columns × 4 k). The last panel is stored with
// mask; the others whole.
//
// A row is seg[1] segments of seg[0] groups of 4; after each segment the
// offset into every row jumps seg[2] bytes further. A contiguous row is one
// segment ({kg, 1, 0}); a convolution's patch read in place from its input
// is one segment per filter row, a row of the input apart, so it needs no
// im2col copy.
func vnniKernel() {
	vnniFunc("vnniKernel", "c *[6]*int32", "c", "", "$0-50", "vnni", false, storeTile)
}

// vnniFunc emits a VNNI tile function: the arguments a, b, seg, corr, the
// fifth pointer (c or st, into R12), np, mask and any extra ones the
// epilogue reads, then a variant per panel count whose body is vnniBody
// with labels prefixed by name.
//
// With offsetA the operands swap roles: A holds unsigned bytes (int8
// values offset by 128) and B signed ones.
func vnniFunc(text, fifth, fifthName, extra, frame, name string, offsetA bool, epilogue func(np int)) {
	sig := "a *[6]*int8, b *byte, seg *[3]int, corr *[6]int32, " + fifth + ", np int, mask uint16" + extra
	p("// func %s(%s)", text, sig)
	p("TEXT ·%s(SB), NOSPLIT, %s", text, frame)
	p("\tMOVQ a+0(FP), R11")
	for r, reg := range aRegs {
		p("\tMOVQ %d(R11), %s", 8*r, reg)
	}
	p("\tMOVQ b+8(FP), R9")
	p("\tMOVQ seg+16(FP), R14")
	p("\tMOVQ corr+24(FP), R11")
	p("\tMOVQ %s+32(FP), R12", fifthName)
	p("\tMOVWLZX mask+48(FP), R13")
	p("\tKMOVW R13, K1")
	p("\tXORQ R8, R8")
	p("\tMOVQ np+40(FP), R13")
	for np := vnniPanels; np >= 1; np-- {
		if np > 1 {
			p("\tCMPQ R13, $%d", np)
			p("\tJNE %s_np%d", text, np-1)
		}
		vnniBody(name, np, offsetA, epilogue)
		if np > 1 {
			p("%s_np%d:", text, np-1)
		}
	}
	p("")
}

func acc(r, pn, np int) int { return r*np + pn }

// vnniBody emits the tile loop for np panels with labels prefixed by
// name, then epilogue with the accumulators in registers.
func vnniBody(name string, np int, offsetA bool, epilogue func(np int)) {
	if offsetA {
		// The requantizing kernel's accumulators start at its
		// channels' biases (requantBlock's first vector per panel),
		// which saves adding them in the epilogue; corr is unused.
		p("\tMOVQ prm+56(FP), R11")
		for pn := range np {
			for r := range vnniRows {
				p("\tVMOVDQU32 %d(R11), Z%d", requantPanel*pn, acc(r, pn, np))
			}
		}
	} else {
		for r := range vnniRows {
			for pn := range np {
				p("\tVPBROADCASTD %d(R11), Z%d", 4*r, acc(r, pn, np))
			}
		}
	}
	p("\tMOVQ 8(R14), R15")
	p("\tTESTQ R15, R15")
	p("\tJEQ %s_store%d", name, np)
	p("%s_seg%d:", name, np)
	p("\tMOVQ 0(R14), R10")
	p("\tTESTQ R10, R10")
	p("\tJEQ %s_next%d", name, np)
	p("%s_loop%d:", name, np)
	for pn := range np {
		p("\tVMOVDQU32 %d(R9), Z%d", 64*pn, 24+pn)
	}
	for r, reg := range aRegs {
		t := 28 + r%2
		p("\tVPBROADCASTD (%s)(R8*1), Z%d", reg, t)
		for pn := range np {
			// Go's operand order: the signed source first, then the
			// unsigned one, then the accumulator.
			if offsetA {
				p("\tVPDPBUSD Z%d, Z%d, Z%d", 24+pn, t, acc(r, pn, np))
			} else {
				p("\tVPDPBUSD Z%d, Z%d, Z%d", t, 24+pn, acc(r, pn, np))
			}
		}
	}
	p("\tADDQ $4, R8")
	p("\tADDQ $%d, R9", 64*np)
	p("\tDECQ R10")
	p("\tJNE %s_loop%d", name, np)
	p("%s_next%d:", name, np)
	p("\tADDQ 16(R14), R8")
	p("\tDECQ R15")
	p("\tJNE %s_seg%d", name, np)
	p("%s_store%d:", name, np)
	epilogue(np)
	p("\tVZEROUPPER")
	p("\tRET")
}

// storeTile writes the accumulators to the C rows (c in R12), the last
// panel through mask K1.
func storeTile(np int) {
	for r := range vnniRows {
		p("\tMOVQ %d(R12), R11", 8*r)
		for pn := range np {
			if pn == np-1 {
				p("\tVMOVDQU32 Z%d, K1, %d(R11)", acc(r, pn, np), 64*pn)
			} else {
				p("\tVMOVDQU32 Z%d, %d(R11)", acc(r, pn, np), 64*pn)
			}
		}
	}
}

// vnniArgmin: func vnniArgmin(a *[6]*int8, b *byte, seg *[3]int, corr *[6]int32, st *[6]*[32]int32, np int, mask uint16, bn, cols *int32)
//
// vnniKernel's tile, then instead of storing the dot products: for row r
// and column j, d = bn[j] − 2·dot; each row's state st[r] keeps 16 lanes
// (lane = j mod 16) of the smallest d seen and its column index cols[j]
// (strictly smaller replaces: with columns visited in increasing order a
// lane keeps the lowest index on ties). Columns past the mask on the last
// panel take no part. The nearest-neighbour search needs only that, so
// the products never go to memory.
func vnniArgmin() {
	vnniFunc("vnniArgmin", "st *[6]*LaneMins", "st", ", bn, cols *int32", "$0-72", "vamin", false, argminTile)
}

// argminTile folds the tile into the rows' running minima (see
// vnniArgmin). The A row registers are free by now: AX holds bn, BX cols.
func argminTile(np int) {
	p("\tMOVQ bn+56(FP), AX")
	p("\tMOVQ cols+64(FP), BX")
	for pn := range np {
		if pn == np-1 {
			p("\tVMOVDQU32.Z %d(AX), K1, Z%d", 64*pn, 24+pn)
		} else {
			p("\tVMOVDQU32 %d(AX), Z%d", 64*pn, 24+pn)
		}
	}
	for r := range vnniRows {
		p("\tMOVQ %d(R12), R11", 8*r)
		p("\tVMOVDQU32 (R11), Z28")
		p("\tVMOVDQU32 64(R11), Z29")
		for pn := range np {
			a := acc(r, pn, np)
			p("\tVPSLLD $1, Z%d, Z%d", a, a)
			p("\tVPSUBD Z%d, Z%d, Z%d", a, 24+pn, a)
			p("\tVPCMPGTD Z%d, Z28, K2", a)
			if pn == np-1 {
				p("\tKANDW K1, K2, K2")
			}
			p("\tVMOVDQA32 Z%d, K2, Z28", a)
			p("\tVMOVDQU32 %d(BX), K2, Z29", 64*pn)
		}
		p("\tVMOVDQU32 Z28, (R11)")
		p("\tVMOVDQU32 Z29, 64(R11)")
	}
}

// vnniRequant: func vnniRequant(a *[6]*int8, b *byte, seg *[3]int, corr *[6]int32, out *[6]*int8, np int, mask uint16, prm *int32, zlh *[3]int32)
//
// vnniKernel's tile with A offset (unsigned bytes x+128) and B signed, so
// that acc = bias + Σ (x+128)·w (the caller folds −128·Σw into the bias;
// the accumulators start at it, and corr is not read), then requantized
// to int8 in registers and stored to the out rows, one 64-byte masked
// store a row: the accumulators never go to memory. prm holds, per 16-column panel, seven
// vectors of per-channel parameters (requantBlock in requant.go: bias,
// left shift, multiplier, the odd lanes' multiplier, rounding mask,
// rounding threshold, right shift); zlh the output zero point and clamp.
func vnniRequant() {
	vnniFunc("vnniRequant", "out *[6]*int8", "out", ", prm *int32, zlh *[3]int32", "$0-72", "vreq", true, requantTile)
}

// requantPanel is the byte size of one panel's parameters in prm.
const requantPanel = 7 * 64

// requantTile requantizes the tile as Requant.Rows does (TensorFlow Lite's
// MultiplyByQuantizedMultiplier: the doubling high multiply, then a
// rounding right shift, half away from zero), with the parameters as
// memory operands. The B and A registers are free by now: Z24 holds 2^30
// per quadword, Z25 all ones (−1), Z28-Z31 are scratch.
func requantTile(np int) {
	p("\tMOVQ prm+56(FP), AX")
	p("\tMOVQ zlh+64(FP), BX")
	p("\tMOVQ $0x40000000, CX")
	p("\tVPBROADCASTQ CX, Z24")
	p("\tVPTERNLOGD $0xff, Z25, Z25, Z25")
	p("\tMOVL $0xaaaa, CX")
	p("\tKMOVW CX, K2")
	// The byte mask of a whole output row: the full panels, then the
	// last one's columns (mask, one bit per column).
	p("\tMOVWQZX mask+48(FP), CX")
	if np > 1 {
		p("\tSHLQ $%d, CX", 16*(np-1))
		p("\tMOVQ $%#x, DX", uint64(1)<<(16*(np-1))-1)
		p("\tORQ DX, CX")
	}
	p("\tKMOVQ CX, K4")
	// The clamp to [lo, hi], within int8, on the narrowed bytes: after
	// VPMOVSDB's saturation to [−128, 127] it gives what a clamp of the
	// int32 values gives, in one instruction per row instead of one per
	// panel.
	p("\tMOVL 4(BX), CX")
	p("\tVPBROADCASTB CX, Z26")
	p("\tMOVL 8(BX), CX")
	p("\tVPBROADCASTB CX, Z27")
	for r := range vnniRows {
		p("\tMOVQ %d(R12), R11", 8*r)
		for pn := range np {
			v := fmt.Sprintf("Z%d", acc(r, pn, np))
			o := requantPanel * pn
			p("\tVPSLLVD %d(AX), %s, %s", o+64, v, v)
			p("\tVPMULDQ %d(AX), %s, Z28", o+128, v)
			p("\tVPSRLQ $32, %s, Z29", v)
			p("\tVPMULDQ %d(AX), Z29, Z29", o+192)
			srdhmHigh("Z28", "Z29", "Z24", v)
			// Round half away from zero: add 1 where the remainder
			// exceeds the threshold, itself one more for negatives.
			p("\tVPANDD %d(AX), %s, Z30", o+256, v)
			p("\tVPSRAD $31, %s, Z31", v)
			p("\tVPADDD Z31, Z30, Z30")
			p("\tVPCMPGTD %d(AX), Z30, K3", o+320)
			p("\tVPSRAVD %d(AX), %s, %s", o+384, v, v)
			p("\tVPSUBD Z25, %s, K3, %s", v, v)
			p("\tVPADDD.BCST 0(BX), %s, %s", v, v)
			// Narrowed in registers and gathered into one ZMM per row,
			// stored once: VPMOVSDB to memory is slow on AMD.
			x := fmt.Sprintf("X%d", acc(r, pn, np))
			p("\tVPMOVSDB %s, %s", v, x)
			if pn > 0 {
				p("\tVINSERTI32X4 $%d, %s, Z%d, Z%d", pn, x, acc(r, 0, np), acc(r, 0, np))
			}
		}
		p("\tVPMAXSB Z26, Z%d, Z%d", acc(r, 0, np), acc(r, 0, np))
		p("\tVPMINSB Z27, Z%d, Z%d", acc(r, 0, np), acc(r, 0, np))
		p("\tVMOVDQU8 Z%d, K4, (R11)", acc(r, 0, np))
	}
}

// offsetCopy: func offsetCopyAVX512(dst, src *int8, n int)
//
// dst[i] = src[i] XOR 0x80 for i < n, n > 0: the offset bytes (x+128) the
// fused kernel reads. Four ZMMs a step, then single ZMMs, then the last
// partial one through a byte mask, so nothing past n is read or written.
func offsetCopy() {
	p("// func offsetCopyAVX512(dst, src *int8, n int)")
	p("TEXT ·offsetCopyAVX512(SB), NOSPLIT, $0-24")
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ src+8(FP), SI")
	p("\tMOVQ n+16(FP), CX")
	p("\tMOVL $0x80808080, AX")
	p("\tVPBROADCASTD AX, Z31")
	p("offcopy_loop4:")
	p("\tCMPQ CX, $256")
	p("\tJLT offcopy_loop1")
	for i := range 4 {
		p("\tVPXORD %d(SI), Z31, Z%d", 64*i, i)
	}
	for i := range 4 {
		p("\tVMOVDQU32 Z%d, %d(DI)", i, 64*i)
	}
	p("\tADDQ $256, SI")
	p("\tADDQ $256, DI")
	p("\tSUBQ $256, CX")
	p("\tJMP offcopy_loop4")
	p("offcopy_loop1:")
	p("\tCMPQ CX, $64")
	p("\tJLT offcopy_tail")
	p("\tVPXORD (SI), Z31, Z0")
	p("\tVMOVDQU32 Z0, (DI)")
	p("\tADDQ $64, SI")
	p("\tADDQ $64, DI")
	p("\tSUBQ $64, CX")
	p("\tJMP offcopy_loop1")
	p("offcopy_tail:")
	p("\tTESTQ CX, CX")
	p("\tJEQ offcopy_done")
	// The low n mod 64 bits, n < 64 here.
	p("\tMOVQ $-1, AX")
	p("\tSHLQ CX, AX")
	p("\tNOTQ AX")
	p("\tKMOVQ AX, K1")
	p("\tVMOVDQU8.Z (SI), K1, Z0")
	p("\tVPXORD Z0, Z31, Z0")
	p("\tVMOVDQU8 Z0, K1, (DI)")
	p("offcopy_done:")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// vnniRowSums: func vnniRowSums(a *int8, lda, k, rows int, out *int32)
//
// out[r] = Σ a[r·lda : r·lda+k] as signed bytes, for rows rows: VPDPBUSD
// with a register of unsigned ones adds each group of 4 bytes into an
// int32 lane, 64 bytes a step, the last partial step through a byte mask
// (so nothing past the row is read), then the lanes are added. One call
// per strip of rows: per-row calls cost more than the sums for the short
// rows of a stem convolution (k = 147).
func vnniRowSums() {
	p("// func vnniRowSums(a *int8, lda, k, rows int, out *int32)")
	p("TEXT ·vnniRowSums(SB), NOSPLIT, $0-40")
	p("\tMOVQ a+0(FP), SI")
	p("\tMOVQ lda+8(FP), R8")
	p("\tMOVQ k+16(FP), R9")
	p("\tMOVQ rows+24(FP), R10")
	p("\tMOVQ out+32(FP), DI")
	p("\tMOVL $0x01010101, AX")
	p("\tVPBROADCASTD AX, Z31")
	// The tail mask, the same for every row: the low k mod 64 bits.
	p("\tMOVQ R9, CX")
	p("\tANDQ $63, CX")
	p("\tMOVQ $-1, AX")
	p("\tSHLQ CX, AX")
	p("\tNOTQ AX")
	p("\tKMOVQ AX, K1")
	p("\tMOVQ R9, R11")
	p("\tSHRQ $6, R11") // whole steps per row
	p("rowsums_row:")
	p("\tVPXORD Z0, Z0, Z0")
	p("\tMOVQ SI, DX")
	p("\tMOVQ R11, CX")
	p("\tTESTQ CX, CX")
	p("\tJEQ rowsums_tail")
	p("rowsums_loop:")
	p("\tVPDPBUSD (DX), Z31, Z0")
	p("\tADDQ $64, DX")
	p("\tDECQ CX")
	p("\tJNE rowsums_loop")
	p("rowsums_tail:")
	p("\tKORTESTQ K1, K1")
	p("\tJEQ rowsums_reduce")
	p("\tVMOVDQU8.Z (DX), K1, Z1")
	p("\tVPDPBUSD Z1, Z31, Z0")
	p("rowsums_reduce:")
	p("\tVEXTRACTI64X4 $1, Z0, Y1")
	p("\tVPADDD Y1, Y0, Y0")
	p("\tVEXTRACTI128 $1, Y0, X1")
	p("\tVPADDD X1, X0, X0")
	p("\tVPSHUFD $0x4e, X0, X1")
	p("\tVPADDD X1, X0, X0")
	p("\tVPSHUFD $0xb1, X0, X1")
	p("\tVPADDD X1, X0, X0")
	p("\tVMOVD X0, (DI)")
	p("\tADDQ R8, SI")
	p("\tADDQ $4, DI")
	p("\tDECQ R10")
	p("\tJNE rowsums_row")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// AVX2 has no int8 dot product that is exact for full-range operands:
// VPMADDUBSW saturates its int16 pair sums (255·−128·2 < −32768). So the
// kernel sign-extends both operands to int16 (VPMOVSXBW) and uses
// VPMADDWD, whose int16 products summed in pairs into int32 cannot
// saturate (2·128·128 < 2^31). B is packed as kg2 groups of 8 columns × 2
// k (int16, one YMM), A read as 2 bytes per row and group.
const (
	avx2Rows   = 3
	avx2Panels = 4
)

// avx2Kernel: func avx2Kernel(a *[3]*int8, b *int16, kg2 int, c *[3]*int32, np int)
// np panels of 8 columns; full panels only (the packer pads with zeros, and
// the driver stores through a scratch row when a block is narrower).
func avx2Kernel() {
	p("// func avx2Kernel(a *[3]*int8, b *int16, kg2 int, c *[3]*int32, np int)")
	p("TEXT ·avx2Kernel(SB), NOSPLIT, $0-40")
	p("\tMOVQ a+0(FP), R11")
	for r := range avx2Rows {
		p("\tMOVQ %d(R11), %s", 8*r, aRegs[r])
	}
	p("\tMOVQ b+8(FP), R9")
	p("\tMOVQ kg2+16(FP), R10")
	p("\tMOVQ c+24(FP), R12")
	p("\tMOVQ np+32(FP), R13")
	p("\tXORQ R8, R8")
	for np := avx2Panels; np >= 1; np-- {
		if np > 1 {
			p("\tCMPQ R13, $%d", np)
			p("\tJNE avx2_np%d", np-1)
		}
		avx2Variant(np)
		if np > 1 {
			p("avx2_np%d:", np-1)
		}
	}
	p("")
}

func avx2Variant(np int) {
	a := func(r, pn int) int { return r*np + pn } // Y0..Y11
	for r := range avx2Rows {
		for pn := range np {
			p("\tVPXOR Y%d, Y%d, Y%d", a(r, pn), a(r, pn), a(r, pn))
		}
	}
	p("\tTESTQ R10, R10")
	p("\tJEQ avx2_store%d", np)
	p("avx2_loop%d:", np)
	for r := range avx2Rows {
		// Two signed bytes of row r, sign-extended to int16 and
		// broadcast as one int32 to all eight lanes.
		p("\tMOVBQSX (%s)(R8*1), R14", aRegs[r])
		p("\tMOVBQSX 1(%s)(R8*1), R15", aRegs[r])
		p("\tSHLQ $16, R15")
		p("\tANDQ $0xffff, R14")
		p("\tORQ R15, R14")
		p("\tVMOVD R14, X15")
		p("\tVPBROADCASTD X15, Y15")
		for pn := range np {
			p("\tVPMADDWD %d(R9), Y15, Y14", 32*pn)
			p("\tVPADDD Y14, Y%d, Y%d", a(r, pn), a(r, pn))
		}
	}
	p("\tADDQ $2, R8")
	p("\tADDQ $%d, R9", 32*np)
	p("\tDECQ R10")
	p("\tJNE avx2_loop%d", np)
	p("avx2_store%d:", np)
	for r := range avx2Rows {
		p("\tMOVQ %d(R12), R11", 8*r)
		for pn := range np {
			p("\tVMOVDQU Y%d, %d(R11)", a(r, pn), 32*pn)
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
}

// peaks writes the instruction-throughput loops behind PeakGMACs: 24
// independent accumulators, so nothing waits on a previous result.
func peaks() {
	p("// func vnniPeak(iters int) (64·24 MACs per iteration)")
	p("TEXT ·vnniPeak(SB), NOSPLIT, $0-8")
	p("\tMOVQ iters+0(FP), CX")
	p("\tMOVL $0x01010101, AX")
	p("\tVPBROADCASTD AX, Z30")
	p("\tVPBROADCASTD AX, Z31")
	for i := range 24 {
		p("\tVPXORD Z%d, Z%d, Z%d", i, i, i)
	}
	p("vnni_peak_loop:")
	for i := range 24 {
		p("\tVPDPBUSD Z30, Z31, Z%d", i)
	}
	p("\tDECQ CX")
	p("\tJNE vnni_peak_loop")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
	p("// func avx2Peak(iters int) (16·12 MACs per iteration)")
	p("TEXT ·avx2Peak(SB), NOSPLIT, $0-8")
	p("\tMOVQ iters+0(FP), CX")
	p("\tMOVL $0x00010001, AX")
	p("\tVMOVD AX, X15")
	p("\tVPBROADCASTD X15, Y15")
	for i := range 12 {
		p("\tVPXOR Y%d, Y%d, Y%d", i, i, i)
	}
	p("avx2_peak_loop:")
	for i := range 12 {
		p("\tVPMADDWD Y15, Y15, Y12")
		p("\tVPADDD Y12, Y%d, Y%d", i, i)
	}
	p("\tDECQ CX")
	p("\tJNE avx2_peak_loop")
	p("\tVZEROUPPER")
	p("\tRET")
}

// argmin: func argminLanes(dot, bn *int32, n int, val, idx *[16]int32)
//
// For n a positive multiple of 16: per lane l, the smallest bn[j]−2·dot[j]
// over j ≡ l (mod 16) and the first j that reaches it (strictly smaller
// replaces, so ties keep the lower index). The caller reduces the lanes.
func argmin() {
	p("")
	p("// func argminLanes(dot, bn *int32, n int, val, idx *[16]int32)")
	p("TEXT ·argminLanes(SB), NOSPLIT, $0-40")
	p("\tMOVQ dot+0(FP), SI")
	p("\tMOVQ bn+8(FP), DX")
	p("\tMOVQ n+16(FP), CX")
	p("\tMOVL $0x7fffffff, AX")
	p("\tVPBROADCASTD AX, Z0")
	p("\tVPXORD Z1, Z1, Z1")
	p("\tMOVQ $argminIota<>(SB), AX")
	p("\tVMOVDQU32 (AX), Z2")
	p("\tMOVL $16, AX")
	p("\tVPBROADCASTD AX, Z3")
	p("argmin_loop:")
	p("\tVMOVDQU32 (SI), Z4")
	p("\tVMOVDQU32 (DX), Z5")
	p("\tVPSLLD $1, Z4, Z4")
	p("\tVPSUBD Z4, Z5, Z5")
	p("\tVPCMPGTD Z5, Z0, K1")
	p("\tVMOVDQA32 Z5, K1, Z0")
	p("\tVMOVDQA32 Z2, K1, Z1")
	p("\tVPADDD Z3, Z2, Z2")
	p("\tADDQ $64, SI")
	p("\tADDQ $64, DX")
	p("\tSUBQ $16, CX")
	p("\tJNE argmin_loop")
	p("\tMOVQ val+24(FP), AX")
	p("\tVMOVDQU32 Z0, (AX)")
	p("\tMOVQ idx+32(FP), AX")
	p("\tVMOVDQU32 Z1, (AX)")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
	for i := range 16 {
		p("DATA argminIota<>+%d(SB)/4, $%d", 4*i, i)
	}
	p("GLOBL argminIota<>(SB), RODATA|NOPTR, $64")
}

// dot: func dotAVX512(a, b *int8, n int) int32, n a positive multiple of 32:
// both operands sign-extended to int16 (VPMOVSXBW) and multiplied in pairs
// into int32 (VPMADDWD), exact for full-range int8.
func dot() {
	p("")
	p("// func dotAVX512(a, b *int8, n int) int32")
	p("TEXT ·dotAVX512(SB), NOSPLIT, $0-28")
	p("\tMOVQ a+0(FP), SI")
	p("\tMOVQ b+8(FP), DX")
	p("\tMOVQ n+16(FP), CX")
	p("\tVPXORD Z0, Z0, Z0")
	p("dot_loop:")
	p("\tVPMOVSXBW (SI), Z1")
	p("\tVPMOVSXBW (DX), Z2")
	p("\tVPMADDWD Z2, Z1, Z1")
	p("\tVPADDD Z1, Z0, Z0")
	p("\tADDQ $32, SI")
	p("\tADDQ $32, DX")
	p("\tSUBQ $32, CX")
	p("\tJNE dot_loop")
	p("\tVEXTRACTI64X4 $1, Z0, Y1")
	p("\tVPADDD Y1, Y0, Y0")
	p("\tVEXTRACTI128 $1, Y0, X1")
	p("\tVPADDD X1, X0, X0")
	p("\tVPSHUFD $0x4e, X0, X1")
	p("\tVPADDD X1, X0, X0")
	p("\tVPSHUFD $0xb1, X0, X1")
	p("\tVPADDD X1, X0, X0")
	p("\tVMOVD X0, AX")
	p("\tMOVL AX, ret+24(FP)")
	p("\tVZEROUPPER")
	p("\tRET")
}
