package bank

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/qgemm"
)

// CoresetOptions configures Select.
type CoresetOptions struct {
	// Ratio is the share of the candidates kept (0 < Ratio <= 1).
	Ratio float64
	// Max caps the number kept (0 = no cap).
	Max int
	// Seed picks the first centre and the projection.
	Seed uint64
	// ProjectDim is the dimension of the random projection the distances
	// are computed on; vectors no longer than it are used as they are.
	ProjectDim int
	// Pool runs the distance updates (nil: one thread).
	Pool *parallel.Pool
	// Progress, if set, is called after each selected centre.
	Progress func(done, total int)
}

// CoresetSize is the number of centres Select keeps out of n candidates.
func CoresetSize(n int, ratio float64, maxCount int) int {
	k := int(math.Ceil(ratio * float64(n)))
	if maxCount > 0 {
		k = min(k, maxCount)
	}
	return max(1, min(k, n))
}

// Select picks a coreset of the n int8 vectors in x (n×dim) by greedy
// k-center selection (minimax facility location, Sener & Savarese 2018, as
// PatchCore uses it): start from a seeded random vector, then repeatedly
// add the vector farthest from every centre chosen so far. It returns the
// chosen indices in the order they were chosen.
//
// Distances are computed on a seeded ±1 random projection to
// opts.ProjectDim dimensions, requantized to int8, so the selection is exact
// integer arithmetic: the same on every kernel and architecture. Ties go to
// the lower index.
//
// Memory is O(n·dim): no n×n matrix; the points are copied once (int8),
// grouped in blocks of nearby points. Blocks update their distances
// lazily, only when they could hold the farthest point, against all the
// centres chosen since, as one fused matrix product and minimum, and skip
// centres that by the triangle inequality cannot come nearer to any of
// their points (kcenter.go). The work is at most the plain O(n·k) loop's
// distances, done at GEMM speed, and much less on structured features; the
// selection equals the plain loop's, ties included, which the tests check.
func Select(ctx context.Context, x []int8, n, dim int, opts CoresetOptions) ([]int, error) {
	if n <= 0 || dim <= 0 || len(x) < n*dim {
		return nil, fmt.Errorf("bank: coreset of %d vectors of %d from %d values", n, dim, len(x))
	}
	if !(opts.Ratio > 0 && opts.Ratio <= 1) {
		return nil, fmt.Errorf("bank: coreset ratio %v outside (0, 1]", opts.Ratio)
	}
	pool := opts.Pool
	if pool == nil {
		pool = parallel.New(1)
		defer pool.Close()
	}
	p, pdim := x, dim
	if opts.ProjectDim > 0 && opts.ProjectDim < dim {
		p, pdim = project(x, n, dim, opts.ProjectDim, opts.Seed, pool)
	}
	k := CoresetSize(n, opts.Ratio, opts.Max)
	rng := rand.New(rand.NewPCG(opts.Seed, 0x6c696e6573696768)) // "linesigh"
	first := rng.IntN(n)
	return selectLazy(ctx, p, n, pdim, k, first, pool, opts.Progress)
}

// project returns x·Rᵀ for a seeded random R of ±1 entries (pdim×dim),
// requantized to int8 with one scale (max |y| ↦ 127), exactly in integers.
func project(x []int8, n, dim, pdim int, seed uint64, pool *parallel.Pool) ([]int8, int) {
	r := make([]int8, pdim*dim)
	rng := rand.New(rand.NewPCG(seed, 0x70726f6a656374)) // "project"
	for i := range r {
		r[i] = int8(1 - 2*int(rng.Uint32()&1))
	}
	y := make([]int32, n*pdim)
	const rows = 1024
	pool.Run((n+rows-1)/rows, 1, func(lo, hi, _ int) {
		for b := lo; b < hi; b++ {
			i0 := b * rows
			m := min(rows, n-i0)
			_ = qgemm.Gemm(m, pdim, dim, x[i0*dim:], dim, r, dim, y[i0*pdim:], pdim)
		}
	})
	var big int64
	for _, v := range y {
		big = max(big, int64(v), -int64(v))
	}
	out := make([]int8, n*pdim)
	if big == 0 {
		return out, pdim
	}
	for i, v := range y {
		// round(v·127/big), halves away from zero, in integers.
		num := int64(v) * 127
		q := (abs64(num)*2 + big) / (2 * big)
		if num < 0 {
			q = -q
		}
		out[i] = int8(q)
	}
	return out, pdim
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
