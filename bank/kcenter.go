package bank

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/qgemm"
)

// Greedy k-center selection with lazy, blocked distance updates.
//
// The plain algorithm keeps, for every point, mind: its squared distance
// to the nearest centre so far, and takes as the next centre the point
// with the largest mind (the lowest index on ties); each new centre then
// updates every point, n·k distances in all. Pruning those updates by the
// triangle inequality alone (the grouped algorithm Select used before)
// works on well-clustered features and fails on textured or noisy ones,
// where nearly every distance must still be computed, one Dot at a time.
//
// Here the points are cut into blocks of nearby points (each block a ball
// around a pivot point, of squared radius rho). A block does not update
// its points when a centre is added; it remembers how many centres it has
// seen (upTo) and its key: the largest mind among its points and the
// lowest index having it, exact as of its last update. Minds only
// decrease, so a block's key can only fall (a smaller largest mind, or the
// same one held by fewer points, so a higher lowest index): a stale key
// is an upper bound of the true one in the order (mind descending, index
// ascending). The blocks sit in a max-heap by key. To find the next
// centre, stale blocks at the top are brought up to date (all the
// centres they have not seen, as one fused GEMM-and-minimum of the
// block's points against those centres, qgemm.NearestCols) until the top
// block is up to date: its key is then the true global maximum, since
// every other block's true key is at most its stale key, which is at most
// the top's. The selection is therefore the plain algorithm's exactly,
// ties included; what changes is that the distances are computed in
// batches at GEMM speed, only for blocks that could hold the farthest
// point, and not for centres that cannot reach a block: a centre c at
// squared distance D from the block's pivot, with M the block's largest
// mind, lowers no mind in the block when √D − √rho >= √M, since every
// point p of the block then has |p − c| >= |c − a| − |p − a| >= √M >=
// √mind(p); that test is decided in integers (reach). So the work is at
// most the plain algorithm's n·k distances, done as matrix products, and
// far less where the features have structure.

// kcBlock is the largest block; pivots are chosen for blocks of about
// kcBlock/2 points, and a pivot's points beyond kcBlock go to further
// blocks around the same pivot. Smaller balls prune more (128: 0.93 of the
// plain loop's MACs on textures, 1024: 1.14) but give updates too small
// to share between threads: at 300,000 x 96 on 2 threads, 128 took 5.2 s
// (texture) and 5.6 s (noise) on one core's worth of CPU, 1024 2.5 s and
// 3.3 s on both.
const kcBlock = 1024

type kcBlockState struct {
	lo, hi int   // its points: rows lo..hi-1 of the permuted copy
	pivot  int32 // point index of its pivot
	rho    int64 // largest squared distance from the pivot to a point
	upTo   int   // centres seen
	max    int64 // key: largest mind (exact as of upTo)
	arg    int32 // and the lowest point index with it
	pos    int   // index in the heap
}

type kcState struct {
	dim   int
	p     []int8  // the points, block by block (n×dim)
	perm  []int32 // point index of each row of p
	inv   []int32 // row of each point index
	norm  []int32 // |p|², by row
	mind  []int64 // squared distance to the nearest centre, by row
	blk   []kcBlockState
	h     kcHeap
	cent  []int8  // centres chosen, in order (k×dim)
	cnorm []int32 // their norms
	cidx  []int32 // their point indices
	// The centres packed for the kernel (packCentres).
	supers          []*qgemm.Packed
	open, tail      *qgemm.Packed
	openN, openBase int
	packedK         int // centres packed
	cols            []int32
	pool            *parallel.Pool
	ws              []kcWorker
	// The current batch of refreshes: blocks, the chunks each must see,
	// and the work items (a block's rows in runs of kcRows).
	batch   []*kcBlockState
	reachCh [][]int32
	items   [][2]int32 // batch entry, first row
	itemFn  func(lo, hi, worker int)
	fused   bool
	macs    int64 // MACs outside the workers (pivot distances, blocking)
}

