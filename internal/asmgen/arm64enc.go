package main

import "fmt"

// Encodings of the Advanced SIMD instructions Go's arm64 assembler has no
// mnemonic for (or whose operand order is easy to get wrong), from the Arm
// Architecture Reference Manual (DDI 0487), section C4.1.96 "Advanced SIMD
// three same", "two-register miscellaneous", "shift by immediate" and
// "vector x indexed element". Each returns a WORD line whose comment is the
// instruction in GNU syntax; TestARM64Encodings assembles those comments
// with aarch64-linux-gnu-as (where installed) and compares the words.

// arrangement names a vector arrangement: Q (64 or 128 bits) and size.
type arrangement struct {
	q, size int
	name    string
}

var (
	b8  = arrangement{0, 0, "8B"}
	b16 = arrangement{1, 0, "16B"}
	h4  = arrangement{0, 1, "4H"}
	h8  = arrangement{1, 1, "8H"}
	s4  = arrangement{1, 2, "4S"}
	d2  = arrangement{1, 3, "2D"}
)

func word(w uint32, format string, args ...any) string {
	return fmt.Sprintf("WORD $0x%08x // %s", w, fmt.Sprintf(format, args...))
}

// threeSame: 0 Q U 01110 size 1 Rm opcode 1 Rn Rd (integer and logical
// forms; for the float forms size is 0:sz, and for the logical ones it
// picks the operation).
func threeSame(mn string, u, opc int, a arrangement, d, n, m int) string {
	w := uint32(0x0E200400 | a.q<<30 | u<<29 | a.size<<22 | m<<16 | opc<<11 | n<<5 | d)
	return word(w, "%s V%d.%s, V%d.%s, V%d.%s", mn, d, a.name, n, a.name, m, a.name)
}

// twoMisc: 0 Q U 01110 size 10000 opcode 10 Rn Rd.
func twoMisc(mn string, u, opc, q, size int, d int, dn string, n int, nn string) string {
	w := uint32(0x0E200800 | q<<30 | u<<29 | size<<22 | opc<<12 | n<<5 | d)
	return word(w, "%s V%d.%s, V%d.%s", mn, d, dn, n, nn)
}

// Integer three-same (DDI 0487 C7.2).
func vadd(a arrangement, d, n, m int) string  { return threeSame("ADD", 0, 0b10000, a, d, n, m) }
func vsub(a arrangement, d, n, m int) string  { return threeSame("SUB", 1, 0b10000, a, d, n, m) }
func vmul(a arrangement, d, n, m int) string  { return threeSame("MUL", 0, 0b10011, a, d, n, m) }
func smax(a arrangement, d, n, m int) string  { return threeSame("SMAX", 0, 0b01100, a, d, n, m) }
func smin(a arrangement, d, n, m int) string  { return threeSame("SMIN", 0, 0b01101, a, d, n, m) }
func sqadd(a arrangement, d, n, m int) string { return threeSame("SQADD", 0, 0b00001, a, d, n, m) }
func sshl(a arrangement, d, n, m int) string  { return threeSame("SSHL", 0, 0b01000, a, d, n, m) }
func srshl(a arrangement, d, n, m int) string { return threeSame("SRSHL", 0, 0b01010, a, d, n, m) }
func sqrdmulh(a arrangement, d, n, m int) string {
	return threeSame("SQRDMULH", 1, 0b10110, a, d, n, m)
}
func cmgt(a arrangement, d, n, m int) string { return threeSame("CMGT", 0, 0b00110, a, d, n, m) }

// Logical three-same on 16 bytes; size selects the operation.
func vand(d, n, m int) string {
	return threeSame("AND", 0, 0b00011, arrangement{1, 0, "16B"}, d, n, m)
}
func vorr(d, n, m int) string {
	return threeSame("ORR", 0, 0b00011, arrangement{1, 2, "16B"}, d, n, m)
}

// vbit: BIT Vd, Vn, Vm: Vd takes Vn's bits where Vm's are set.
func vbit(d, n, m int) string {
	return threeSame("BIT", 1, 0b00011, arrangement{1, 2, "16B"}, d, n, m)
}

// Float three-same, 4S (sz 0) or 2D (sz 1): size is 0:sz.
func fadd(a arrangement, d, n, m int) string {
	return threeSame("FADD", 0, 0b11010, arrangement{1, a.size & 1, a.name}, d, n, m)
}
func fmul(a arrangement, d, n, m int) string {
	return threeSame("FMUL", 1, 0b11011, arrangement{1, a.size & 1, a.name}, d, n, m)
}
func fdiv(a arrangement, d, n, m int) string {
	return threeSame("FDIV", 1, 0b11111, arrangement{1, a.size & 1, a.name}, d, n, m)
}

