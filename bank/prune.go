package bank

import (
	"math"
	"slices"

	"github.com/linesight/linesight/internal/qgemm"
)

// clusterQueries is the most queries one clustered pass takes (Nearest
// splits larger calls): 8 frames of 784 patches.
const clusterQueries = 8 * 784

// clusterScratch is the clustered search's per-call state, kept across
// calls so that a frame allocates nothing after the first of its size.
type clusterScratch struct {
	m     int
	dc    []int32 // m×nc: squared distance from query i to centre g
	first []int32 // per query: the cluster round one visits
	best  []int32 // per query: best squared distance so far
	bidx  []int32 // and its bank index
	// The current round's visits grouped by cluster: the queries visiting
	// cluster g are list[off[g]:off[g+1]].
	off  []int32
	list []int32
	ws   []clusterWorker
	// Loop bodies bound once (no allocation per call).
	centreFn, visitFn, candFn func(lo, hi, worker int)
	round2                    bool
	visited                   []int64 // per worker: bank vectors met this call
}

type clusterWorker struct {
	q     []int8 // gathered query rows
	c     []int32
	lanes []qgemm.LaneMins
	pair  []int32 // round two's (query, cluster) pairs before grouping
}

func (s *Searcher) clusterScratchFor(m int) *clusterScratch {
	cs, ci, dim := &s.cs, s.ci, s.b.Meta.Dim
	if cs.m >= m && cs.dc != nil {
		return cs
	}
	cs.m = m
	cs.dc = make([]int32, m*ci.nc)
	cs.first = make([]int32, m)
	cs.best = make([]int32, m)
	cs.bidx = make([]int32, m)
	cs.off = make([]int32, ci.nc+1)
	// Visit lists start at a few clusters per query and grow (once, on
	// the first frame that needs more).
	cs.list = make([]int32, 0, 8*m)
	cs.ws = make([]clusterWorker, len(s.ws))
	cs.visited = make([]int64, len(s.ws))
	for w := range cs.ws {
		cs.ws[w] = clusterWorker{q: make([]int8, searchRows*dim), c: make([]int32, searchRows*max(ci.nc, searchBlock)),
			lanes: make([]qgemm.LaneMins, searchRows), pair: make([]int32, 0, 8*m)}
	}
	cs.centreFn = s.centreDistances
	cs.visitFn = s.visitClusters
	cs.candFn = s.candidates
	return cs
}

// nearestClustered is Nearest by clusters (cluster.go explains why it
// equals brute force). s.q, s.m and s.qn are set.
func (s *Searcher) nearestClustered(dist2, idx []int32) {
	ci, m, dim := s.ci, s.m, s.b.Meta.Dim
	cs := s.clusterScratchFor(m)
	clear(cs.visited)
	// Distances to every centre, and each query's nearest non-empty cluster.
	s.pool.Run((m+searchRows-1)/searchRows, 1, cs.centreFn)
	s.macs += int64(m) * int64(ci.nc) * int64(dim)

	// Round one: every query visits its nearest cluster.
	clear(cs.off)
	for i := range m {
		cs.off[cs.first[i]+1]++
		cs.best[i], cs.bidx[i] = -1, -1
	}
	for g := range ci.nc {
		cs.off[g+1] += cs.off[g]
	}
	cs.list = cs.list[:m]
	for i := range m {
		g := cs.first[i]
		cs.list[cs.off[g]] = int32(i)
		cs.off[g]++
	}
	for g := ci.nc; g > 0; g-- {
		cs.off[g] = cs.off[g-1]
	}
	cs.off[0] = 0
	cs.round2 = false
	s.pool.RunDynamic(ci.nc, 1, cs.visitFn)

	// Round two: every other cluster the bound does not rule out against
	// round one's best, listed per worker, then grouped by cluster.
	// Run gives worker w a range after worker w−1's, so concatenating the
	// workers' lists in order keeps every cluster's queries increasing,
	// which visitClusters relies on. Workers Run leaves idle list none.
	for w := range cs.ws {
		cs.ws[w].pair = cs.ws[w].pair[:0]
	}
	s.pool.Run((m+searchRows-1)/searchRows, 1, cs.candFn)
	clear(cs.off)
	total := 0
	for w := range cs.ws {
		for p := 0; p < len(cs.ws[w].pair); p += 2 {
			cs.off[cs.ws[w].pair[p+1]+1]++
		}
		total += len(cs.ws[w].pair) / 2
	}
	for _, v := range cs.visited {
		s.macs += v * int64(dim)
	}
	clear(cs.visited)
	if 2*total > m*(ci.nc-1) {
		// The bound rules out less than half the clusters (features with
		// no structure the bank knows, such as i.i.d. noise): brute force
		// runs its longer blocks faster than visits to most clusters.
		s.nearestBrute(dist2, idx)
		return
	}
	if total > 0 {
		for g := range ci.nc {
			cs.off[g+1] += cs.off[g]
		}
		cs.list = slices.Grow(cs.list[:0], total)[:total]
		for w := range cs.ws {
			pair := cs.ws[w].pair
			for p := 0; p < len(pair); p += 2 {
				g := pair[p+1]
				cs.list[cs.off[g]] = pair[p]
				cs.off[g]++
			}
		}
		for g := ci.nc; g > 0; g-- {
			cs.off[g] = cs.off[g-1]
		}
		cs.off[0] = 0
		for w := range s.ws {
			for i := range m {
				s.ws[w].dist[i], s.ws[w].idx[i] = -1, -1
			}
		}
		cs.round2 = true
		s.pool.RunDynamic(ci.nc, 1, cs.visitFn)
		// Merge by (distance, index): the lowest index on ties, whichever
		// cluster or worker found it.
		for w := range s.ws {
			for i := range m {
				if d, j := s.ws[w].dist[i], s.ws[w].idx[i]; j >= 0 && (d < cs.best[i] || (d == cs.best[i] && j < cs.bidx[i])) {
					cs.best[i], cs.bidx[i] = d, j
				}
			}
		}
	}
	copy(dist2[:m], cs.best[:m])
	copy(idx[:m], cs.bidx[:m])
	for _, v := range cs.visited {
		s.macs += v * int64(dim)
	}
}

