package vec

import "fmt"

// Requant is TensorFlow Lite's per-channel requantization of int32
// accumulators to int8 (MultiplyByQuantizedMultiplier with shift = Left −
// Right), for channel c of every row:
//
//	v := acc + Bias[c]
//	v = RDBPOT(SRDHM(v<<Left[c], Mult[c]), Right[c])
//	out = int8(min(max(v+Zo, Lo), Hi))
//
// Mult must be a positive Q31 mantissa, as quantized multipliers are, so
// the one saturating case of SRDHM cannot occur. The fields are read by
// the kernels as they are; NewRequant checks them.
type Requant struct {
	Bias, Mult, Left, Right []int32
	Zo, Lo, Hi              int32
}

// NewRequant checks and keeps the per-channel parameters; shift[c] is the
// power-of-two exponent of channel c (positive: left).
func NewRequant(bias, mult []int32, shift []int, zo, lo, hi int32) (*Requant, error) {
	n := len(mult)
	if len(bias) != n || len(shift) != n {
		return nil, fmt.Errorf("vec: requant with %d biases, %d multipliers, %d shifts", len(bias), n, len(shift))
	}
	q := &Requant{Bias: bias, Mult: mult, Left: make([]int32, n), Right: make([]int32, n), Zo: zo, Lo: lo, Hi: hi}
	for c, s := range shift {
		if mult[c] <= 0 || s > 31 || s < -31 {
			return nil, fmt.Errorf("vec: requant channel %d: multiplier %d, shift %d out of range", c, mult[c], s)
		}
		q.Left[c], q.Right[c] = int32(max(s, 0)), int32(max(-s, 0))
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
	done := 0
	if active == avx512 {
		done = requantRowsAVX512(q, acc, out, rows)
	} else if active == neon {
		done = requantRowsNEON(q, acc, out, rows)
	}
	if done < rows {
		requantRowsGeneric(q, acc[done*n:], out[done*n:], rows-done)
	}
}

// requantRowsGeneric assumes rows > 0, n = len(q.Mult) > 0 and
// len(acc) == len(out) == rows·n; so do requantRowsAVX512 and
// requantRowsNEON.
func requantRowsGeneric(q *Requant, acc []int32, out []int8, rows int) {
	n := len(q.Mult)
	for r := range rows {
		q.rowGeneric(acc[r*n:(r+1)*n], out[r*n:(r+1)*n])
	}
}

func (q *Requant) rowGeneric(acc []int32, out []int8) { q.channelsGeneric(acc, out, 0) }

// channelsGeneric requantizes channels [from, len(acc)) of one row (the
// NEON kernel leaves a row's last n mod 16 channels to it).
func (q *Requant) channelsGeneric(acc []int32, out []int8, from int) {
	for c := from; c < len(acc); c++ {
		v := acc[c] + q.Bias[c]
		v = RDBPOT(SRDHM(v<<uint(q.Left[c]), q.Mult[c]), int(q.Right[c])) + q.Zo
		out[c] = int8(min(max(v, q.Lo), q.Hi))
	}
}
