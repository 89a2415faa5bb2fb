package vec

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// TestRequantTiesEveryKernel: the final rounding (RDBPOT) on exact ties of
// both signs, with outputs inside int8 so that no clamp hides a wrong
// rounding: mult 2^30 makes SRDHM(2y, mult) = y exactly, and y = ±(2k+1)·
// 2^(r−1) is a tie of the division by 2^r, which gemmlowp rounds away from
// zero (−3·2^(r−1) / 2^r = −1.5 → −2, not −1). Random accumulators almost
// never meet such a tie unclamped; a vector kernel rounding half up passes
// them and fails here. Every channel position of a 16-wide step and the
// tails are covered (n = 48 + 5).
func TestRequantTiesEveryKernel(t *testing.T) {
	const n = 53
	bias, mult, shift := make([]int32, n), make([]int32, n), make([]int, n)
	for c := range n {
		mult[c] = 1 << 30
		shift[c] = -(1 + c%5) // right shifts 1..5
	}
	q, err := NewRequant(bias, mult, shift, 0, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	const rows = 8
	acc := make([]int32, rows*n)
	for r := range rows {
		for c := range n {
			right := 1 + c%5
			k := int32((r*n + c) % 7)
			y := (2*k + 1) << (right - 1) // a tie of the division by 2^right
			if (r+c)%2 == 0 {
				y = -y
			}
			acc[r*n+c] = 2 * y
		}
	}
	// The definition by hand for two of them: y = −(2·0+1)·2^0 = −1 at
	// right 1 is −0.5 → −1; y = 3 at right 1 is 1.5 → 2.
	if RDBPOT(-1, 1) != -1 || RDBPOT(3, 1) != 2 || RDBPOT(-3, 1) != -2 {
		t.Fatal("RDBPOT does not round ties away from zero")
	}
	want := make([]int8, rows*n)
	requantRowsGeneric(q, acc, want, rows)
	for r := range rows {
		for c := range n {
			y := acc[r*n+c] / 2
			right := 1 + c%5
			half := int32(1) << (right - 1)
			w := (y + half) >> right // ties up for y > 0
			if y < 0 {
				w = -((-y + half) >> right) // and down for y < 0
			}
			if int32(want[r*n+c]) != w {
				t.Fatalf("generic row %d channel %d: y %d / 2^%d = %d, want %d", r, c, y, right, want[r*n+c], w)
			}
		}
	}
	eachKernel(t, func(t *testing.T) {
		out := make([]int8, rows*n)
		q.Rows(acc, out, rows)
		if !slices.Equal(out, want) {
			for i := range out {
				if out[i] != want[i] {
					t.Fatalf("%s: element %d (acc %d): %d, want %d", fmt.Sprint(Kernel()), i, acc[i], out[i], want[i])
				}
			}
		}
	})
}

// TestAddQuantShiftsEveryKernel: every input pair through every kernel
// with the shifts a converter rarely makes and the definition allows: left
// shifts of the inputs (which wrap past 2^31 once (a−z)·2^20 is shifted by
// more than 10), no shift, and the widest right shifts, with extreme
// multipliers (2^30, which makes SRDHM's rounding a tie, and 2^31−1).
func TestAddQuantShiftsEveryKernel(t *testing.T) {
	a, b := make([]int8, 1<<16), make([]int8, 1<<16)
	for i := range a {
		a[i], b[i] = int8(i>>8), int8(i)
	}
	for _, c := range []struct {
		s1, s2, so int
		m1, m2, mo int32
	}{
		{3, 0, -20, 1 << 30, math.MaxInt32, 1 << 30},
		{11, -31, 0, math.MaxInt32, 1 << 30, math.MaxInt32},
		{0, 0, -31, 1 << 30, 1 << 30, 1 << 30},
		{-31, 12, 5, 1<<30 + 1, math.MaxInt32, 1 << 30},
	} {
		q, err := NewAddQuant(-128, 127, 3, -100, 90, c.m1, c.s1, c.m2, c.s2, c.mo, c.so)
		if err != nil {
			t.Fatal(err)
		}
		eachKernel(t, func(t *testing.T) {
			out := make([]int8, len(a))
			q.Add(a, b, out)
			for i := range out {
				if want := q.one(a[i], b[i]); out[i] != want {
					t.Fatalf("shifts %d %d %d: %d + %d = %d, want %d", c.s1, c.s2, c.so, a[i], b[i], out[i], want)
				}
			}
		})
	}
}