// kcChunk is the unit of centres a block sees or skips: a kernel column
// block. kcSuper is the size of the segments they are packed in.
const (
	kcChunk = qgemm.BlockCols
	kcSuper = 16 * kcChunk
)

// kcRows is the number of a block's rows one work item updates.
const kcRows = 4 * searchRows

type kcWorker struct {
	macs  int64 // multiply-accumulates done (point rows × centre columns × Dim)
	lanes []qgemm.LaneMins
	c     []int32 // GEMM output where the kernel does not fuse the minimum
}

// selectLazy is Select's greedy loop over the (projected) points p.
func selectLazy(ctx context.Context, p []int8, n, dim, k, first int, pool *parallel.Pool, progress func(done, total int)) ([]int, error) {
	sel, _, err := selectLazyWork(ctx, p, n, dim, k, first, pool, progress)
	return sel, err
}

// selectLazyWork is selectLazy, also returning the multiply-accumulates
// it did (for the benchmarks).
func selectLazyWork(ctx context.Context, p []int8, n, dim, k, first int, pool *parallel.Pool, progress func(done, total int)) (sel []int, macs int64, err error) {
	return selectKCWork(ctx, p, false, n, dim, k, first, pool, progress)
}

// selectKC is selectLazy over points p that it may reorder in place
// (own), instead of a reordered copy: Select's projected or gathered
// points, which nothing else reads.
func selectKC(ctx context.Context, p []int8, own bool, n, dim, k, first int, pool *parallel.Pool, progress func(done, total int)) ([]int, error) {
	sel, _, err := selectKCWork(ctx, p, own, n, dim, k, first, pool, progress)
	return sel, err
}

func selectKCWork(ctx context.Context, p []int8, own bool, n, dim, k, first int, pool *parallel.Pool, progress func(done, total int)) (sel []int, macs int64, err error) {
	if dim > MaxDim {
		return nil, 0, fmt.Errorf("bank: coreset of %d-d vectors: at most %d (project them first)", dim, MaxDim)
	}
	kc := newKCState(p, own, n, dim, pool)
	defer func() {
		macs = kc.macs
		for _, w := range kc.ws {
			macs += w.macs
		}
	}()
	sel = make([]int, 0, k)
	c := first
	for {
		kc.addCentre(c)
		sel = append(sel, c)
		if progress != nil {
			progress(len(sel), k)
		}
		if len(sel) == k {
			return sel, 0, nil
		}
		if len(sel)%32 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, 0, fmt.Errorf("bank: coreset selection stopped after %d of %d: %w", len(sel), k, err)
			}
		}
		if c = kc.farthest(); c < 0 {
			return sel, 0, nil // every point coincides with a centre
		}
	}
}

