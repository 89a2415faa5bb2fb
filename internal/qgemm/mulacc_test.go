package qgemm

import (
	"math/rand/v2"
	"testing"
)

func TestMulAccMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for n := 1; n <= 100; n++ {
		acc, want := make([]int32, n+2), make([]int32, n)
		x, w := make([]int8, n), make([]int32, n)
		zx := rng.Int32N(256) - 128
		for i := range n {
			acc[i] = rng.Int32N(1<<20) - 1<<19
			want[i] = acc[i]
			x[i] = int8(rng.IntN(256) - 128)
			w[i] = rng.Int32N(512) - 256
			want[i] += (int32(x[i]) - zx) * w[i]
		}
		MulAcc(acc[:n], x, w, zx)
		for i := range want {
			if acc[i] != want[i] {
				t.Fatalf("n=%d: acc[%d] = %d, want %d", n, i, acc[i], want[i])
			}
		}
		if acc[n] != 0 || acc[n+1] != 0 {
			t.Fatal("wrote past the end")
		}
	}
}
