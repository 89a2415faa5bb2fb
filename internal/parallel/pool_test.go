package parallel

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/testenv"
)

// TestRunCoversEveryElementOnce checks that ranges are contiguous, disjoint,
// cover [0, n) and carry distinct worker ids, for many sizes and pools.
func TestRunCoversEveryElementOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := New(threads)
		for n := 0; n < 200; n += 7 {
			for _, minChunk := range []int{0, 1, 5, 64} {
				hits := make([]int32, n)
				var ids [16]atomic.Int32
				p.Run(n, minChunk, func(lo, hi, w int) {
					if w < 0 || w >= threads {
						t.Errorf("worker id %d with %d threads", w, threads)
						return
					}
					ids[w].Add(1)
					for i := lo; i < hi; i++ {
						hits[i]++
					}
				})
				for i, h := range hits {
					if h != 1 {
						t.Fatalf("threads %d, n %d, minChunk %d: element %d computed %d times", threads, n, minChunk, i, h)
					}
				}
				for w := range ids {
					if c := ids[w].Load(); c > 1 {
						t.Fatalf("threads %d, n %d: worker %d got %d ranges in one Run", threads, n, w, c)
					}
				}
			}
		}
		p.Close()
	}
}

// parkedCount counts p's workers that have given up spinning.
func parkedCount(p *Pool) int {
	n := 0
	for _, w := range p.workers {
		if w.state.Load() == parked {
			n++
		}
	}
	return n
}

// waitParked waits until at least n of p's workers have parked.
func waitParked(t *testing.T, p *Pool, n int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() bool { return parkedCount(p) >= n }, "idle workers do not park")
}

// TestRunAfterWorkersPark runs loops after every worker has parked, so
// they must be woken, and back to back, so the spinning path is taken too.
func TestRunAfterWorkersPark(t *testing.T) {
	p := New(4)
	defer p.Close()
	var total atomic.Int64
	for round := range 40 {
		if round%4 == 0 {
			waitParked(t, p, len(p.workers))
		}
		p.Run(1000, 1, func(lo, hi, _ int) { total.Add(int64(hi - lo)) })
	}
	if got := total.Load(); got != 40*1000 {
		t.Fatalf("%d elements computed, want %d", got, 40*1000)
	}
}

// TestRunOnOneProcessor checks that spinning does not starve the workers
// when they share a single P with the caller.
func TestRunOnOneProcessor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	p := New(3)
	defer p.Close()
	for range 200 {
		var sum atomic.Int64
		p.Run(300, 1, func(lo, hi, _ int) {
			for i := lo; i < hi; i++ {
				sum.Add(int64(i))
			}
		})
		if got := sum.Load(); got != 299*300/2 {
			t.Fatalf("sum %d, want %d", got, 299*300/2)
		}
	}
}

// TestCloseStopsWorkers checks that Close ends spinning and parked workers.
func TestCloseStopsWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	p := New(4)
	p.Run(100, 1, func(int, int, int) {})
	waitParked(t, p, 1)
	p.Run(2, 1, func(int, int, int) {}) // wakes one; the others stay parked
	p.Close()                           // the woken one still spins
	p.Close()                           // twice is harmless
	testenv.Eventually(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= before },
		"the workers' goroutines are still there after Close")
}

// TestRunAllocatesNothing: dispatch is per frame and per operator.
func TestRunAllocatesNothing(t *testing.T) {
	p := New(2)
	defer p.Close()
	var sink atomic.Int64
	fn := func(lo, hi, _ int) { sink.Add(int64(hi - lo)) }
	if a := testing.AllocsPerRun(100, func() { p.Run(1000, 1, fn) }); a != 0 {
		t.Fatalf("Run allocates %.1f times per call", a)
	}
}