// newKCState cuts the points into blocks around seeded pivots: every point
// goes to its nearest pivot (exactly, by the brute-force search), and each
// pivot's points, in increasing index, fill one or more blocks. The points
// are reordered block by block: in x itself when it is the caller's to
// give (own), else in a copy.
func newKCState(x []int8, own bool, n, dim int, pool *parallel.Pool) *kcState {
	np := max(1, min(n, 2*n/kcBlock))
	rng := rand.New(rand.NewPCG(0x6b63656e, 0x74657273)) // "kcenters"
	pv := make([]int8, np*dim)
	pidx := rng.Perm(n)[:np]
	for g, i := range pidx {
		copy(pv[g*dim:(g+1)*dim], x[i*dim:(i+1)*dim])
	}
	pb := &Bank{Meta: Meta{Dim: dim, Count: np}, Vectors: pv, Norms: norms(pv, dim)}
	s := newBruteSearcher(pb, pool)
	assign, d2 := make([]int32, n), make([]int32, n)
	for lo := 0; lo < n; lo += 4096 {
		m := min(4096, n-lo)
		_ = s.Nearest(x[lo*dim:(lo+m)*dim], m, d2[lo:lo+m], assign[lo:lo+m])
	}
	blockingMACs := s.MACs()
	count := make([]int, np+1)
	for _, g := range assign {
		count[g+1]++
	}
	for g := range np {
		count[g+1] += count[g]
	}
	kc := &kcState{dim: dim, perm: make([]int32, n), inv: make([]int32, n),
		mind: make([]int64, n), pool: pool, ws: make([]kcWorker, pool.Threads()),
		fused: qgemm.NearestInKernel(dim), cols: make([]int32, kcSuper), macs: blockingMACs}
	fill := append([]int(nil), count[:np]...)
	for i, g := range assign {
		kc.perm[fill[g]] = int32(i)
		fill[g]++
	}
	for r, i := range kc.perm {
		kc.inv[i] = int32(r)
	}
	if own {
		kc.p = x[:n*dim]
		permuteRows(kc.p, kc.perm, dim)
	} else {
		kc.p = make([]int8, n*dim)
		for r, i := range kc.perm {
			copy(kc.p[r*dim:(r+1)*dim], x[int(i)*dim:(int(i)+1)*dim])
		}
	}
	kc.norm = norms(kc.p, dim)
	for r := range kc.mind {
		kc.mind[r] = math.MaxInt64
	}
	for g := range np {
		for lo := count[g]; lo < count[g+1]; lo += kcBlock {
			hi := min(lo+kcBlock, count[g+1])
			b := kcBlockState{lo: lo, hi: hi, pivot: int32(pidx[g]), max: math.MaxInt64, arg: kc.perm[lo]}
			for r := lo; r < hi; r++ {
				b.rho = max(b.rho, int64(d2[kc.perm[r]]))
				b.arg = min(b.arg, kc.perm[r])
			}
			kc.blk = append(kc.blk, b)
		}
	}
	kc.h = make(kcHeap, len(kc.blk))
	for i := range kc.blk {
		kc.h[i] = &kc.blk[i]
		kc.blk[i].pos = i
	}
	heap.Init(&kc.h)
	for w := range kc.ws {
		kc.ws[w] = kcWorker{lanes: make([]qgemm.LaneMins, searchRows), c: make([]int32, searchRows*kcChunk)}
	}
	kc.itemFn = kc.runItems
	return kc
}

// permuteRows reorders the rows of x (of dim values) in place so that row
// r becomes the old row perm[r], following each cycle of perm with one
// row of scratch: the blocking's reordered copy of the points, without
// the copy.
func permuteRows(x []int8, perm []int32, dim int) {
	done := make([]bool, len(perm))
	tmp := make([]int8, dim)
	for r0 := range perm {
		if done[r0] || int(perm[r0]) == r0 {
			continue
		}
		copy(tmp, x[r0*dim:(r0+1)*dim])
		r := r0
		for {
			done[r] = true
			src := int(perm[r])
			if src == r0 {
				copy(x[r*dim:(r+1)*dim], tmp)
				break
			}
			copy(x[r*dim:(r+1)*dim], x[src*dim:(src+1)*dim])
			r = src
		}
	}
}

func (kc *kcState) addCentre(i int) {
	v := kc.row(i)
	kc.cent = append(kc.cent, v...)
	kc.cnorm = append(kc.cnorm, qgemm.Dot(v, v))
	kc.cidx = append(kc.cidx, int32(i))
}

// row is point i (by point index).
func (kc *kcState) row(i int) []int8 {
	r := int(kc.inv[i])
	return kc.p[r*kc.dim : (r+1)*kc.dim]
}

