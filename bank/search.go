package bank

import (
	"fmt"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/qgemm"
)

// searchBlock is the number of bank vectors scored per GEMM call: the
// block (block×Dim int8) and its m×block int32 results stay in cache.
const searchBlock = 1024

// searchRows is the number of queries per GEMM call: their results
// (searchRows×searchBlock int32, 48 KiB) are scanned while still in the
// first-level cache instead of a whole frame's (784×256, 784 KiB) going
// out to L2/L3 and back, which cost half the time at 96 dimensions.
// A multiple of every kernel's row strip (6, 3, 8, 4).
const searchRows = 48

// Searcher finds exact nearest bank vectors for batches of int8 queries.
//
// Squared distances are computed in integers as |q|² + |b|² − 2·q·b with
// the dot products from qgemm, so every kernel and every architecture gives
// the same distances, and ties go to the lower bank index. A Searcher reuses
// its scratch and allocates nothing per call after the first batch of a
// given size; it is not safe for concurrent use.
type Searcher struct {
	b    *Bank
	pk   *qgemm.Packed // the bank's vectors in the SIMD kernel's layout
	pool *parallel.Pool
	own  bool
	qn   []int32
	ws   []searchWorker
	m    int
	q    []int8
	fn   func(lo, hi, worker int) // searchBlocks, bound once: no allocation per call
	// fused: the GEMM kernel keeps the running minima itself
	// (qgemm.NearestCols), so no dot product goes to memory; cols are the
	// bank indices 0..Count-1 it records.
	fused bool
	cols  []int32
	// ci, when the bank is big enough, is its clusters: Nearest then
	// searches by clusters (prune.go) with the same results; cs is that
	// search's scratch. exhaustive forces brute force (tests, benchmarks).
	ci         *clusterIndex
	cs         clusterScratch
	exhaustive bool
	macs       int64
}

type searchWorker struct {
	c     []int32
	dist  []int32
	idx   []int32
	lanes []qgemm.LaneMins // fused path: per query, 16 lanes of running minima
}

// NewSearcher prepares searching b with the given pool (nil: one thread).
// Banks of clusterMinCount vectors or more are clustered here (a few
// integer k-means passes over the bank, tens of milliseconds at 15,680 ×
// 384 on this machine), and searched by clusters: the same results as
// brute force with a fraction of the work (see cluster.go).
func NewSearcher(b *Bank, pool *parallel.Pool) *Searcher {
	s := newBruteSearcher(b, pool)
	s.ci = newClusterIndex(b, s.pool)
	if h := searcherHook; h != nil {
		h(s)
	}
	return s
}

// searcherHook, set only by tests (export_test.go), sees every Searcher
// NewSearcher makes: the tests that run whole detectors read its MACs
// and compare it with brute force through it.
var searcherHook func(*Searcher)

// MACs is the number of int8 multiply-accumulates the Searcher's Nearest
// calls have done so far: bank vectors (and cluster centres) met, times
// Dim. It counts the work, where times depend on the machine and its load.
func (s *Searcher) MACs() int64 { return s.macs }

// newBruteSearcher is a Searcher that always compares every query with
// every bank vector.
func newBruteSearcher(b *Bank, pool *parallel.Pool) *Searcher {
	s := &Searcher{b: b, pool: pool}
	// Validated banks always pack (Dim and Count are checked on load); if
	// one could not, the portable Gemm below still answers.
	s.pk, _ = qgemm.Pack(b.Meta.Count, b.Meta.Dim, b.Vectors, b.Meta.Dim)
	if pool == nil {
		s.pool, s.own = parallel.New(1), true
	}
	s.ws = make([]searchWorker, s.pool.Threads())
	s.fn = s.searchBlocks
	if s.pk != nil && qgemm.NearestInKernel(b.Meta.Dim) {
		s.fused = true
		s.cols = make([]int32, b.Meta.Count)
		for j := range s.cols {
			s.cols[j] = int32(j)
		}
		s.fn = s.searchBlocksFused
	}
	return s
}

// Close releases the pool if the Searcher created it.
func (s *Searcher) Close() {
	if s.own {
		s.pool.Close()
	}
}

// Nearest sets dist2[i] and idx[i] to the squared int8-unit distance and the
// index of the bank vector nearest to query row i of q (m rows of Dim).
func (s *Searcher) Nearest(q []int8, m int, dist2, idx []int32) error {
	dim := s.b.Meta.Dim
	if m <= 0 || len(q) < m*dim || len(dist2) < m || len(idx) < m {
		return fmt.Errorf("bank: Nearest with %d queries of %d: buffers q=%d dist=%d idx=%d", m, dim, len(q), len(dist2), len(idx))
	}
	if cap(s.qn) < m {
		s.qn = make([]int32, m)
		for w := range s.ws {
			s.ws[w] = searchWorker{dist: make([]int32, m), idx: make([]int32, m)}
			if s.fused {
				s.ws[w].lanes = make([]qgemm.LaneMins, m)
			} else {
				s.ws[w].c = make([]int32, searchRows*searchBlock)
			}
		}
	}
	s.qn = s.qn[:m]
	for i := range m {
		s.qn[i] = qgemm.Dot(q[i*dim:(i+1)*dim], q[i*dim:(i+1)*dim])
	}
	s.m, s.q = m, q
	if s.ci != nil && !s.exhaustive {
		// In runs of at most clusterQueries queries, so that the scratch
		// (distances to every centre, lists of visits) stays bounded for
		// frames cut into many tiles.
		qn := s.qn
		for lo := 0; lo < m; lo += clusterQueries {
			hi := min(m, lo+clusterQueries)
			s.q, s.m, s.qn = q[lo*dim:hi*dim], hi-lo, qn[lo:hi]
			s.nearestClustered(dist2[lo:hi], idx[lo:hi])
		}
		s.qn = qn
	} else {
		s.nearestBrute(dist2, idx)
	}
	s.q = nil
	return nil
}

