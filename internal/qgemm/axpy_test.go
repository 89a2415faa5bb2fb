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

// TestAxpyBytesF32MatchesScalar: the vector kernel equals the scalar loop
// bit for bit on every length (both unrolled and single steps and the
// tail), unaligned slices and the extreme bytes, and writes nothing past
// acc.
func TestAxpyBytesF32MatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for n := 0; n < 200; n += 1 + n/20 {
		for off := 0; off < 3; off++ {
			x := make([]uint8, n+off)
			acc := make([]float32, n+off+2)
			for i := range x {
				x[i] = uint8(r.IntN(256))
				if i%7 == 0 {
					x[i] = 255
				}
			}
			for i := range acc {
				acc[i] = float32(r.NormFloat64() * 100)
			}
			want := append([]float32(nil), acc...)
			k := float32(r.Float64())
			for i := 0; i < n; i++ {
				want[1+i] += float32(k * float32(x[off+i]))
			}
			AxpyBytesF32(acc[1:n+1], x[off:], k)
			for i := range acc {
				if math.Float32bits(acc[i]) != math.Float32bits(want[i]) {
					t.Fatalf("n %d: element %d = %v, want %v (kernel %s)", n, i, acc[i], want[i], chosen.name)
				}
			}
		}
	}
}
