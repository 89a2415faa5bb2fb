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
	// Scratch, if long enough, holds the points the selection works on
	// (n×ProjectDim when they are projected, n×dim when SelectRows gathers
	// them), instead of a new buffer; its contents are overwritten. A build
	// lends the part of its int8 patch buffer that a fold's bank does not
	// use.
	Scratch []int8
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
// Memory is O(n·dim): no n×n matrix; the points are grouped in blocks of
// nearby points, reordered in place when they are Select's own (projected
// or gathered, in opts.Scratch if given), else copied once (int8). Blocks update their distances
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
	return selectRows(ctx, x, nil, n, dim, opts)
}

// SelectRows is Select over the vectors of x (rows of dim) listed in rows,
// in that order, as if they had been copied out one after another first:
// the indices it returns count in rows. A build keeps one int8 copy of
// its images' patches and selects the coresets of several subsets of the
// images from it, without a copy of each subset.
func SelectRows(ctx context.Context, x []int8, rows []int32, dim int, opts CoresetOptions) ([]int, error) {
	if len(rows) == 0 || dim <= 0 {
		return nil, fmt.Errorf("bank: coreset of %d vectors of %d", len(rows), dim)
	}
	for _, r := range rows {
		if r < 0 || (int(r)+1)*dim > len(x) {
			return nil, fmt.Errorf("bank: coreset row %d outside %d vectors of %d", r, len(x)/dim, dim)
		}
	}
	return selectRows(ctx, x, rows, len(rows), dim, opts)
}

// selectRows is Select over rows of x (nil: the first n).
func selectRows(ctx context.Context, x []int8, rows []int32, n, dim int, opts CoresetOptions) ([]int, error) {
	if !(opts.Ratio > 0 && opts.Ratio <= 1) {
		return nil, fmt.Errorf("bank: coreset ratio %v outside (0, 1]", opts.Ratio)
	}
	pool := opts.Pool
	if pool == nil {
		pool = parallel.New(1)
		defer pool.Close()
	}
	// buf returns the scratch buffer, or a new one if it is too short.
	buf := func(size int) []int8 {
		if len(opts.Scratch) >= size {
			return opts.Scratch[:size]
		}
		return make([]int8, size)
	}
	var p []int8
	pdim := dim
	own := true // p is ours: the blocking reorders it in place
	switch {
	case opts.ProjectDim > 0 && opts.ProjectDim < dim:
		var err error
		if p, pdim, err = project(x, rows, n, dim, opts.ProjectDim, opts.Seed, pool, opts.Scratch); err != nil {
			return nil, err
		}
	case rows != nil:
		p = buf(n * dim)
		for i, r := range rows {
			copy(p[i*dim:(i+1)*dim], x[int(r)*dim:])
		}
	default:
		p, own = x[:n*dim], false
	}
	k := CoresetSize(n, opts.Ratio, opts.Max)
	rng := rand.New(rand.NewPCG(opts.Seed, 0x6c696e6573696768)) // "linesigh"
	first := rng.IntN(n)
	return selectKC(ctx, p, own, n, pdim, k, first, pool, opts.Progress)
}

// project returns x·Rᵀ for a seeded random R of ±1 entries (pdim×dim),
// requantized to int8 with one scale (max |y| ↦ 127), exactly in integers,
// for the rows of x listed in rows (nil: the first n). The products are
// computed twice, block by block, once for max |y| and once to requantize:
// no n×pdim int32 array (4 bytes a value where the result keeps one), for
// n·pdim·dim more MACs at the kernel's speed. The result goes to out if it
// holds n×pdim values (nil: a new buffer).
func project(x []int8, rows []int32, n, dim, pdim int, seed uint64, pool *parallel.Pool, out []int8) ([]int8, int, error) {
	r := make([]int8, pdim*dim)
	rng := rand.New(rand.NewPCG(seed, 0x70726f6a656374)) // "project"
	for i := range r {
		r[i] = int8(1 - 2*int(rng.Uint32()&1))
	}
	// Packed for the dispatched kernel: the package-level Gemm is the
	// generic reference loop, many times slower (the same integers).
	pr, err := qgemm.Pack(pdim, dim, r, dim)
	if err != nil {
		return nil, 0, fmt.Errorf("bank: coreset projection: %w", err)
	}
	const blockRows = 1024
	blocks := (n + blockRows - 1) / blockRows
	type scratch struct {
		a   []int8  // gathered rows
		y   []int32 // their projections
		big int64
	}
	ws := make([]scratch, pool.Threads())
	// block computes the projections of block b in worker w's scratch.
	block := func(b, w int) []int32 {
		s := &ws[w]
		if s.y == nil {
			s.y = make([]int32, blockRows*pdim)
			if rows != nil {
				s.a = make([]int8, blockRows*dim)
			}
		}
		i0 := b * blockRows
		m := min(blockRows, n-i0)
		a := x[i0*dim:]
		if rows != nil {
			for i, row := range rows[i0 : i0+m] {
				copy(s.a[i*dim:(i+1)*dim], x[int(row)*dim:])
			}
			a = s.a
		}
		_ = pr.Gemm(m, a, dim, s.y, pdim)
		return s.y[:m*pdim]
	}
	pool.Run(blocks, 1, func(lo, hi, w int) {
		for b := lo; b < hi; b++ {
			for _, v := range block(b, w) {
				ws[w].big = max(ws[w].big, int64(v), -int64(v))
			}
		}
	})
	var big int64
	for _, s := range ws {
		big = max(big, s.big)
	}
	if len(out) < n*pdim {
		out = make([]int8, n*pdim)
	}
	out = out[:n*pdim]
	if big == 0 {
		clear(out)
		return out, pdim, nil
	}
	pool.Run(blocks, 1, func(lo, hi, w int) {
		for b := lo; b < hi; b++ {
			o := out[b*blockRows*pdim:]
			for i, v := range block(b, w) {
				// round(v·127/big), halves away from zero, in integers.
				num := int64(v) * 127
				q := (abs64(num)*2 + big) / (2 * big)
				if num < 0 {
					q = -q
				}
				o[i] = int8(q)
			}
		}
	})
	return out, pdim, nil
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
