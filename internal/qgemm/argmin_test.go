package qgemm

import (
	"math/rand/v2"
	"testing"
)

// TestArgminBiased: the kernel path equals a plain scan on every length,
// with ties (the lowest index wins) and extreme values.
func TestArgminBiased(t *testing.T) {
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
}