// packCentres brings the packed centres up to those chosen. They are
// packed in three kinds of segment, so that a block's update multiplies
// long runs of centres per kernel call (each call sums its rows once) while
// repacking little per new centre: full segments of kcSuper centres, never
// repacked; the open segment after them, whole chunks only, repacked when a
// chunk fills; and the last partial chunk, repacked as it grows.
func (kc *kcState) packCentres() {
	k, dim := len(kc.cidx), kc.dim
	if kc.packedK == k {
		return
	}
	kc.packedK = k
	// Valid sizes: Pack cannot fail.
	pack := func(c0, c1 int) *qgemm.Packed {
		pk, _ := qgemm.Pack(c1-c0, dim, kc.cent[c0*dim:c1*dim], dim)
		return pk
	}
	for len(kc.supers) < k/kcSuper {
		c0 := len(kc.supers) * kcSuper
		kc.supers = append(kc.supers, pack(c0, c0+kcSuper))
	}
	base := len(kc.supers) * kcSuper
	m := (k - base) / kcChunk * kcChunk
	if m == 0 {
		kc.open, kc.openN = nil, 0
	} else if kc.openN != m || kc.openBase != base {
		kc.open, kc.openN, kc.openBase = pack(base, base+m), m, base
	}
	kc.tail = nil
	if base+m < k {
		kc.tail = pack(base+m, k)
	}
}

// segment returns the packed segment holding chunk ch, the centre its
// column 0 is, and the chunk's first column in it.
func (kc *kcState) segment(ch int) (pk *qgemm.Packed, first, col int) {
	c := ch * kcChunk
	base := len(kc.supers) * kcSuper
	switch {
	case c < base:
		return kc.supers[c/kcSuper], c / kcSuper * kcSuper, c % kcSuper
	case c < base+kc.openN:
		return kc.open, base, c - base
	default:
		return kc.tail, c, 0
	}
}

// farthest brings stale blocks at the top of the heap up to date, up to two
// per thread at a time, until the top block is current, and returns its
// farthest point, or -1 when every point is at distance 0.
func (kc *kcState) farthest() int {
	k, dim := len(kc.cidx), kc.dim
	kc.packCentres()
	for {
		kc.batch = kc.batch[:0]
		for len(kc.h) > 0 && len(kc.batch) < 2*len(kc.ws) && kc.h[0].upTo < k {
			kc.batch = append(kc.batch, heap.Pop(&kc.h).(*kcBlockState))
		}
		if len(kc.batch) == 0 {
			top := kc.h[0]
			if top.max <= 0 {
				return -1
			}
			return int(top.arg)
		}
		// Which chunks each block must see: those holding a centre it has
		// not seen that can reach it. Chunks are multiplied whole; the
		// centres of a chunk a block has already seen cannot lower a mind
		// again, so the result is the same.
		for len(kc.reachCh) < len(kc.batch) {
			kc.reachCh = append(kc.reachCh, nil)
		}
		kc.items = kc.items[:0]
		work := int64(0)
		for e, b := range kc.batch {
			chs := kc.reachCh[e][:0]
			piv := kc.row(int(b.pivot))
			pn := int64(qgemm.Dot(piv, piv))
			kc.macs += int64(k-b.upTo+1) * int64(dim)
			for c := b.upTo; c < k; c++ {
				cv := kc.cent[c*dim : (c+1)*dim]
				d := pn + int64(kc.cnorm[c]) - 2*int64(qgemm.Dot(cv, piv))
				if reach(d, b.max, b.rho) {
					chs = append(chs, int32(c/kcChunk))
					c = (c/kcChunk+1)*kcChunk - 1 // on to the next chunk
				}
			}
			kc.reachCh[e] = chs
			b.upTo = k
			if len(chs) == 0 {
				continue // no mind can change: the key stays exact
			}
			for r := b.lo; r < b.hi; r += kcRows {
				kc.items = append(kc.items, [2]int32{int32(e), int32(r)})
			}
			work += int64(b.hi-b.lo) * int64(len(chs)+1) * kcChunk * int64(dim)
		}
		if work < 1<<21 {
			kc.runItems(0, len(kc.items), 0) // too little to hand out
		} else {
			kc.pool.RunDynamic(len(kc.items), 1, kc.itemFn)
		}
		for e, b := range kc.batch {
			if len(kc.reachCh[e]) > 0 {
				b.max, b.arg = -1, -1
				for r := b.lo; r < b.hi; r++ {
					if d, i := kc.mind[r], kc.perm[r]; d > b.max || (d == b.max && i < b.arg) {
						b.max, b.arg = d, i
					}
				}
			}
			heap.Push(&kc.h, b)
		}
	}
}

