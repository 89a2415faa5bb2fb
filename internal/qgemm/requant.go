package qgemm

import "fmt"

// Requant is TensorFlow Lite's per-channel requantization of int32
// accumulators to int8, with every channel's parameters laid out for the
// vector kernel:
//
//	v = acc + Bias[c]
//	v = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(v << Left[c], Mult[c]), Right[c])
//	out = clamp(v + Zo, Lo, Hi)
//
// (MultiplyByQuantizedMultiplier with shift = Left − Right.) Mult must be a
// positive Q31 mantissa, as quantized multipliers are.
type Requant struct {
	Bias, Mult, Left, Right []int32
	Zo, Lo, Hi              int32
	vec                     bool
	blk                     []int32 // requantBlock: the fused kernel's layout
}

// requantBlock lays the parameters out for the requantizing VNNI kernel
// (GemmRowsRequant), per panel of 16 channels seven vectors it reads as
// memory operands: bias, left shift, multiplier, the odd channels'
// multipliers moved to the even lanes (VPMULDQ reads the low half of each
// 64-bit lane), the rounding mask 2^right−1, the threshold mask>>1 and the
// right shift. Lanes past the last channel stay zero.
func (q *Requant) requantBlock() []int32 {
	n := len(q.Mult)
	np := (n + 15) / 16
	blk := make([]int32, np*7*16)
	for c := range n {
		v := blk[(c/16)*7*16:]
		l := c % 16
		mask := int32(1)<<uint(q.Right[c]) - 1
		v[l], v[16+l], v[32+l] = q.Bias[c], q.Left[c], q.Mult[c]
		if l%2 == 1 {
			v[48+l-1] = q.Mult[c]
		}
		v[64+l], v[80+l], v[96+l] = mask, mask>>1, q.Right[c]
	}
	return blk
}

// NewRequant checks and keeps the per-channel parameters; shift[c] is the
// power-of-two exponent of channel c (positive: left).
func NewRequant(bias, mult []int32, shift []int, zo, lo, hi int32) (*Requant, error) {
	n := len(mult)
	if len(bias) != n || len(shift) != n {
		return nil, fmt.Errorf("qgemm: requant with %d biases, %d multipliers, %d shifts", len(bias), n, len(shift))
	}
	q := &Requant{Bias: bias, Mult: mult, Left: make([]int32, n), Right: make([]int32, n), Zo: zo, Lo: lo, Hi: hi}
	for c, s := range shift {
		if mult[c] <= 0 || s > 31 || s < -31 {
			return nil, fmt.Errorf("qgemm: requant channel %d: multiplier %d, shift %d out of range", c, mult[c], s)
		}
		q.Left[c], q.Right[c] = int32(max(s, 0)), int32(max(-s, 0))
	}
	q.vec = hasVectorOps(chosen.name)
	if q.vec {
		q.blk = q.requantBlock()
	}
	return q, nil
}

// Row requantizes one row of len(q.Mult) accumulators into out.
func (q *Requant) Row(acc []int32, out []int8) { q.Rows(acc, out, 1) }

// Rows requantizes rows consecutive rows of len(q.Mult) accumulators (acc
// and out both row-major without gaps); the vector kernel sets up its
// constants once for all of them.
func (q *Requant) Rows(acc []int32, out []int8, rows int) {
	n := len(q.Mult)
	if rows <= 0 || n == 0 {
		return
	}
	acc, out = acc[:rows*n], out[:rows*n]
	if q.vec {
		zlh := [3]int32{q.Zo, q.Lo, q.Hi}
		requantRows(&acc[0], &out[0], n, &q.Bias[0], &q.Mult[0], &q.Left[0], &q.Right[0], &zlh, rows)
		return
	}
	for r := range rows {
		q.rowGeneric(acc[r*n:(r+1)*n], out[r*n:(r+1)*n])
	}
}

func (q *Requant) rowGeneric(acc []int32, out []int8) {
	for c, a := range acc {
		v := a + q.Bias[c]
		v = RDBPOT(SRDHM(v<<uint(q.Left[c]), q.Mult[c]), int(q.Right[c])) + q.Zo
		out[c] = int8(min(max(v, q.Lo), q.Hi))
	}
}
