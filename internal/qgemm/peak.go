package qgemm

import "time"

// PeakGMACs measures the int8 multiply-accumulate peak of one core for the
// kernel Pack uses, in GMAC/s: its MAC instruction back to back on
// registers (the silicon's limit, which kernel efficiency is quoted
// against), or for the generic kernel a cache-resident Gemm. It runs for
// about d on the calling goroutine.
//
// The loop runs in slices of about half a millisecond and the best slice
// counts: on a machine shared with other work a slice that long often runs
// without being preempted, where longer runs (tens of milliseconds) nearly
// never do, and their average then understated the peak, which overstated
// every efficiency quoted against it: on the 2-core Zen 5 here under a
// load of 4-6, eight runs of 200 ms gave 163-457 GMAC/s the old way (best
// of four 50 ms runs) and 485-513 this way.
func PeakGMACs(d time.Duration) float64 {
	if peakLoop(chosen.name, 1) > 0 {
		const slice = 500 * time.Microsecond
		iters := 1 << 8
		for {
			t0 := time.Now()
			peakLoop(chosen.name, iters)
			if time.Since(t0) >= slice || iters >= 1<<30 {
				break
			}
			iters *= 2
		}
		var best float64
		for start := time.Now(); ; {
			t0 := time.Now()
			macs := peakLoop(chosen.name, iters)
			best = max(best, float64(macs)/time.Since(t0).Seconds())
			if time.Since(start) >= d {
				return best / 1e9
			}
		}
	}
	const m, n, k = 16, 64, 256
	a, b, c := make([]int8, m*k), make([]int8, n*k), make([]int32, m*n)
	for i := range a {
		a[i] = int8(i)
	}
	p, _ := packWith(chosen, n, k, b, k, nil)
	var macs int64
	t0 := time.Now()
	for time.Since(t0) < d {
		_ = p.Gemm(m, a, k, c, n)
		macs += m * n * k
	}
	return float64(macs) / time.Since(t0).Seconds() / 1e9
}
