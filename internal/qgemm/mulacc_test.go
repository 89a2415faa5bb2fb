package qgemm

import (
	"math/rand/v2"
	"testing"
)

func TestMulAccOnePixelMatchesScalar(t *testing.T) {
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
		MulAccPixels(acc[:n], x, w, n, 1, n, zx) // one pixel of n channels
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

func TestMaxIntoMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 1))
	for n := 1; n <= 200; n++ {
		dst, src := make([]int8, n+3), make([]int8, n)
		want := make([]int8, n)
		for i := range n {
			dst[i], src[i] = int8(rng.IntN(256)-128), int8(rng.IntN(256)-128)
			want[i] = max(dst[i], src[i])
		}
		MaxInto(dst[:n], src)
		for i := range want {
			if dst[i] != want[i] {
				t.Fatalf("n=%d: dst[%d] = %d, want %d", n, i, dst[i], want[i])
			}
		}
		if dst[n] != 0 || dst[n+2] != 0 {
			t.Fatal("wrote past the end")
		}
	}
}

// TestDotMatchesScalar: Dot (vector body, scalar tail) equals the plain sum
// on every length and at the extremes.
func TestDotMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 9))
	for n := 0; n <= 300; n++ {
		a, b := make([]int8, n), make([]int8, n+5)
		for i := range a {
			a[i], b[i] = int8(rng.IntN(256)-128), int8(rng.IntN(256)-128)
			if n%7 == 0 {
				a[i], b[i] = -128, -128
			}
		}
		var want int32
		for i := range a {
			want += int32(a[i]) * int32(b[i])
		}
		if got := Dot(a, b); got != want {
			t.Fatalf("n=%d: Dot = %d, want %d", n, got, want)
		}
	}
}

func TestMulAccPixelsMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for _, c := range []int{1, 3, 16, 32, 48, 96, 100} {
		for _, stride := range []int{1, 2} {
			for npix := 1; npix <= 9; npix++ {
				xstride := stride * c
				x := make([]int8, (npix-1)*xstride+c+1)
				for i := range x {
					x[i] = int8(rng.IntN(256) - 128)
				}
				w := make([]int32, c)
				for i := range w {
					w[i] = rng.Int32N(512) - 256
				}
				zx := rng.Int32N(256) - 128
				acc := make([]int32, npix*c+1)
				for i := range acc[:npix*c] {
					acc[i] = rng.Int32N(1<<20) - 1<<19
				}
				want := append([]int32(nil), acc...)
				for p := range npix {
					for ch := range c {
						want[p*c+ch] += (int32(x[1+p*xstride+ch]) - zx) * w[ch]
					}
				}
				MulAccPixels(acc[:npix*c], x[1:], w, c, npix, xstride, zx)
				for i := range want {
					if acc[i] != want[i] {
						t.Fatalf("c %d stride %d npix %d: acc[%d] = %d, want %d (kernel %s)", c, stride, npix, i, acc[i], want[i], chosen.name)
					}
				}
			}
		}
	}
}
