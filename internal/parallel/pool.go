// Package parallel runs loops on a fixed set of goroutines without
// allocating per call, with results independent of the thread count.
package parallel

import (
	"runtime"
	"sync/atomic"
	"time"
)

// Pool runs loops over [0, n) on a fixed set of goroutines. Work is split
// into contiguous ranges, one per worker, and every element is computed by
// the same code whichever worker gets it, so results do not depend on the
// thread count. Dispatch allocates nothing: loop bodies are method values
// bound once at load.
//
// A forward pass is some thirty loops of 0.05 to 1 ms each, back to back.
// Handing each one to a parked goroutine through a channel costs a futex
// wake-up of tens of microseconds on either side, which is what kept two
// threads at 1.5x one. So workers spin on their task slot for a while after
// each task (spinFor) and only then park; the caller spins on the pending
// count. Between frames, workers park and cost nothing.
type Pool struct {
	threads int
	workers []*worker
	pending atomic.Int32
	closed  atomic.Bool

	// RunDynamic's loop: chunks of dynChunk elements of [0, dynN) handed
	// out by next to whichever participant is free.
	next     atomic.Int64
	dynN     int
	dynChunk int
	dynFn    func(lo, hi, worker int)
	dynLoop  func(lo, hi, worker int) // p.claim, bound once
	// RunGuided's: p.claimGuided, bound once.
	guidedLoop func(lo, hi, worker int)
}

// spinFor is how long an idle worker polls for its next task before it
// parks. It covers the gaps between the operators of a frame, not the gap
// between frames.
const spinFor = 200 * time.Microsecond

const (
	awake int32 = iota
	parked
)

const (
	open int32 = iota
	taken
	revoked
)

type worker struct {
	seq   atomic.Uint64 // bumped by the caller for every task
	state atomic.Int32  // awake or parked
	// claim decides who runs the posted task: open until the worker takes
	// it or the caller, done with its own part, takes it back (revoked)
	// and runs it itself.
	claim atomic.Int32
	wake  chan struct{}
	fn    func(lo, hi, worker int)
	lo    int
	hi    int
	id    int
	_     [64]byte // keep workers' hot fields on their own cache lines
}

// New starts a pool of threads workers (the caller is one of them).
func New(threads int) *Pool {
	threads = max(threads, 1)
	p := &Pool{threads: threads}
	p.dynLoop = p.claim
	p.guidedLoop = p.claimGuided
	for i := 1; i < threads; i++ {
		w := &worker{wake: make(chan struct{}, 1), id: i}
		p.workers = append(p.workers, w)
		go p.work(w)
	}
	return p
}

func (p *Pool) work(w *worker) {
	var seen uint64
	for {
		if !p.waitTask(w, seen) {
			return
		}
		seen = w.seq.Load()
		// A task the caller took back is not ours to run or count (see
		// dispatch). The fields read below were written before claim was
		// opened, so taking it makes them visible.
		if w.claim.CompareAndSwap(open, taken) {
			w.fn(w.lo, w.hi, w.id)
			p.pending.Add(-1)
		}
	}
}

// waitTask returns when w.seq moves past seen (true) or the pool closes
// (false): spinning first, then parked on w.wake.
func (p *Pool) waitTask(w *worker, seen uint64) bool {
	for {
		start := time.Now()
		for i := 0; ; i++ {
			if w.seq.Load() != seen {
				return true
			}
			if p.closed.Load() {
				return false
			}
			if i&255 == 255 {
				// Let other goroutines (camera, MQTT) have this P now and
				// then, and stop spinning once the pass is over.
				runtime.Gosched()
				if time.Since(start) > spinFor {
					break
				}
			}
		}
		w.state.Store(parked)
		// A task posted between the last check and the store above must
		// not be slept through: look again, and if one came, take back the
		// parked state unless a caller already did (then its wake token is
		// ours).
		if w.seq.Load() != seen || p.closed.Load() {
			if !w.state.CompareAndSwap(parked, awake) {
				<-w.wake
			}
		} else {
			<-w.wake
		}
		if w.seq.Load() != seen {
			return true
		}
		if p.closed.Load() {
			return false
		}
		// Woken with no task: a caller that posted an earlier task was
		// delayed between publishing it and taking back the parked state,
		// so its token arrived in a later wait. Wait again (exiting here
		// once left a pool without its worker and the next Run spinning
		// for ever: CI saw it under -race).
	}
}

// Run calls fn on contiguous ranges covering [0, n), with at least
// minChunk elements per range so tiny loops stay on one thread. Worker ids
// are in [0, threads): fn may index per-worker scratch with them. Run must
// not be called concurrently on one Pool.
func (p *Pool) Run(n, minChunk int, fn func(lo, hi, worker int)) {
	workers := p.threads
	if minChunk < 1 {
		minChunk = 1
	}
	if m := (n + minChunk - 1) / minChunk; m < workers {
		workers = m
	}
	if workers <= 1 {
		fn(0, n, 0)
		return
	}
	chunk := (n + workers - 1) / workers
	workers = (n + chunk - 1) / chunk // no empty trailing ranges
	p.dispatch(workers, fn, chunk, n)
}

