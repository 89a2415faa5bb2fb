// Package parallel runs loops on a fixed set of goroutines without
// allocating per call, with results independent of the thread count.
package parallel

import "sync"

// Pool runs loops over [0, n) on a fixed set of goroutines. Work is split
// into contiguous ranges, one per worker, and every element is computed by
// the same code whichever worker gets it, so results do not depend on the
// thread count. Dispatch allocates nothing: tasks are values on a channel and
// the loop bodies are method values bound once at load.
type Pool struct {
	threads int
	tasks   chan task
	wg      sync.WaitGroup
}

type task struct {
	fn             func(lo, hi, worker int)
	lo, hi, worker int
}

// New starts a pool of threads workers (the caller is one of them).
func New(threads int) *Pool {
	threads = max(threads, 1)
	p := &Pool{threads: threads}
	if threads > 1 {
		p.tasks = make(chan task, threads)
		for i := 1; i < threads; i++ {
			go p.work(p.tasks)
		}
	}
	return p
}

// work takes the channel as an argument: close() clears the field, which
// workers must not read.
func (p *Pool) work(tasks <-chan task) {
	for t := range tasks {
		t.fn(t.lo, t.hi, t.worker)
		p.wg.Done()
	}
}

// Run calls fn on contiguous ranges covering [0, n), with at least
// minChunk elements per range so tiny loops stay on one thread. Worker ids
// are in [0, threads): fn may index per-worker scratch with them.
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
	p.wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		lo := w * chunk
		hi := min(lo+chunk, n)
		p.tasks <- task{fn: fn, lo: lo, hi: hi, worker: w}
	}
	fn(0, min(chunk, n), 0)
	p.wg.Wait()
}

// Threads is the number of workers.
func (p *Pool) Threads() int { return p.threads }

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	if p.tasks != nil {
		close(p.tasks)
		p.tasks = nil
	}
}
