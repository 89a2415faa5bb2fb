package patchcore

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Student's t quantiles from the tables (Abramowitz and Stegun 26.10).
func TestStudentTQuantileTable(t *testing.T) {
	for _, c := range []struct{ q, nu, want float64 }{
		{0.975, 10, 2.228138852}, {0.99, 19, 2.539483191}, {0.95, 1, 6.313751515},
		{0.99, 4, 3.746947388}, {0.995, 30, 2.749995654}, {0.9, 2, 1.885618083}, {0.025, 10, -2.228138852},
	} {
		if got := StudentTQuantile(c.q, c.nu); math.Abs(got-c.want) > 1e-7 {
			t.Errorf("t quantile %v with %v dof = %.9f, want %.9f", c.q, c.nu, got, c.want)
		}
	}
	// Many degrees of freedom: the normal quantile.
	if got := StudentTQuantile(0.99, 1e6); math.Abs(got-2.326347874) > 1e-5 {
		t.Errorf("t quantile 0.99 with 1e6 dof = %v, want the normal 2.3263", got)
	}
}

// A case worked by hand: log scores 0, 1, 2 (mean 1, sd 1), n = 3, p = 5%:
// t = exp(1 + t_{0.95,2}·√(4/3)) = exp(1 + 2.919986·1.154701) = 79.179.
func TestTailThresholdByHand(t *testing.T) {
	got, err := TailThreshold([]float64{1, math.E, math.E * math.E}, 0.05)
	if err != nil || math.Abs(got-79.1788) > 1e-3 {
		t.Fatalf("TailThreshold = %v, %v; want 79.1788", got, err)
	}
	for _, bad := range [][]float64{{1}, {1, 0}, {1, -2}, {1, math.Inf(1)}} {
		if _, err := TailThreshold(bad, 0.01); err == nil {
			t.Errorf("scores %v accepted", bad)
		}
	}
	if _, err := TailThreshold([]float64{1, 2}, 0); err == nil {
		t.Error("a target rate of 0 accepted")
	}
}

// TestTailRuleMeansWhatItSays: for log-normal good scores the threshold from
// n parts rejects a fraction p of new good parts on average, for 5 parts as
// for 200 (the plain 99th percentile of 20 parts would reject about 5%).
func TestTailRuleMeansWhatItSays(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const trials = 20000
	for _, n := range []int{5, 20, 200} {
		for _, p := range []float64{0.01, 0.05} {
			s := make([]float64, n)
			var rejected float64
			for range trials {
				for i := range s {
					s[i] = math.Exp(0.3*rng.NormFloat64() + 2)
				}
				th, err := TailThreshold(s, p)
				if err != nil {
					t.Fatal(err)
				}
				// P(a new good part scores above th), exactly.
				z := (math.Log(th) - 2) / 0.3
				rejected += 0.5 * math.Erfc(z/math.Sqrt2)
			}
			got := rejected / trials
			if math.Abs(got-p) > 0.12*p {
				t.Errorf("n=%d, p=%v: mean false-reject rate %.4f", n, p, got)
			}
		}
	}
}
