package vec

import "fmt"

// AddQuant is TensorFlow Lite's int8 ADD of two same-shaped tensors
// (tensorflow/lite/kernels/add.cc): each input, less its zero point and
// shifted left 20 bits, is rescaled by its own quantized multiplier; the sum
// is rescaled to the output, offset by its zero point and clamped.
//
// Inputs are int8, so the output is a function of the pair (a, b): NewAddQuant
// computes it once for all 65536 pairs, and Add looks it up (a gather of 16
// at a time on AVX-512), which is several times faster than three
// fixed-point rescalings per element. NEON has no gather: on arm64 the
// kernel does the rescalings, 16 lanes at a time, which issues fewer
// instructions than the scalar lookup (and reads no 64 KiB table).
type AddQuant struct {
	prm [14]int32 // za zb zo lo hi m1 l1 r1 m2 l2 r2 mo lo ro
	lut []int8    // [uint8(a)<<8 | uint8(b)], plus 3 bytes so 4-byte gathers stay inside
}

// lutSize is the table's length: every pair, and the gathers' slack.
const lutSize = 1<<16 + 3

// NewAddQuant keeps the parameters; m and s are the quantized multipliers
// and their power-of-two exponents for input 1, input 2 and the output.
func NewAddQuant(za, zb, zo, lo, hi, m1 int32, s1 int, m2 int32, s2 int, mo int32, so int) (*AddQuant, error) {
	for _, s := range []int{s1, s2, so} {
		if s > 31 || s < -31 {
			return nil, fmt.Errorf("vec: add: shift %d out of range", s)
		}
	}
	lr := func(s int) (int32, int32) { return int32(max(s, 0)), int32(max(-s, 0)) }
	l1, r1 := lr(s1)
	l2, r2 := lr(s2)
	l3, r3 := lr(so)
	q := &AddQuant{prm: [14]int32{za, zb, zo, lo, hi, m1, l1, r1, m2, l2, r2, mo, l3, r3}}
	q.lut = make([]int8, lutSize)
	for a := -128; a < 128; a++ {
		for b := -128; b < 128; b++ {
			q.lut[int(uint8(int8(a)))<<8|int(uint8(int8(b)))] = q.one(int8(a), int8(b))
		}
	}
	return q, nil
}

// one is the definition for one element.
func (q *AddQuant) one(a, b int8) int8 {
	p := &q.prm
	x := (int32(a) - p[0]) << 20
	y := (int32(b) - p[1]) << 20
	sx := RDBPOT(SRDHM(x<<uint(p[6]), p[5]), int(p[7]))
	sy := RDBPOT(SRDHM(y<<uint(p[9]), p[8]), int(p[10]))
	v := RDBPOT(SRDHM((sx+sy)<<uint(p[12]), p[11]), int(p[13])) + p[2]
	return int8(min(max(v, p[3]), p[4]))
}

// Add computes out[i] for len(out) elements of a and b (which must hold
// that many), by the table:
//
//	for i := range out {
//		out[i] = q.lut[int(uint8(a[i]))<<8|int(uint8(b[i]))]
//	}
func (q *AddQuant) Add(a, b, out []int8) {
	n := len(out)
	a, b = a[:n], b[:n]
	done := 0
	if active == avx512 {
		done = addLUTAVX512(a, b, out, q.lut)
	} else if active == neon {
		done = addNEON(&q.prm, a, b, out) // computed: NEON has no gather
	}
	addLUTGeneric(a[done:], b[done:], out[done:], q.lut)
}

func addLUTGeneric(a, b, out, lut []int8) {
	n := len(out)
	a, b, lut = a[:n], b[:n], lut[:1<<16]
	for i := range out {
		out[i] = lut[int(uint8(a[i]))<<8|int(uint8(b[i]))]
	}
}
