package qgemm

import (
	"math/rand"
	"testing"
)

// TestNearestColsMatchesBruteForce: folding column blocks into lane states
// (fused in the kernel where there is one) finds, per query, the smallest
// bn[j] − 2·q·b_j and the lowest j reaching it, as a plain scan does, on
// row and column tails, extreme values and many exact ties (repeated bank
// vectors), for every kernel.
func TestNearestColsMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewSource(21))
	for _, im := range impls {
		for _, sh := range []struct{ m, n, k int }{{13, 100, 96}, {6, 64, 4}, {1, 1, 8}, {7, 1031, 384}, {20, 200, 12}} {
			for mode := range 3 {
				b := make([]int8, sh.n*sh.k)
				fill(r, b, mode)
				// Repeat some vectors so distances tie.
				for j := 1; j < sh.n; j += 3 {
					copy(b[j*sh.k:(j+1)*sh.k], b[(j-1)*sh.k:j*sh.k])
				}
				a := make([]int8, sh.m*sh.k)
				fill(r, a, mode)
				bn, cols := make([]int32, sh.n), make([]int32, sh.n)
				for j := range sh.n {
					for _, v := range b[j*sh.k : (j+1)*sh.k] {
						bn[j] += int32(v) * int32(v)
					}
					cols[j] = int32(j)
				}
				p, err := packWith(im, sh.n, sh.k, b, sh.k, nil)
				if err != nil {
					t.Fatal(err)
				}
				state := make([]LaneMins, sh.m)
				for i := range state {
					state[i].Reset()
				}
				// Fold in two column ranges, in order, as searchers do.
				split := min(sh.n, (sh.n/2)/BlockCols*BlockCols)
				for _, cr := range [][2]int{{0, split}, {split, sh.n}} {
					if err := p.NearestCols(sh.m, a, sh.k, cr[0], cr[1]-cr[0], bn, cols, state); err != nil {
						t.Fatal(err)
					}
				}
				for i := range sh.m {
					want, wj := int32(0), int32(-1)
					for j := range sh.n {
						var dot int32
						for x := range sh.k {
							dot += int32(a[i*sh.k+x]) * int32(b[j*sh.k+x])
						}
						if d := bn[j] - 2*dot; wj < 0 || d < want {
							want, wj = d, int32(j)
						}
					}
					if got, gj := state[i].Best(); got != want || gj != wj {
						t.Fatalf("%s %+v mode %d row %d: (%d, %d), want (%d, %d)", im.name, sh, mode, i, got, gj, want, wj)
					}
				}
			}
		}
	}
}