// TestDelayedCallerWakeUp: a caller delayed between posting a task and
// taking back the worker's parked state, for longer than the worker needs
// to see the task by itself, run it, spin and park again, sends its wake
// token into a later wait. The worker must take it as a spurious wake-up,
// not as the end of the pool (as it once did, under -race on CI): the next
// Run would wait for ever for a worker that is gone.
//
// The test plays that caller with dispatch's two halves, post and
// wakeIfParked, and waits between them until the worker has parked again,
// so every round takes the path instead of when the scheduler happens to.
func TestDelayedCallerWakeUp(t *testing.T) {
	p := New(2)
	defer p.Close()
	w := p.workers[0]
	for round := range 5 {
		// The worker is kept busy on a first task, so that it is awake
		// when the second is posted and takes it without a wake-up.
		started, release := make(chan struct{}), make(chan struct{})
		var ran atomic.Bool
		p.pending.Store(2)
		w.post(func(int, int, int) { close(started); <-release }, 0, 0)
		w.wakeIfParked()
		<-started
		w.post(func(int, int, int) { ran.Store(true) }, 0, 0) // the delayed caller posts...
		close(release)
		testenv.Eventually(t, 10*time.Second, func() bool {
			return ran.Load() && p.pending.Load() == 0 && w.state.Load() == parked
		}, "the worker did not run the second task and park")
		w.wakeIfParked() // ...and wakes the worker only now, in its next wait.

		done := make(chan struct{})
		go func() {
			p.Run(2, 1, func(int, int, int) {})
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Run did not return after a late wake-up (the worker is gone)", round)
		}
	}
}

// TestRunDynamicCoversEveryElementOnce: chunks start on multiples of chunk,
// cover [0, n) once, and a worker id is never used by two ranges at once
// (per-worker scratch stays private).
func TestRunDynamicCoversEveryElementOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := New(threads)
		for n := 0; n < 300; n += 11 {
			for _, chunk := range []int{0, 1, 6, 48, 500} {
				hits := make([]int32, n)
				var busy [16]atomic.Int32
				p.RunDynamic(n, chunk, func(lo, hi, w int) {
					if w < 0 || w >= threads {
						t.Errorf("worker id %d with %d threads", w, threads)
						return
					}
					if !busy[w].CompareAndSwap(0, 1) {
						t.Errorf("worker id %d used by two ranges at once", w)
					}
					c := max(chunk, 1)
					if lo%c != 0 || (hi-lo != c && hi != n) {
						t.Errorf("range [%d, %d) with chunk %d of %d", lo, hi, c, n)
					}
					for i := lo; i < hi; i++ {
						hits[i]++
					}
					busy[w].Store(0)
				})
				for i, h := range hits {
					if h != 1 {
						t.Fatalf("threads %d, n %d, chunk %d: element %d computed %d times", threads, n, chunk, i, h)
					}
				}
			}
		}
		p.Close()
	}
}

