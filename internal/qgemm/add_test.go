package qgemm

import (
	"math/rand/v2"
	"testing"
)

// TestAddQuantKernelMatchesScalar: the table (gathered by the vector path,
// read by the scalar tail) equals the definition element by element
// (TFLite's, checked against TensorFlow Lite through the model package's
// conformance tests) for every length, zero points and
// multipliers like a converter makes (scales 2^-8..2^0, so right shifts
// of 1..12 and, for the output, small left shifts too).
func TestAddQuantKernelMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	for trial := range 300 {
		n := 1 + rng.IntN(100)
		zp := func() int32 { return rng.Int32N(256) - 128 }
		m := func() int32 { return 1<<30 + rng.Int32N(1<<30) }
		s1, s2, so := -1-rng.IntN(12), -1-rng.IntN(12), rng.IntN(40)-31
		lo, hi := int32(-128), int32(127)
		if trial%3 == 0 {
			lo = zp() / 2 // a fused ReLU
		}
		q, err := NewAddQuant(zp(), zp(), zp(), lo, hi, m(), s1, m(), s2, m(), so)
		if err != nil {
			t.Fatal(err)
		}
		a, b := make([]int8, n), make([]int8, n)
		for i := range a {
			a[i], b[i] = int8(rng.IntN(256)-128), int8(rng.IntN(256)-128)
		}
		if trial%50 == 0 { // every pair, including the table's last entries
			n = 1 << 16
			a, b = make([]int8, n), make([]int8, n)
			for i := range n {
				a[i], b[i] = int8(i>>8), int8(i)
			}
		}
		got, want := make([]int8, n+4), make([]int8, n)
		q.Add(a, b, got[:n])
		for i := range want {
			want[i] = q.one(a[i], b[i]) // the definition, element by element
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("trial %d n=%d shifts %d %d %d: out[%d] = %d, want %d (vector %v)", trial, n, s1, s2, so, i, got[i], want[i], q.vec)
			}
		}
		for _, v := range got[n:] {
			if v != 0 {
				t.Fatal("wrote past the end")
			}
		}
	}
}
