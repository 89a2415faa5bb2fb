package main

import (
	"bytes"
	"fmt"
)

// The arm64 kernels. Go's arm64 assembler has no SDOT, SMULL or SADALP
// mnemonics (and ADDP's operand order is easy to get wrong), so those are
// emitted as WORDs with their encodings computed here.

// sdotElem encodes SDOT Vd.4S, Vn.16B, Vm.4B[idx] (Armv8.2 dotprod).
func sdotElem(d, n, m, idx int) string {
	w := 0x4F80E000 | (idx&1)<<21 | m<<16 | (idx>>1)<<11 | n<<5 | d
	return fmt.Sprintf("WORD $0x%08x // SDOT V%d.4S, V%d.16B, V%d.4B[%d]", w, d, n, m, idx)
}

// smull encodes SMULL Vd.8H, Vn.8B, Vm.8B.
func smull(d, n, m int) string {
	return fmt.Sprintf("WORD $0x%08x // SMULL V%d.8H, V%d.8B, V%d.8B", 0x0E20C000|m<<16|n<<5|d, d, n, m)
}

// sadalp encodes SADALP Vd.4S, Vn.8H.
func sadalp(d, n int) string {
	return fmt.Sprintf("WORD $0x%08x // SADALP V%d.4S, V%d.8H", 0x4E606800|n<<5|d, d, n)
}

// addp encodes ADDP Vd.4S, Vn.4S, Vm.4S.
func addp(d, n, m int) string {
	return fmt.Sprintf("WORD $0x%08x // ADDP V%d.4S, V%d.4S, V%d.4S", 0x4EA0BC00|m<<16|n<<5|d, d, n, m)
}

const (
	sdotRows = 8 // rows of A per call
	neonRows = 4
)

func arm64Kernels() []byte {
	header("!noasm")
	sdotKernel()
	neonKernel()
	dotSDOT()
	dotNEON()
	argminNEON()
	return bytes.Clone(out.Bytes())
}

// sdotKernel: func sdotKernel(a *[8]*int8, b *byte, kg int, c *[8]*int32)
// 8 rows x 8 columns; B packed as kg groups of 8 columns x 4 bytes (two
// vectors); A read 4 bytes per row and group. SDOT is signed x signed:
// no bias, no correction.
func sdotKernel() {
	p("// func sdotKernel(a *[8]*int8, b *byte, kg int, c *[8]*int32)")
	p("TEXT ·sdotKernel(SB), NOSPLIT, $0-32")
	p("\tMOVD a+0(FP), R11")
	for r := range sdotRows {
		p("\tMOVD %d(R11), R%d", 8*r, r)
	}
	p("\tMOVD b+8(FP), R8")
	p("\tMOVD kg+16(FP), R9")
	for v := range 2 * sdotRows {
		p("\tVEOR V%d.B16, V%d.B16, V%d.B16", v, v, v)
	}
	p("\tCBZ R9, sdot_store")
	p("sdot_loop:")
	p("\tVLD1.P 32(R8), [V16.S4, V17.S4]")
	for r := range sdotRows {
		p("\tFMOVS (R%d), F%d", r, 18+r)
		p("\tADD $4, R%d, R%d", r, r)
	}
	for r := range sdotRows {
		for c := range 2 {
			p("\t%s", sdotElem(2*r+c, 16+c, 18+r, 0))
		}
	}
	p("\tSUBS $1, R9, R9")
	p("\tBNE sdot_loop")
	p("sdot_store:")
	p("\tMOVD c+24(FP), R12")
	for r := range sdotRows {
		p("\tMOVD %d(R12), R11", 8*r)
		p("\tVST1 [V%d.S4, V%d.S4], (R11)", 2*r, 2*r+1)
	}
	p("\tRET")
	p("")
}

