package bank

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

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
// Memory is O(n·dim): no n×n matrix. Each point remembers its nearest
// centre; points are grouped by it, and a new centre c only visits a group
// whose centre a satisfies |c−a|² < 4·r² (r: the group's largest distance),
// and within it only points with |c−a|² < 4·d² (d: the point's distance to
// a). By the triangle inequality no other point can get closer to c than it
// is to a, so the result equals the plain O(n·k) algorithm's, which the
// tests check.
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
	kc := newKCenter(p, n, pdim, pool)
	rng := rand.New(rand.NewPCG(opts.Seed, 0x6c696e6573696768)) // "linesigh"
	first := rng.IntN(n)
	sel := make([]int, 0, k)
	sel = append(sel, first)
	kc.start(first)
	if opts.Progress != nil {
		opts.Progress(1, k)
	}
	for len(sel) < k {
		if len(sel)%32 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("bank: coreset selection stopped after %d of %d: %w", len(sel), k, err)
			}
		}
		c := kc.farthest()
		if c < 0 {
			break // every candidate coincides with a centre
		}
		kc.add(c)
		sel = append(sel, c)
		if opts.Progress != nil {
			opts.Progress(len(sel), k)
		}
	}
	return sel, nil
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

// kCenter is the state of greedy k-center selection with groups.
type kCenter struct {
	p     []int8
	n     int
	dim   int
	norm  []int32 // |p|²
	sqrtN []float64
	pool  *parallel.Pool

	mind  []int64 // squared distance to the nearest centre
	owner []int32 // group (centre ordinal) of each point

	centre  []int32   // point index of each group's centre
	members [][]int32 // points of each group
	radius  []int64   // largest mind in the group
	far     []int32   // lowest-index point with that mind

	// per-iteration scratch
	c      int
	dcc    []int64
	scan   []int32
	prefix []int
}

func newKCenter(p []int8, n, dim int, pool *parallel.Pool) *kCenter {
	kc := &kCenter{p: p, n: n, dim: dim, pool: pool,
		norm: make([]int32, n), sqrtN: make([]float64, n),
		mind: make([]int64, n), owner: make([]int32, n)}
	pool.Run(n, 4096, func(lo, hi, _ int) {
		for i := lo; i < hi; i++ {
			v := kc.row(i)
			kc.norm[i] = qgemm.Dot(v, v)
			kc.sqrtN[i] = math.Sqrt(float64(kc.norm[i]))
		}
	})
	return kc
}

func (kc *kCenter) row(i int) []int8 { return kc.p[i*kc.dim : (i+1)*kc.dim] }

func (kc *kCenter) dist(i, j int) int64 {
	return int64(kc.norm[i]) + int64(kc.norm[j]) - 2*int64(qgemm.Dot(kc.row(i), kc.row(j)))
}

func (kc *kCenter) start(c int) {
	all := make([]int32, kc.n)
	kc.pool.Run(kc.n, 4096, func(lo, hi, _ int) {
		for i := lo; i < hi; i++ {
			all[i] = int32(i)
			kc.mind[i] = kc.dist(i, c)
		}
	})
	kc.centre = append(kc.centre, int32(c))
	kc.members = append(kc.members, all)
	r, f := kc.spread(all)
	kc.radius = append(kc.radius, r)
	kc.far = append(kc.far, f)
}

// spread returns the largest mind among pts and its lowest-index point.
func (kc *kCenter) spread(pts []int32) (int64, int32) {
	r, f := int64(-1), int32(-1)
	for _, i := range pts {
		if d := kc.mind[i]; d > r || (d == r && i < f) {
			r, f = d, i
		}
	}
	return r, f
}

// farthest returns the point farthest from all centres (lowest index on
// ties), or -1 when every point is at distance 0.
func (kc *kCenter) farthest() int {
	r, f := int64(0), int32(-1)
	for g, gr := range kc.radius {
		if gr > r || (gr == r && gr > 0 && kc.far[g] < f) {
			r, f = gr, kc.far[g]
		}
	}
	return int(f)
}

// add makes point c a centre: it takes over every point closer to it.
func (kc *kCenter) add(c int) {
	g := int32(len(kc.centre))
	kc.c = c
	k := len(kc.centre)
	if cap(kc.dcc) < k {
		kc.dcc = make([]int64, k, 2*k)
	}
	kc.dcc = kc.dcc[:k]
	kc.pool.Run(k, 256, kc.centreDistances)

	kc.scan = kc.scan[:0]
	kc.prefix = append(kc.prefix[:0], 0)
	for j := range k {
		if kc.dcc[j] < 4*kc.radius[j] {
			kc.scan = append(kc.scan, int32(j))
			kc.prefix = append(kc.prefix, kc.prefix[len(kc.prefix)-1]+len(kc.members[j]))
		}
	}
	total := kc.prefix[len(kc.prefix)-1]
	kc.pool.Run(total, 2048, func(lo, hi, _ int) { kc.update(lo, hi, g) })

	// Move the points that changed owner into the new group.
	var moved []int32
	for _, j := range kc.scan {
		keep := kc.members[j][:0]
		for _, i := range kc.members[j] {
			if kc.owner[i] == g {
				moved = append(moved, i)
			} else {
				keep = append(keep, i)
			}
		}
		kc.members[j] = keep
		kc.radius[j], kc.far[j] = kc.spread(keep)
	}
	kc.centre = append(kc.centre, int32(c))
	kc.members = append(kc.members, moved)
	r, f := kc.spread(moved)
	kc.radius = append(kc.radius, r)
	kc.far = append(kc.far, f)
}

// centreDistances fills dcc[j] = |c − centre_j|² for groups that could lose
// points; others get a value that excludes them. A cheap bound first:
// |c−a| >= ||c|−|a||.
func (kc *kCenter) centreDistances(lo, hi, _ int) {
	c := kc.c
	for j := lo; j < hi; j++ {
		r := kc.radius[j]
		if r <= 0 {
			kc.dcc[j] = math.MaxInt64 / 8
			continue
		}
		a := int(kc.centre[j])
		gap := kc.sqrtN[c] - kc.sqrtN[a]
		// The bound is in floating point: keep a margin so that rounding can
		// only make us visit a group we could have skipped, never the reverse.
		if gap*gap > 4*float64(r)*(1+1e-9)+1 {
			kc.dcc[j] = math.MaxInt64 / 8
			continue
		}
		kc.dcc[j] = kc.dist(c, a)
	}
}

// update visits members [lo, hi) of the concatenated scanned groups.
func (kc *kCenter) update(lo, hi int, g int32) {
	s := sort.Search(len(kc.scan), func(s int) bool { return kc.prefix[s+1] > lo })
	c := kc.c
	for pos := lo; pos < hi; s++ {
		j := kc.scan[s]
		dcc := kc.dcc[j]
		mem := kc.members[j]
		from := pos - kc.prefix[s]
		to := min(len(mem), hi-kc.prefix[s])
		for _, i := range mem[from:to] {
			if dcc >= 4*kc.mind[i] {
				continue
			}
			if d := kc.dist(int(i), c); d < kc.mind[i] {
				kc.mind[i] = d
				kc.owner[i] = g
			}
		}
		pos = kc.prefix[s] + to
	}
}
