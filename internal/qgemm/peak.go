package qgemm

import "time"

// PeakGMACs measures the int8 multiply-accumulate peak of one core for the
// kernel Pack uses, in GMAC/s: its MAC instruction back to back on
// registers (the silicon's limit, which kernel efficiency is quoted
// against), or for the generic kernel a cache-resident Gemm. It runs for
// about d on the calling goroutine.
func PeakGMACs(d time.Duration) float64 {
	if peakLoop(chosen.name, 1) > 0 {
		iters := 1 << 10
		for {
			t0 := time.Now()
			macs := peakLoop(chosen.name, iters)
			if el := time.Since(t0); el >= d/4 {
				// Best of four: the figure is a ceiling, not an average.
				best := float64(macs) / el.Seconds()
				for range 3 {
					t0 = time.Now()
					peakLoop(chosen.name, iters)
					best = max(best, float64(macs)/time.Since(t0).Seconds())
				}
				return best / 1e9
			}
			iters *= 2
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
