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

// TestLerp2x2MatchesScalar: the vector kernel equals the scalar expression
// bit for bit on every length, unaligned slices, and weights of 1 and 0
// (the identity taps), and writes nothing past o.
func TestLerp2x2MatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for n := 0; n < 100; n += 1 + n/10 {
		for off := 0; off < 2; off++ {
			rows := make([][]float32, 4)
			for i := range rows {
				rows[i] = make([]float32, n+off)
				for j := range rows[i] {
					rows[i][j] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(8)-4)))
				}
			}
			w := [4]float32{float32(r.Float64()), float32(r.Float64()), float32(r.Float64()), float32(r.Float64())}
			if n%3 == 0 {
				w = [4]float32{1, 0, 0.25, 0.75}
			}
			o := make([]float32, n+2)
			o[0], o[n+1] = 7, 7
			Lerp2x2(o[1:n+1], rows[0][off:], rows[1][off:], rows[2][off:], rows[3][off:], &w)
			for i := range n {
				a := float32(w[0]*rows[0][off+i]) + float32(w[1]*rows[1][off+i])
				b := float32(w[0]*rows[2][off+i]) + float32(w[1]*rows[3][off+i])
				want := float32(w[2]*a) + float32(w[3]*b)
				if math.Float32bits(o[1+i]) != math.Float32bits(want) {
					t.Fatalf("n %d: element %d = %v, want %v (kernel %s)", n, i, o[1+i], want, chosen.name)
				}
			}
			if o[0] != 7 || o[n+1] != 7 {
				t.Fatalf("n %d: wrote outside o", n)
			}
		}
	}
}
