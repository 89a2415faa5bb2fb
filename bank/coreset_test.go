package bank

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/qgemm"
)

// clustered returns n vectors of dim around a few centres, as patch
// features are: groups with spread, plus duplicates to exercise ties.
func clustered(seed uint64, n, dim, groups int) []int8 {
	rng := rand.New(rand.NewPCG(seed, 1))
	cent := make([]int8, groups*dim)
	for i := range cent {
		cent[i] = int8(rng.IntN(161) - 80)
	}
	x := make([]int8, n*dim)
	for i := range n {
		g := rng.IntN(groups)
		if i > 0 && rng.IntN(10) == 0 { // exact duplicate of an earlier vector
			copy(x[i*dim:(i+1)*dim], x[rng.IntN(i)*dim:])
			continue
		}
		for d := range dim {
			x[i*dim+d] = int8(max(-127, min(127, int(cent[g*dim+d])+rng.IntN(31)-15)))
		}
	}
	return x
}

func TestSelectMatchesPlainGreedy(t *testing.T) {
	for _, c := range []struct {
		n, dim, groups, threads int
		ratio                   float64
	}{
		{1, 4, 1, 1, 1}, {50, 3, 2, 1, 0.5}, {400, 16, 5, 2, 0.1}, {1000, 8, 12, 3, 0.25}, {777, 33, 40, 2, 1},
	} {
		x := clustered(uint64(c.n), c.n, c.dim, c.groups)
		pool := parallel.New(c.threads)
		got, err := Select(context.Background(), x, c.n, c.dim, CoresetOptions{Ratio: c.ratio, Seed: 7, Pool: pool})
		pool.Close()
		if err != nil {
			t.Fatal(err)
		}
		k := CoresetSize(c.n, c.ratio, 0)
		want := selectPlain(x, c.n, c.dim, k, got[0])
		if !slices.Equal(got, want) {
			t.Errorf("n=%d dim=%d threads=%d: grouped selection differs from plain greedy\n got %v\nwant %v", c.n, c.dim, c.threads, got[:min(20, len(got))], want[:min(20, len(want))])
		}
	}
}

// selectPlain is the O(n·k) reference of the grouped algorithm: greedy
// k-center on exact int8 distances, each new centre the farthest point.
func selectPlain(p []int8, n, dim, k, first int) []int {
	norm := make([]int64, n)
	for i := range n {
		norm[i] = int64(qgemm.Dot(p[i*dim:(i+1)*dim], p[i*dim:(i+1)*dim]))
	}
	mind := make([]int64, n)
	for i := range mind {
		mind[i] = math.MaxInt64
	}
	sel := []int{}
	c := first
	for {
		sel = append(sel, c)
		for i := range n {
			d := norm[i] + norm[c] - 2*int64(qgemm.Dot(p[i*dim:(i+1)*dim], p[c*dim:(c+1)*dim]))
			mind[i] = min(mind[i], d)
		}
		if len(sel) == k {
			return sel
		}
		c = -1
		var r int64
		for i, d := range mind {
			if d > r {
				r, c = d, i
			}
		}
		if c < 0 {
			return sel
		}
	}
}