// TestRunDynamicWorksAroundAStall: while one thread is stuck on its first
// chunk, the others take every remaining chunk.
func TestRunDynamicWorksAroundAStall(t *testing.T) {
	p := New(2)
	defer p.Close()
	var per [2]atomic.Int32
	var stalled atomic.Bool
	p.RunDynamic(100, 1, func(lo, hi, w int) {
		per[w].Add(1)
		if stalled.CompareAndSwap(false, true) {
			// Stuck until the other thread has done the rest (or 5 s,
			// which fails the test).
			for deadline := time.Now().Add(5 * time.Second); per[0].Load()+per[1].Load() < 100 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
	})
	a, b := per[0].Load(), per[1].Load()
	if a+b != 100 || min(a, b) != 1 {
		t.Fatalf("chunks per thread %d and %d: the stalled one should have run 1 of 100", a, b)
	}
}

func TestRunDynamicAllocatesNothing(t *testing.T) {
	p := New(2)
	defer p.Close()
	var sum atomic.Int64
	fn := func(lo, hi, _ int) { sum.Add(int64(hi - lo)) }
	if a := testing.AllocsPerRun(100, func() { p.RunDynamic(1000, 10, fn) }); a != 0 {
		t.Fatalf("%.1f allocations per RunDynamic", a)
	}
}

// TestRunGuidedCoversEveryElementOnce: ranges of at least minChunk (but
// the last) cover [0, n) once, shrinking as the loop drains, and a worker
// id is never used by two ranges at once.
func TestRunGuidedCoversEveryElementOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := New(threads)
		for n := 0; n < 700; n += 13 {
			for _, minChunk := range []int{0, 1, 4, 48, 1000} {
				hits := make([]int32, n)
				var busy [16]atomic.Int32
				var mu sync.Mutex
				var ranges [][2]int
				p.RunGuided(n, minChunk, func(lo, hi, w int) {
					if w < 0 || w >= threads {
						t.Errorf("worker id %d with %d threads", w, threads)
						return
					}
					if !busy[w].CompareAndSwap(0, 1) {
						t.Errorf("worker id %d used by two ranges at once", w)
					}
					for i := lo; i < hi; i++ {
						hits[i]++
					}
					mu.Lock()
					ranges = append(ranges, [2]int{lo, hi})
					mu.Unlock()
					busy[w].Store(0)
				})
				for i, h := range hits {
					if h != 1 {
						t.Fatalf("threads %d, n %d, minChunk %d: element %d computed %d times", threads, n, minChunk, i, h)
					}
				}
				sort.Slice(ranges, func(i, j int) bool { return ranges[i][0] < ranges[j][0] })
				for i, r := range ranges {
					if r[1]-r[0] < max(minChunk, 1) && r[1] != n {
						t.Errorf("threads %d, n %d: range %v shorter than %d", threads, n, r, minChunk)
					}
					if i > 0 && r[1]-r[0] > ranges[i-1][1]-ranges[i-1][0] && r[1] != n {
						t.Errorf("threads %d, n %d: range %v longer than the one before it, %v", threads, n, r, ranges[i-1])
					}
				}
			}
		}
		p.Close()
	}
}

func TestRunGuidedAllocatesNothing(t *testing.T) {
	p := New(2)
	defer p.Close()
	var sum atomic.Int64
	fn := func(lo, hi, _ int) { sum.Add(int64(hi - lo)) }
	if a := testing.AllocsPerRun(100, func() { p.RunGuided(1000, 4, fn) }); a != 0 {
		t.Fatalf("%.1f allocations per RunGuided", a)
	}
}

// TestCallerTakesBackUnstartedTask: on one processor the workers cannot
// start while the caller runs its own part without yielding, so the
// caller takes their tasks back and runs them itself, under their worker
// ids, instead of waiting for them to be scheduled; every element is
// still computed once.
//
// The runtime preempts a goroutine that has run for 10 ms of wall time, so
// on a loaded machine or under qemu a round now and then lets the workers
// in (seen under qemu-arm in CI: worker ids [2 1 0]). Every round must
// compute each element once; at least half must run all on the caller. A
// pool that waited for its workers instead would run no round on the
// caller alone.
func TestCallerTakesBackUnstartedTask(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	p := New(3)
	defer p.Close()
	caller := goroutineID()
	const rounds = 20
	alone := 0
	var last string
	for range rounds {
		hits := make([]int32, 30)
		var foreign atomic.Int32
		var mu sync.Mutex // a preempted round runs ranges concurrently
		ids := make([]int, 0, 3)
		p.Run(30, 1, func(lo, hi, w int) {
			if goroutineID() != caller {
				foreign.Add(1)
			}
			mu.Lock()
			ids = append(ids, w)
			mu.Unlock()
			for i := lo; i < hi; i++ {
				hits[i]++
			}
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("element %d computed %d times", i, h)
			}
		}
		if foreign.Load() == 0 && len(ids) == 3 && ids[0] == 0 && ids[1] == 1 && ids[2] == 2 {
			alone++
		} else {
			last = fmt.Sprintf("ranges ran on %d other goroutines, worker ids %v", foreign.Load(), ids)
		}
	}
	if alone < rounds/2 {
		t.Fatalf("%d of %d rounds ran all on the caller (ids 0, 1, 2), want at least %d; last other: %s", alone, rounds, rounds/2, last)
	}
}

// goroutineID is the running goroutine's number, from its stack header
// ("goroutine 7 [running]:").
func goroutineID() string {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	return s[:strings.IndexByte(s, ' ')]
}
