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

// TestTailRuleInCalibrate: scores 1, e, e² (log mean 1, log sd 1): the
// tail rule at p = 5% is exp(1 + t_{0.95,2}·√(4/3)) = 79.1788 (see
// TestTailThresholdByHand); the bank keeps the scores, the target and the
// expected rate. For max-margin on the same scores (t = 1.1·e² = 8.128)
// the expected rate is the tail model's: 1 − F_2((ln 8.128 − 1)/√(4/3)) =
// 1 − F_2(0.9482) = 0.2215 (F_2(x) = 1/2 + x/(2√(2 + x²))).
func TestTailRuleInCalibrate(t *testing.T) {
	s := []float64{1, math.E, math.E * math.E}
	th, err := Calibrate(RuleTail, 0.05, s, s)
	if err != nil || math.Abs(th.Value-79.1788) > 1e-3 || th.Pixel != th.Value || th.Target != 0.05 || th.ExpectedFRR != 0.05 || len(th.Scores) != 3 || len(th.MapMaxima) != 3 {
		t.Fatalf("tail: %+v, %v", th, err)
	}
	th, err = Calibrate(RuleMaxMargin, 1.1, s, s)
	if err != nil {
		t.Fatal(err)
	}
	x := (math.Log(1.1*math.E*math.E) - 1) / math.Sqrt(4.0/3)
	want := 0.5 - x/(2*math.Sqrt(2+x*x))
	if math.Abs(th.ExpectedFRR-want) > 1e-9 || math.Abs(want-0.2215) > 1e-4 || th.Target != 0 {
		t.Errorf("max-margin: expected false-reject rate %v, want %v (target %v)", th.ExpectedFRR, want, th.Target)
	}
	// The estimate inverts the rule.
	for _, p := range []float64{0.001, 0.01, 0.2} {
		v, _ := TailThreshold(s, p)
		if got := ExpectedFRR(s, v); math.Abs(got-p) > 1e-9*max(1, p) {
			t.Errorf("ExpectedFRR at the tail threshold for %v = %v", p, got)
		}
	}
	// Without the model: the share of scores above t.
	if got := ExpectedFRR([]float64{0, 1, 2, 3}, 1.5); got != 0.5 {
		t.Errorf("empirical rate %v, want 0.5", got)
	}
	// A map maximum of 0 has no logarithm: the pixel threshold falls back
	// to the largest maximum instead of failing the calibration.
	th, err = Calibrate(RuleTail, 0.01, s, []float64{0, 2, 3})
	if err != nil || th.Pixel != 3 {
		t.Errorf("pixel threshold with a zero map maximum: %v, %v", th.Pixel, err)
	}
}
