package bank

// The grouped greedy k-center selection that Select used until issue 22:
// kept here, test-only, as the reference the benchmarks time the lazy
// blocked selection (kcenter.go) against in the same run, and that the
// tests check gives the same selection.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync/atomic"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/qgemm"
)

// groupedDists counts the grouped selection's distance evaluations (each
// Dim MACs), for the benchmarks' MAC counts.
var groupedDists atomic.Int64

// selectGrouped is Select as it was (after the projection): seeded first
// centre, then the triangle-inequality pruned grouped greedy loop.
func selectGrouped(ctx context.Context, p []int8, n, pdim, k int, seed uint64, pool *parallel.Pool) ([]int, error) {
	rng := rand.New(rand.NewPCG(seed, 0x6c696e6573696768)) // "linesigh"
	return selectGroupedFrom(ctx, p, n, pdim, k, rng.IntN(n), pool)
}

// selectGroupedFrom is selectGrouped from a given first centre.
func selectGroupedFrom(ctx context.Context, p []int8, n, pdim, k, first int, pool *parallel.Pool) ([]int, error) {
	kc := newKCenter(p, n, pdim, pool)
	sel := make([]int, 0, k)
	sel = append(sel, first)
	kc.start(first)
	for len(sel) < k {
		if len(sel)%32 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("bank: coreset selection stopped after %d of %d: %w", len(sel), k, err)
			}
		}
		c := kc.farthest()
		if c < 0 {
			break
		}
		kc.add(c)
		sel = append(sel, c)
	}
	return sel, nil
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
	groupedDists.Add(int64(kc.n))
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
	var count int64
	defer func() { groupedDists.Add(count) }()
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
		count++
	}
}

// update visits members [lo, hi) of the concatenated scanned groups.
func (kc *kCenter) update(lo, hi int, g int32) {
	s := sort.Search(len(kc.scan), func(s int) bool { return kc.prefix[s+1] > lo })
	c := kc.c
	var count int64
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
			count++
			if d := kc.dist(int(i), c); d < kc.mind[i] {
				kc.mind[i] = d
				kc.owner[i] = g
			}
		}
		pos = kc.prefix[s] + to
	}
	groupedDists.Add(count)
}