// neonKernel: func neonKernel(a *[4]*int8, b *byte, kc int, c *[4]*int32)
// 4 rows x 4 columns, k in chunks of 8: SMULL makes eight int16 products
// (each at most 128·128 = 16384, so nothing saturates; SMLAL could add two
// (−128)·(−128) products past 32767, so it is not used) and SADALP adds them
// pairwise into int32 lanes. Each accumulator is reduced across lanes at
// the end with ADDP. B packed as kc chunks of 4 columns x 8 bytes.
func neonKernel() {
	p("// func neonKernel(a *[4]*int8, b *byte, kc int, c *[4]*int32)")
	p("TEXT ·neonKernel(SB), NOSPLIT, $0-32")
	p("\tMOVD a+0(FP), R11")
	for r := range neonRows {
		p("\tMOVD %d(R11), R%d", 8*r, r)
	}
	p("\tMOVD b+8(FP), R8")
	p("\tMOVD kc+16(FP), R9")
	for v := range neonRows * 4 {
		p("\tVEOR V%d.B16, V%d.B16, V%d.B16", v, v, v)
	}
	p("\tCBZ R9, neon_store")
	p("neon_loop:")
	p("\tVLD1.P 32(R8), [V20.B8, V21.B8, V22.B8, V23.B8]")
	for r := range neonRows {
		p("\tVLD1.P 8(R%d), [V%d.B8]", r, 16+r)
	}
	t := 0
	for r := range neonRows {
		for c := range 4 {
			tmp := 24 + t%4
			t++
			p("\t%s", smull(tmp, 16+r, 20+c))
			p("\t%s", sadalp(4*r+c, tmp))
		}
	}
	p("\tSUBS $1, R9, R9")
	p("\tBNE neon_loop")
	p("neon_store:")
	p("\tMOVD c+24(FP), R12")
	for r := range neonRows {
		p("\t%s", addp(28, 4*r, 4*r+1))
		p("\t%s", addp(29, 4*r+2, 4*r+3))
		p("\t%s", addp(30, 28, 29))
		p("\tMOVD %d(R12), R11", 8*r)
		p("\tVST1 [V30.S4], (R11)")
	}
	p("\tRET")
	p("")
}

// dotSDOT: func dotSDOT(a, b *int8, n int) int32
// The dot product of n int8 values, n a positive multiple of 32: two SDOT
// accumulators (16 bytes each per step, so the two chains overlap), added
// and reduced across lanes at the end. Signed x signed, exact in int32
// for n up to MaxK.
func dotSDOT() {
	p("// func dotSDOT(a, b *int8, n int) int32")
	p("TEXT ·dotSDOT(SB), NOSPLIT, $0-28")
	p("\tMOVD a+0(FP), R0")
	p("\tMOVD b+8(FP), R1")
	p("\tMOVD n+16(FP), R2")
	p("\tVEOR V0.B16, V0.B16, V0.B16")
	p("\tVEOR V1.B16, V1.B16, V1.B16")
	p("dotsdot_loop:")
	p("\tVLD1.P 32(R0), [V2.B16, V3.B16]")
	p("\tVLD1.P 32(R1), [V4.B16, V5.B16]")
	p("\t%s", sdotVec(0, 2, 4))
	p("\t%s", sdotVec(1, 3, 5))
	p("\tSUBS $32, R2, R2")
	p("\tBNE dotsdot_loop")
	p("\t%s", vadd(s4, 0, 0, 1))
	p("\t%s", addv4s(0, 0))
	p("\tFMOVS F0, R3")
	p("\tMOVW R3, ret+24(FP)")
	p("\tRET")
	p("")
}

