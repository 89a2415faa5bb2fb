package qgemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// use makes im the implementation the package's entries call for the rest
// of the test (as LINESIGHT_KERNEL=name would at start).
func use(t testing.TB, im *impl) {
	saved := chosen
	chosen = im
	t.Cleanup(func() { chosen = saved })
}

// TestDotEveryKernel: Dot (vector body, scalar tail) equals the plain sum
// with every implementation on every length to 300, at the extremes, and
// on operands at unaligned offsets.
func TestDotEveryKernel(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			use(t, im)
			rng := rand.New(rand.NewPCG(2, 9))
			for n := 0; n <= 300; n++ {
				off := n % 5
				a, b := make([]int8, off+n), make([]int8, n+5)
				a = a[off:]
				for i := range a {
					a[i], b[i] = int8(rng.IntN(256)-128), int8(rng.IntN(256)-128)
					switch n % 7 {
					case 0:
						a[i], b[i] = -128, -128
					case 1:
						a[i], b[i] = -128, 127
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
		})
	}
}

// TestArgminBiasedEveryKernel: every implementation equals a plain scan on
// every length to 130 (whole steps of 16 and tails), with ties (the lowest
// index wins, across lanes too), extreme values and the empty block.
func TestArgminBiasedEveryKernel(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			use(t, im)
			if v, j := ArgminBiased(nil, nil); v != 0 || j != -1 {
				t.Fatalf("empty block: (%d, %d), want (0, -1)", v, j)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			for n := 1; n <= 130; n++ {
				for trial := range 40 {
					dot, bn := make([]int32, n), make([]int32, n+3)
					span := int32(1 << (4 + trial%20))
					for j := range n {
						dot[j] = rng.Int32N(span) - span/2
						bn[j] = rng.Int32N(span)
						if trial%4 == 0 { // many ties
							dot[j], bn[j] = rng.Int32N(3), rng.Int32N(3)
						}
					}
					if trial == 1 {
						for j := range n {
							dot[j], bn[j] = -3_100_000, 6_300_000 // 384·128·(−128)·… extremes of a 384-d bank
						}
					}
					want, wj := bn[0]-2*dot[0], 0
					for j := 1; j < n; j++ {
						if d := bn[j] - 2*dot[j]; d < want {
							want, wj = d, j
						}
					}
					got, gj := ArgminBiased(dot, bn)
					if got != want || gj != wj {
						t.Fatalf("n=%d trial %d: (%d, %d), want (%d, %d)", n, trial, got, gj, want, wj)
					}
				}
			}
		})
	}
}

// BenchmarkDot: every implementation on a bank vector's length (ResNet18's
// 384) and a longer one, beside the plain loop (generic).
func BenchmarkDot(b *testing.B) {
	for _, n := range []int{384, 4096} {
		x, y := make([]int8, n), make([]int8, n)
		for i := range x {
			x[i], y[i] = int8(i*7), int8(i*13)
		}
		for _, im := range impls {
			b.Run(fmt.Sprintf("%s/n=%d", im.name, n), func(b *testing.B) {
				use(b, im)
				b.SetBytes(int64(n))
				for range b.N {
					Dot(x, y)
				}
			})
		}
	}
}

// BenchmarkArgminBiased: every implementation on one block of a search's
// columns.
func BenchmarkArgminBiased(b *testing.B) {
	for _, n := range []int{64, 1024} {
		dot, bn := make([]int32, n), make([]int32, n)
		for j := range dot {
			dot[j], bn[j] = int32(j*7919%1000), int32(j*104729%3000)
		}
		for _, im := range impls {
			b.Run(fmt.Sprintf("%s/n=%d", im.name, n), func(b *testing.B) {
				use(b, im)
				b.SetBytes(int64(8 * n))
				for range b.N {
					ArgminBiased(dot, bn)
				}
			})
		}
	}
}