// runItems updates the minds of work items [lo, hi): kcRows rows of a
// block against the chunks it must see.
func (kc *kcState) runItems(lo, hi, worker int) {
	dim := kc.dim
	w := &kc.ws[worker]
	for _, it := range kc.items[lo:hi] {
		b, chs := kc.batch[it[0]], kc.reachCh[it[0]]
		end := min(int(it[1])+kcRows, b.hi)
		for r0 := int(it[1]); r0 < end; r0 += searchRows {
			nr := min(searchRows, end-r0)
			a := kc.p[r0*dim : (r0+nr)*dim]
			for r := range nr {
				w.lanes[r].Reset()
			}
			// Runs of consecutive chunks in one segment: one call each.
			for x := 0; x < len(chs); {
				pk, first, col := kc.segment(int(chs[x]))
				y := x + 1
				for y < len(chs) && chs[y] == chs[y-1]+1 && int(chs[y])*kcChunk-first < pk.N {
					y++
				}
				ncol := min(pk.N, (int(chs[y-1])+1)*kcChunk-first) - col
				x = y
				w.macs += int64(nr) * int64(ncol) * int64(dim)
				bn := kc.cnorm[first : first+pk.N]
				if kc.fused {
					_ = pk.NearestCols(nr, a, dim, col, ncol, bn, kc.cols, w.lanes[:nr])
					continue
				}
				for c0 := col; c0 < col+ncol; c0 += kcChunk {
					nc := min(kcChunk, col+ncol-c0)
					_ = pk.GemmCols(nr, a, dim, c0, nc, w.c, nc)
					for r := range nr {
						l := &w.lanes[r]
						for j, dot := range w.c[r*nc : (r+1)*nc] {
							l[0] = min(l[0], bn[c0+j]-2*dot)
						}
					}
				}
			}
			for r := range nr {
				v := w.lanes[r][0]
				for _, x := range w.lanes[r][1:16] {
					v = min(v, x)
				}
				if d := int64(kc.norm[r0+r]) + int64(v); d < kc.mind[r0+r] {
					kc.mind[r0+r] = d
				}
			}
		}
	}
}

// reach reports whether a centre at squared distance d from a block's
// pivot can lower a mind in the block, whose largest mind is at most m and
// squared radius rho: false when √d − √rho >= √m (see the top of the
// file), that is t = d − m − rho >= 0 and t² >= 4·m·rho, in 128 bits as in
// skip. A block not yet updated has m = MaxInt64: every centre reaches it.
func reach(d, m, rho int64) bool {
	if m == math.MaxInt64 {
		return true
	}
	t := d - m - rho
	if t < 0 {
		return true
	}
	h1, l1 := bits.Mul64(uint64(t), uint64(t))
	h2, l2 := bits.Mul64(uint64(4*m), uint64(rho))
	return h1 < h2 || (h1 == h2 && l1 < l2)
}

// kcHeap orders blocks by key: largest mind first, then lowest index.
type kcHeap []*kcBlockState

func (h kcHeap) Len() int { return len(h) }
func (h kcHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	return a.max > b.max || (a.max == b.max && a.arg < b.arg)
}
func (h kcHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}
func (h *kcHeap) Push(x any) {
	b := x.(*kcBlockState)
	b.pos = len(*h)
	*h = append(*h, b)
}
func (h *kcHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	*h = old[:len(old)-1]
	return b
}