// dotNEON: func dotNEON(a, b *int8, n int) int32
// As dotSDOT without dotprod, n a positive multiple of 16: SMULL and
// SMULL2 give sixteen int16 products (at most 128·128 = 16384: exact),
// SADALP adds them pairwise into two int32 accumulators.
func dotNEON() {
	p("// func dotNEON(a, b *int8, n int) int32")
	p("TEXT ·dotNEON(SB), NOSPLIT, $0-28")
	p("\tMOVD a+0(FP), R0")
	p("\tMOVD b+8(FP), R1")
	p("\tMOVD n+16(FP), R2")
	p("\tVEOR V0.B16, V0.B16, V0.B16")
	p("\tVEOR V1.B16, V1.B16, V1.B16")
	p("dotneon_loop:")
	p("\tVLD1.P 16(R0), [V2.B16]")
	p("\tVLD1.P 16(R1), [V4.B16]")
	p("\t%s", smull(6, 2, 4))
	p("\t%s", smull2(7, 2, 4))
	p("\t%s", sadalp(0, 6))
	p("\t%s", sadalp(1, 7))
	p("\tSUBS $16, R2, R2")
	p("\tBNE dotneon_loop")
	p("\t%s", vadd(s4, 0, 0, 1))
	p("\t%s", addv4s(0, 0))
	p("\tFMOVS F0, R3")
	p("\tMOVW R3, ret+24(FP)")
	p("\tRET")
	p("")
}

// argminNEON: func argminLanesNEON(dot, bn *int32, n int, st *LaneMins)
// For n a positive multiple of 16: lane l (of 16, four vectors) keeps the
// smallest d = bn[j] − 2·dot[j] over j ≡ l (mod 16) and the first j giving
// it. SHL #1 and SUB wrap as Go's int32 arithmetic does; the first 16
// columns set the lanes, then CMGT (old > new: strictly smaller replaces,
// so the first of equal values stays) and BIT select values and indices.
// st gets the values in [0:16] and the indices in [16:32] (LaneMins).
func argminNEON() {
	p("// func argminLanesNEON(dot, bn *int32, n int, st *LaneMins)")
	p("TEXT ·argminLanesNEON(SB), NOSPLIT, $0-32")
	p("\tMOVD dot+0(FP), R0")
	p("\tMOVD bn+8(FP), R1")
	p("\tMOVD n+16(FP), R2")
	p("\tMOVD $argminIota<>(SB), R3")
	p("\tVLD1 (R3), [V24.S4, V25.S4, V26.S4, V27.S4] // column of each lane: 0..15")
	p("\tMOVW $16, R4")
	p("\tVDUP R4, V30.S4")
	argminStep := func() {
		p("\tVLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]")
		p("\tVLD1.P 64(R1), [V4.S4, V5.S4, V6.S4, V7.S4]")
		for i := range 4 {
			p("\t%s", shl4s(i, i, 1))
		}
		for i := range 4 {
			p("\t%s", vsub(s4, i, 4+i, i)) // d = bn − 2·dot
		}
	}
	argminStep()
	for i := range 4 {
		p("\t%s", vorr(16+i, i, i))       // best = d
		p("\t%s", vorr(20+i, 24+i, 24+i)) // index = column
	}
	p("\tSUBS $16, R2, R2")
	p("\tBEQ argmin_done")
	p("argmin_loop:")
	for i := range 4 {
		p("\t%s", vadd(s4, 24+i, 24+i, 30))
	}
	argminStep()
	for i := range 4 {
		p("\t%s", cmgt(s4, 8+i, 16+i, i)) // best > d
	}
	for i := range 4 {
		p("\t%s", vbit(16+i, i, 8+i))
		p("\t%s", vbit(20+i, 24+i, 8+i))
	}
	p("\tSUBS $16, R2, R2")
	p("\tBNE argmin_loop")
	p("argmin_done:")
	p("\tMOVD st+24(FP), R5")
	p("\tVST1.P [V16.S4, V17.S4, V18.S4, V19.S4], 64(R5)")
	p("\tVST1 [V20.S4, V21.S4, V22.S4, V23.S4], (R5)")
	p("\tRET")
	p("")
	for i := range 16 {
		p("DATA argminIota<>+%d(SB)/4, $%d", 4*i, i)
	}
	p("GLOBL argminIota<>(SB), RODATA|NOPTR, $64")
	p("")
}
