package qgemm

import (
	"math/rand/v2"
	"testing"
)

func naive(m, n, k int, a []int8, lda int, b []int8, ldb int) []int32 {
	c := make([]int32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s int32
			for p := 0; p < k; p++ {
				s += int32(a[i*lda+p]) * int32(b[j*ldb+p])
			}
			c[i*n+j] = s
		}
	}
	return c
}

func TestGemmHandComputed(t *testing.T) {
	// 2 x 3 ( 1 column block of 4 is skipped: n < 4, tail path only )
	a := []int8{1, 2, 3, -1, -2, -3}
	b := []int8{1, 0, 0, 0, 1, 0, 1, 1, 1}
	c := make([]int32, 6)
	if err := Gemm(2, 3, 3, a, 3, b, 3, c, 3); err != nil {
		t.Fatal(err)
	}
	want := []int32{1, 2, 6, -1, -2, -6}
	for i := range want {
		if c[i] != want[i] {
			t.Fatalf("c = %v, want %v", c, want)
		}
	}
}

func TestGemmExtremes(t *testing.T) {
	// k = MaxK of -128 * -128 is the largest sum: 2^14 * 2^16 = 2^30, no overflow.
	k := MaxK
	a := make([]int8, k)
	b := make([]int8, k)
	for i := range a {
		a[i], b[i] = -128, -128
	}
	c := make([]int32, 1)
	if err := Gemm(1, 1, k, a, k, b, k, c, 1); err != nil {
		t.Fatal(err)
	}
	if c[0] != 1<<30 {
		t.Fatalf("got %d, want %d", c[0], 1<<30)
	}
	for i := range b {
		b[i] = 127
	}
	Gemm(1, 1, k, a, k, b, k, c, 1)
	if c[0] != -128*127*int32(k) {
		t.Fatalf("got %d, want %d", c[0], -128*127*k)
	}
}

func TestGemmRandomShapesWithCanaries(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const canary = 0x5a
	for trial := 0; trial < 300; trial++ {
		m, n, k := 1+r.IntN(9), 1+r.IntN(11), 1+r.IntN(70) // tails of the 4-column block
		lda, ldb, ldc := k+r.IntN(3), k+r.IntN(3), n+r.IntN(3)
		off := r.IntN(5) // unaligned starts
		a := make([]int8, off+m*lda+8)
		b := make([]int8, off+n*ldb+8)
		for i := range a {
			a[i] = int8(r.IntN(256) - 128)
		}
		for i := range b {
			b[i] = int8(r.IntN(256) - 128)
		}
		c := make([]int32, off+m*ldc+8)
		for i := range c {
			c[i] = canary
		}
		if err := Gemm(m, n, k, a[off:], lda, b[off:], ldb, c[off:], ldc); err != nil {
			t.Fatal(err)
		}
		want := naive(m, n, k, a[off:], lda, b[off:], ldb)
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				if got := c[off+i*ldc+j]; got != want[i*n+j] {
					t.Fatalf("m=%d n=%d k=%d: c[%d][%d]=%d want %d", m, n, k, i, j, got, want[i*n+j])
				}
			}
			for j := n; j < ldc && off+i*ldc+j < len(c); j++ {
				if i < m-1 && c[off+i*ldc+j] != canary {
					t.Fatalf("padding of row %d overwritten", i)
				}
			}
		}
		for i := 0; i < off; i++ {
			if c[i] != canary {
				t.Fatalf("canary before c overwritten")
			}
		}
		for i := off + (m-1)*ldc + n; i < len(c); i++ {
			if c[i] != canary {
				t.Fatalf("canary after c overwritten at %d", i)
			}
		}
	}
}

func TestGemmRejectsBadShapes(t *testing.T) {
	c := make([]int32, 4)
	if err := Gemm(2, 2, 2, make([]int8, 3), 2, make([]int8, 4), 2, c, 2); err == nil {
		t.Fatal("short a accepted")
	}
	if err := Gemm(2, 2, 2, make([]int8, 4), 1, make([]int8, 4), 2, c, 2); err == nil {
		t.Fatal("lda < k accepted")
	}
	if err := Gemm(1, 1, MaxK+1, nil, 0, nil, 0, c, 1); err == nil {
		t.Fatal("k > MaxK accepted")
	}
}

func FuzzGemm(f *testing.F) {
	f.Add(uint8(3), uint8(5), uint8(7), []byte{1, 2, 3, 255, 128, 127})
	f.Fuzz(func(t *testing.T, m, n, k uint8, seed []byte) {
		M, N, K := int(m%12)+1, int(n%12)+1, int(k%40)+1
		a := make([]int8, M*K)
		b := make([]int8, N*K)
		for i := range a {
			if len(seed) > 0 {
				a[i] = int8(seed[i%len(seed)] + byte(i))
			}
		}
		for i := range b {
			if len(seed) > 0 {
				b[i] = int8(seed[(i*7)%len(seed)] ^ byte(i))
			}
		}
		c := make([]int32, M*N)
		if err := Gemm(M, N, K, a, K, b, K, c, N); err != nil {
			t.Fatal(err)
		}
		want := naive(M, N, K, a, K, b, K)
		for i := range want {
			if c[i] != want[i] {
				t.Fatalf("mismatch at %d", i)
			}
		}
	})
}

func BenchmarkGemm(b *testing.B) {
	for _, s := range []struct{ m, n, k int }{{784, 64, 576}, {196, 256, 2304}, {3136, 128, 1152}} {
		a := make([]int8, s.m*s.k)
		w := make([]int8, s.n*s.k)
		c := make([]int32, s.m*s.n)
		b.Run("", func(b *testing.B) {
			b.SetBytes(int64(s.m * s.n * s.k)) // MACs per op, reported as "MB/s" = MMAC/s
			for i := 0; i < b.N; i++ {
				Gemm(s.m, s.n, s.k, a, s.k, w, s.k, c, s.n)
			}
		})
	}
}