// RunDynamic calls fn on ranges of chunk elements (the last may be
// shorter) covering [0, n), each handed to whichever thread is free, the
// caller included. Where Run gives every worker one fixed share, a thread
// that the system deschedules for a while (a shared or busy machine) here
// holds up the loop by at most the chunk it is on: the others take the
// rest. fn gets a worker id in [0, threads) for per-worker scratch; which
// ranges a worker gets varies from call to call, so fn's results must not
// depend on it. Run must not be called concurrently on one Pool.
func (p *Pool) RunDynamic(n, chunk int, fn func(lo, hi, worker int)) {
	chunk = max(chunk, 1)
	chunks := (n + chunk - 1) / chunk
	workers := min(p.threads, chunks)
	if workers <= 1 {
		if n > 0 {
			fn(0, n, 0)
		}
		return
	}
	p.next.Store(0)
	p.dynN, p.dynChunk, p.dynFn = n, chunk, fn
	p.dispatch(workers, p.dynLoop, 0, 0)
	p.dynFn = nil
}

// RunGuided is RunDynamic with chunks that shrink as the loop drains: each
// claim takes 1/(2·threads) of what is left, never less than minChunk (nor
// more than is left). Big chunks first keep the claims few (each is an
// atomic operation on a line the threads share); small ones last even out
// the threads' finishing times, which matters in a loop of a few hundred
// microseconds. fn gets a worker id in [0, threads); which ranges a worker
// gets varies from call to call, so fn's results must not depend on it.
// Run must not be called concurrently on one Pool.
func (p *Pool) RunGuided(n, minChunk int, fn func(lo, hi, worker int)) {
	minChunk = max(minChunk, 1)
	if p.threads <= 1 || n <= minChunk {
		if n > 0 {
			fn(0, n, 0)
		}
		return
	}
	p.next.Store(0)
	p.dynN, p.dynChunk, p.dynFn = n, minChunk, fn
	p.dispatch(min(p.threads, (n+minChunk-1)/minChunk), p.guidedLoop, 0, 0)
	p.dynFn = nil
}

// claimGuided is RunGuided's task on every participant.
func (p *Pool) claimGuided(_, _, worker int) {
	n := int64(p.dynN)
	div := int64(2 * p.threads)
	for {
		lo := p.next.Load()
		if lo >= n {
			return
		}
		hi := min(n, lo+max(int64(p.dynChunk), (n-lo)/div))
		if p.next.CompareAndSwap(lo, hi) {
			p.dynFn(int(lo), int(hi), worker)
		}
	}
}

// claim is RunDynamic's task on every participant: take chunks until none
// is left.
func (p *Pool) claim(_, _, worker int) {
	for {
		lo := int(p.next.Add(int64(p.dynChunk))) - p.dynChunk
		if lo >= p.dynN {
			return
		}
		p.dynFn(lo, min(lo+p.dynChunk, p.dynN), worker)
	}
}

// dispatch runs fn on workers participants: worker i > 0 on [i·chunk,
// min((i+1)·chunk, n)), the caller on [0, min(chunk, n)), and returns when
// all are done.
func (p *Pool) dispatch(workers int, fn func(lo, hi, worker int), chunk, n int) {
	p.pending.Store(int32(workers - 1))
	for i := 1; i < workers; i++ {
		w := p.workers[i-1]
		w.post(fn, i*chunk, min((i+1)*chunk, n))
		w.wakeIfParked()
	}
	fn(0, min(chunk, n), 0)
	// A worker that has not started its task by now (descheduled on a
	// busy machine, or still waking from park) is not waited for: the
	// caller takes the task back and runs it under that worker's id,
	// which nobody else is using then. In a dynamic loop there is nothing
	// left to claim by now, so this only spares the wait.
	for i := 1; i < workers; i++ {
		w := p.workers[i-1]
		if w.claim.CompareAndSwap(open, revoked) {
			fn(w.lo, w.hi, w.id)
			p.pending.Add(-1)
		}
	}
	for i := 0; p.pending.Load() != 0; i++ {
		if i&63 == 63 {
			runtime.Gosched()
		}
	}
}

// Threads is the number of workers.
func (p *Pool) Threads() int { return p.threads }

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	if p.closed.Swap(true) {
		return
	}
	for _, w := range p.workers {
		w.wakeIfParked()
	}
}

// post hands w the task fn(lo, hi): the fields first, then the sequence
// number, whose increment publishes them to the worker.
func (w *worker) post(fn func(lo, hi, worker int), lo, hi int) {
	w.fn, w.lo, w.hi = fn, lo, hi
	w.claim.Store(open)
	w.seq.Add(1)
}

// wakeIfParked takes back w's parked state and, if w was parked, sends it
// the wake token. A caller descheduled between post and this call may find
// w parked again after w saw the task by itself, ran it and gave up
// spinning: the token then ends a later wait with no task in it, which
// waitTask takes as spurious.
func (w *worker) wakeIfParked() {
	if w.state.CompareAndSwap(parked, awake) {
		w.wake <- struct{}{}
	}
}