// centreDistances fills dc and first for query row blocks [lo, hi).
func (s *Searcher) centreDistances(lo, hi, worker int) {
	ci, cs, dim := s.ci, &s.cs, s.b.Meta.Dim
	nc := ci.nc
	for blk := lo; blk < hi; blk++ {
		q0 := blk * searchRows
		nq := min(searchRows, s.m-q0)
		dc := cs.dc[q0*nc : (q0+nq)*nc]
		// Sizes are consistent by construction: these cannot fail.
		_ = ci.cpk.Gemm(nq, s.q[q0*dim:(q0+nq)*dim], dim, dc, nc)
		for r := range nq {
			i := q0 + r
			row := dc[r*nc : (r+1)*nc]
			f := int32(0)
			cn := ci.cent.Norms[:len(row)]
			fd := int32(math.MaxInt32)
			for g, dot := range row {
				d := s.qn[i] + cn[g] - 2*dot
				row[g] = d
				if d < fd {
					f, fd = int32(g), d
				}
			}
			cs.first[i] = f
		}
	}
}

// candidates lists, for query row blocks [lo, hi), the clusters round two
// visits: all but round one's that skip cannot rule out.
func (s *Searcher) candidates(lo, hi, worker int) {
	ci, cs := s.ci, &s.cs
	nc := ci.nc
	pair := cs.ws[worker].pair[:0]
	for i := lo * searchRows; i < min(hi*searchRows, s.m); i++ {
		best := int64(cs.best[i])
		f := cs.first[i]
		for g, d := range cs.dc[i*nc : (i+1)*nc] {
			if int32(g) != f && !skip(int64(d), best, ci.rad2[g]) {
				pair = append(pair, int32(i), int32(g))
			}
		}
	}
	cs.ws[worker].pair = pair
}

// visitClusters multiplies clusters [lo, hi) by the queries that visit
// them this round and keeps each query's nearest member: in cs.best
// directly in round one (a query visits one cluster, so one worker writes
// it), in the worker's own results in round two.
func (s *Searcher) visitClusters(lo, hi, worker int) {
	ci, cs, dim := s.ci, &s.cs, s.b.Meta.Dim
	w := &cs.ws[worker]
	dist, idx := cs.best, cs.bidx
	if cs.round2 {
		dist, idx = s.ws[worker].dist, s.ws[worker].idx
	}
	for g := lo; g < hi; g++ {
		qs := cs.list[cs.off[g]:cs.off[g+1]]
		j0, j1 := ci.start[g], ci.start[g+1]
		size := j1 - j0
		if len(qs) == 0 || size == 0 {
			continue
		}
		cs.visited[worker] += int64(len(qs)) * int64(size)
		bn, cols, pk := ci.bn[j0:j1], ci.perm[j0:j1], ci.pk[g]
		for q0 := 0; q0 < len(qs); q0 += searchRows {
			nq := min(searchRows, len(qs)-q0)
			// Queries are listed in increasing order: a run of consecutive
			// ones is read in place rather than gathered.
			a := w.q
			if first, last := int(qs[q0]), int(qs[q0+nq-1]); last-first == nq-1 {
				a = s.q[first*dim : (last+1)*dim]
			} else {
				for r, i := range qs[q0 : q0+nq] {
					copy(w.q[r*dim:(r+1)*dim], s.q[int(i)*dim:(int(i)+1)*dim])
				}
			}
			if s.fused {
				for r := range nq {
					w.lanes[r].Reset()
				}
				_ = pk.NearestCols(nq, a, dim, 0, size, bn, cols, w.lanes[:nq])
				for r, i := range qs[q0 : q0+nq] {
					v, j := bestLane(&w.lanes[r])
					keep(dist, idx, int(i), s.qn[i]+v, j)
				}
				continue
			}
			// Column blocks of the cluster, in increasing order: a strictly
			// smaller distance replaces, so the lowest index wins ties.
			for c0 := 0; c0 < size; c0 += searchBlock {
				nb := min(searchBlock, size-c0)
				_ = pk.GemmCols(nq, a, dim, c0, nb, w.c, nb)
				for r, i := range qs[q0 : q0+nq] {
					v, j := qgemm.ArgminBiased(w.c[r*nb:(r+1)*nb], bn[c0:c0+nb])
					keep(dist, idx, int(i), s.qn[i]+v, cols[c0+j])
				}
			}
		}
	}
}

// keep records (d, j) for query i if it is nearer, or as near with a
// lower bank index.
func keep(dist, idx []int32, i int, d, j int32) {
	if idx[i] < 0 || d < dist[i] || (d == dist[i] && j < idx[i]) {
		dist[i], idx[i] = d, j
	}
}

// bestLane is qgemm.LaneMins.Best for states that saw at least one column
// (every visit does): the smallest value, then the lowest index holding
// it, in two branch-light passes.
func bestLane(s *qgemm.LaneMins) (int32, int32) {
	v := s[0]
	for _, x := range s[1:16] {
		v = min(v, x)
	}
	j := int32(math.MaxInt32)
	for l := range 16 {
		if s[l] == v && s[16+l] >= 0 {
			j = min(j, s[16+l])
		}
	}
	return v, j
}
