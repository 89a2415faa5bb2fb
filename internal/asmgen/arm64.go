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
