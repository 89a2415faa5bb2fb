package qgemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestAxpyF64MatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 100; n++ {
		for off := 0; off < 2; off++ {
			x := make([]float64, n+off)
			acc := make([]float64, n+off+2)
			for i := range x {
				x[i] = r.NormFloat64() * math.Pow(10, float64(r.IntN(20)-10))
			}
			for i := range acc {
				acc[i] = r.NormFloat64()
			}
			want := append([]float64(nil), acc...)
			k := r.NormFloat64()
			for i := 0; i < n; i++ {
				want[1+i] += float64(k * x[off+i])
			}
			AxpyF64(acc[1:n+1], x[off:], k)
			for i := range acc {
				if math.Float64bits(acc[i]) != math.Float64bits(want[i]) {
					t.Fatalf("n %d: element %d = %v, want %v (kernel %s)", n, i, acc[i], want[i], chosen.name)
				}
			}
		}
	}
}