// nearestBrute is Nearest comparing every query with every bank vector;
// s.q, s.m and s.qn are set.
func (s *Searcher) nearestBrute(dist2, idx []int32) {
	m := s.m
	s.macs += int64(m) * int64(s.b.Meta.Count) * int64(s.b.Meta.Dim)
	blocks := (s.b.Meta.Count + searchBlock - 1) / searchBlock
	for w := range s.ws {
		for i := range m {
			s.ws[w].dist[i], s.ws[w].idx[i] = -1, -1
		}
	}
	s.pool.Run(blocks, 1, s.fn)
	// Workers own contiguous, increasing ranges of the bank: merging them
	// in order with a strict comparison keeps the lowest index on ties.
	for i := range m {
		best, bi := int32(-1), int32(-1)
		for w := range s.ws {
			d := s.ws[w].dist[i]
			if d >= 0 && (best < 0 || d < best) {
				best, bi = d, s.ws[w].idx[i]
			}
		}
		dist2[i], idx[i] = best, bi
	}
}

// searchBlocksFused is searchBlocks with the minima kept by the kernel:
// the worker's blocks are folded into per-query lane states in increasing
// bank order, then each query's best (lowest index on ties) is read out.
func (s *Searcher) searchBlocksFused(lo, hi, worker int) {
	dim, n := s.b.Meta.Dim, s.b.Meta.Count
	w := &s.ws[worker]
	m := s.m
	for i := range m {
		w.lanes[i].Reset()
	}
	for blk := lo; blk < hi; blk++ {
		j0 := blk * searchBlock
		nb := min(searchBlock, n-j0)
		for q0 := 0; q0 < m; q0 += searchRows {
			nq := min(searchRows, m-q0)
			// Sizes were checked by Nearest; this cannot fail.
			_ = s.pk.NearestCols(nq, s.q[q0*dim:(q0+nq)*dim], dim, j0, nb, s.b.Norms, s.cols, w.lanes[q0:q0+nq])
		}
	}
	for i := range m {
		if v, j := w.lanes[i].Best(); j >= 0 {
			w.dist[i], w.idx[i] = s.qn[i]+v, j
		}
	}
}

func (s *Searcher) searchBlocks(lo, hi, worker int) {
	dim, n := s.b.Meta.Dim, s.b.Meta.Count
	w := &s.ws[worker]
	m := s.m
	for blk := lo; blk < hi; blk++ {
		j0 := blk * searchBlock
		nb := min(searchBlock, n-j0)
		bn := s.b.Norms[j0 : j0+nb]
		for q0 := 0; q0 < m; q0 += searchRows {
			nq := min(searchRows, m-q0)
			q := s.q[q0*dim : (q0+nq)*dim]
			// Sizes were checked by Nearest; Gemm cannot fail here.
			if s.pk != nil {
				_ = s.pk.GemmCols(nq, q, dim, j0, nb, w.c, nb)
			} else {
				_ = qgemm.Gemm(nq, nb, dim, q, dim, s.b.Vectors[j0*dim:], dim, w.c, nb)
			}
			for r := range nq {
				// The block's nearest (lowest index on ties); a strictly
				// smaller distance replaces the best of earlier blocks,
				// so ties keep the lower index across blocks too.
				i := q0 + r
				v, j := qgemm.ArgminBiased(w.c[r*nb:r*nb+nb], bn)
				if d := s.qn[i] + v; w.dist[i] < 0 || d < w.dist[i] {
					w.dist[i], w.idx[i] = d, int32(j0+j)
				}
			}
		}
	}
}

// Neighbours returns the k bank vectors nearest to v (Dim int8 values),
// nearest first, ties by lower index, with their squared distances.
func (b *Bank) Neighbours(v []int8, k int) (idx []int32, dist2 []int32) {
	return b.NeighboursInto(v, k, nil, nil)
}

// NeighboursInto is Neighbours appending to idx[:0] and dist2[:0], so that
// callers can reuse them.
func (b *Bank) NeighboursInto(v []int8, k int, idx, dist2 []int32) ([]int32, []int32) {
	dim := b.Meta.Dim
	k = min(k, b.Meta.Count)
	idx, dist2 = idx[:0], dist2[:0]
	vn := qgemm.Dot(v, v)
	for j := 0; j < b.Meta.Count; j++ {
		d := vn + b.Norms[j] - 2*qgemm.Dot(v, b.Vectors[j*dim:(j+1)*dim])
		if len(idx) == k && d >= dist2[k-1] {
			continue
		}
		if len(idx) < k {
			idx = append(idx, 0)
			dist2 = append(dist2, 0)
		}
		// Shift larger entries right (dropping the last when full) and
		// insert after every entry with distance <= d: lower index first.
		p := len(idx) - 1
		for p > 0 && dist2[p-1] > d {
			idx[p], dist2[p] = idx[p-1], dist2[p-1]
			p--
		}
		idx[p], dist2[p] = int32(j), d
	}
	return idx, dist2
}
