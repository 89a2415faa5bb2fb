package qgemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRequantMatchesDefinition: the vector kernel (where this machine has
// one) equals TFLite's MultiplyByQuantizedMultiplier written the plain
// way, on every tail length and on extreme accumulators, shifts and
// multipliers, and writes nothing past the row.
func TestRequantMatchesDefinition(t *testing.T) {
	def := func(x, m int32, shift int) int32 {
		left, right := 0, 0
		if shift > 0 {
			left = shift
		} else {
			right = -shift
		}
		a := x * (1 << uint(left))
		ab := int64(a) * int64(m)
		nudge := int64(1 << 30)
		if ab < 0 {
			nudge = 1 - (1 << 30)
		}
		v := int32((ab + nudge) / (1 << 31))
		mask := int32(1)<<uint(right) - 1
		rem, th := v&mask, mask>>1
		if v < 0 {
			th++
		}
		r := v >> uint(right)
		if rem > th {
			r++
		}
		return r
	}
	rng := rand.New(rand.NewPCG(9, 9))
	edges := []int32{math.MinInt32, math.MinInt32 + 1, -1 << 20, -1, 0, 1, 1 << 20, math.MaxInt32}
	for n := 1; n <= 67; n++ {
		bias, mult, shift := make([]int32, n), make([]int32, n), make([]int, n)
		for c := range n {
			bias[c] = int32(rng.IntN(1<<16)) - 1<<15
			mult[c] = 1<<30 + int32(rng.IntN(1<<30))
			if c%5 == 0 {
				mult[c] = math.MaxInt32
			}
			if c%5 == 1 {
				// acc·2^30 is an exact tie of the doubling high multiply
				// for every odd acc, of either sign.
				mult[c] = 1 << 30
			}
			shift[c] = rng.IntN(40) - 31
			if c%7 == 3 {
				shift[c] = rng.IntN(4) // left shifts
			}
		}
		zo := int32(rng.IntN(256)) - 128
		q, err := NewRequant(bias, mult, shift, zo, -128, 127)
		if err != nil {
			t.Fatal(err)
		}
		if c := []int{1, 2, 3, 16, 17, 64}; n == c[0] {
			t.Logf("requant kernel: vector=%v", q.vec)
		}
		for trial := range 50 {
			acc := make([]int32, n)
			for c := range acc {
				acc[c] = int32(rng.Uint32()) >> uint(rng.IntN(32))
				if trial%3 == 0 {
					acc[c] = edges[rng.IntN(len(edges))]
				}
			}
			out := make([]int8, n+8)
			for i := range out {
				out[i] = 0x5a
			}
			q.Row(acc, out)
			// The same row three times through Rows gives it three times.
			acc3, out3 := append(append(append([]int32{}, acc...), acc...), acc...), make([]int8, 3*n+8)
			q.Rows(acc3, out3, 3)
			for r := range 3 {
				for c := range n {
					if out3[r*n+c] != out[c] {
						t.Fatalf("n=%d: Rows row %d channel %d = %d, Row gives %d", n, r, c, out3[r*n+c], out[c])
					}
				}
			}
			for _, v := range out3[3*n:] {
				if v != 0 {
					t.Fatalf("n=%d: Rows wrote past the end", n)
				}
			}
			for c := range n {
				v := def(acc[c]+bias[c], mult[c], shift[c]) + zo
				want := int8(min(max(v, -128), 127))
				if out[c] != want {
					t.Fatalf("n=%d channel %d: acc %d bias %d mult %d shift %d: got %d, want %d", n, c, acc[c], bias[c], mult[c], shift[c], out[c], want)
				}
			}
			for i := n; i < len(out); i++ {
				if out[i] != 0x5a {
					t.Fatalf("n=%d: wrote past the row at %d", n, i)
				}
			}
		}
	}
}