// fmulElem: FMUL Vd.4S, Vn.4S, Vm.S[idx]:
// 0 Q 0 01111 1 sz L M Rm 1001 H 0 Rn Rd, with sz 0, Rm 4 bits and M its
// fifth, idx = H:L.
func fmulElem(d, n, m, idx int) string {
	w := uint32(0x4F809000 | (idx&1)<<21 | (m&31)<<16 | (idx>>1)<<11 | n<<5 | d)
	return word(w, "FMUL V%d.4S, V%d.4S, V%d.S[%d]", d, n, m, idx)
}

// Two-register miscellaneous, 4S.
func fcvtas(d, n int) string { return twoMisc("FCVTAS", 0, 0b11100, 1, 0, d, "4S", n, "4S") }
func ucvtf(d, n int) string  { return twoMisc("UCVTF", 1, 0b11101, 1, 0, d, "4S", n, "4S") }
func vneg(d, n int) string   { return twoMisc("NEG", 1, 0b01011, 1, 2, d, "4S", n, "4S") }

// xtn narrows: XTN Vd.<half>, Vn.<wide> (hi: XTN2 into the upper half).
// wide is 8H (to bytes) or 4S (to halfwords).
func xtn(d, n int, wide arrangement, hi bool) string {
	size := wide.size - 1
	q, mn := 0, "XTN"
	dn := map[int]string{0: "8B", 1: "4H"}[size]
	if hi {
		q, mn = 1, "XTN2"
		dn = map[int]string{0: "16B", 1: "8H"}[size]
	}
	return twoMisc(mn, 0, 0b10010, q, size, d, dn, n, wide.name)
}

// shiftImm: 0 Q U 011110 immh:immb opcode 1 Rn Rd.
func shiftImm(mn string, u, opc, q, immhb, d int, dn string, n int, nn string, tail string) string {
	w := uint32(0x0F000400 | q<<30 | u<<29 | immhb<<16 | opc<<11 | n<<5 | d)
	return word(w, "%s V%d.%s, V%d.%s%s", mn, d, dn, n, nn, tail)
}

// xtl widens the low (hi: the high) half of Vn by one size, signed
// (SSHLL #0) or unsigned (USHLL #0). from is the narrow arrangement's
// element size: 0 bytes, 1 halfwords.
func xtl(signed bool, d, n, from int, hi bool) string {
	u, mn := 1, "USHLL"
	if signed {
		u, mn = 0, "SSHLL"
	}
	q := 0
	if hi {
		q, mn = 1, mn+"2"
	}
	nn := [2][2]string{{"8B", "16B"}, {"4H", "8H"}}[from][q]
	dn := [2]string{"8H", "4S"}[from]
	return shiftImm(mn, u, 0b10100, q, 8<<from, d, dn, n, nn, ", #0")
}

// sshr4s: SSHR Vd.4S, Vn.4S, #sh (immh:immb = 64 − sh).
func sshr4s(d, n, sh int) string {
	return shiftImm("SSHR", 0, 0b00000, 1, 64-sh, d, "4S", n, "4S", fmt.Sprintf(", #%d", sh))
}

// shl4s: SHL Vd.4S, Vn.4S, #sh (immh:immb = 32 + sh).
func shl4s(d, n, sh int) string {
	return shiftImm("SHL", 0, 0b01010, 1, 32+sh, d, "4S", n, "4S", fmt.Sprintf(", #%d", sh))
}

// sdotVec: SDOT Vd.4S, Vn.16B, Vm.16B (Armv8.2 dotprod).
func sdotVec(d, n, m int) string {
	return word(uint32(0x4E809400|m<<16|n<<5|d), "SDOT V%d.4S, V%d.16B, V%d.16B", d, n, m)
}

// smull2: SMULL2 Vd.8H, Vn.16B, Vm.16B.
func smull2(d, n, m int) string {
	return word(uint32(0x4E20C000|m<<16|n<<5|d), "SMULL2 V%d.8H, V%d.16B, V%d.16B", d, n, m)
}

// addv4s: ADDV Sd, Vn.4S.
func addv4s(d, n int) string {
	return word(uint32(0x4EB1B800|n<<5|d), "ADDV S%d, V%d.4S", d, n)
}
