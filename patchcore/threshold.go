package patchcore

import (
	"fmt"
	"math"
	"slices"

	"github.com/linesight/linesight/bank"
)

// Threshold rules, calibrated on good images the bank did not learn from
// (out-of-fold or held-out scores, see Build):
//
//   - "tail" (default, param p = target false-reject rate, 0.01): the
//     log-normal prediction bound of TailThreshold; a share p of good parts
//     is expected to fail.
//   - "max-margin" (param 1.1): t = param · max(scores). No calibration
//     part fails, with room for the spread of unseen good parts.
//   - "quantile" (param q in (0, 1]): t = the q-quantile of the scores
//     (linear interpolation); a share 1−q of good parts is expected to fail.
//   - "sigma" (param k): t = mean + k·std.
//
// The same rule, applied to the largest anomaly-map value of each calibration
// image, gives the pixel threshold for regions.
const (
	RuleTail      = "tail"
	RuleMaxMargin = "max-margin"
	RuleQuantile  = "quantile"
	RuleSigma     = "sigma"
)

// DefaultParam is each rule's default parameter.
func DefaultParam(rule string) float64 {
	switch rule {
	case RuleQuantile:
		return 0.99
	case RuleSigma:
		return 4
	case RuleTail:
		return 0.01
	}
	return 1.1
}

// Calibrate sets the threshold from good image scores the bank did not
// learn from and the per-image maxima of their anomaly maps. The result
// keeps both sets (they let a grown bank be recalibrated, see Append) and
// the expected false-reject rate: the target p for the tail rule; for the
// other rules the rate the same tail model predicts at their threshold,
// 1 − F_{n−1}((ln t − m)/(s·√(1 + 1/n))) with F Student's t distribution
// (ExpectedFRR), or the share of scores above t when the model does not
// apply (fewer than 2 scores, or one not positive).
func Calibrate(rule string, param float64, scores, mapMax []float64) (bank.Threshold, error) {
	if len(scores) == 0 || len(mapMax) != len(scores) {
		return bank.Threshold{}, fmt.Errorf("patchcore: calibration needs good images the bank did not learn from (got %d scores, %d maps)", len(scores), len(mapMax))
	}
	if len(scores) > bank.MaxScores {
		return bank.Threshold{}, fmt.Errorf("patchcore: %d calibration scores, at most %d are kept", len(scores), bank.MaxScores)
	}
	t, err := applyRule(rule, param, scores)
	if err != nil {
		return bank.Threshold{}, err
	}
	px, err := applyRule(rule, param, mapMax)
	if err != nil {
		// A map maximum of 0 (a part identical to the bank) has no
		// logarithm: fall back to the largest maximum for the pixel rule.
		px = slices.Max(mapMax)
	}
	st := Summarize(scores)
	th := bank.Threshold{Rule: rule, Param: param, Value: t, Pixel: px, Width: logisticWidth(t, st.Mean), Stats: st, PixelStats: Summarize(mapMax),
		Scores: slices.Clone(scores), MapMaxima: slices.Clone(mapMax)}
	if rule == RuleTail {
		th.Target, th.ExpectedFRR = param, param
	} else {
		th.ExpectedFRR = ExpectedFRR(scores, t)
	}
	return th, nil
}

// ExpectedFRR is the false-reject rate the tail model (see TailThreshold)
// predicts for threshold t from good scores: with m, s the mean and
// standard deviation (n − 1) of the n log scores,
//
//	p = 1 − F_{n−1}((ln t − m) / (s·√(1 + 1/n)))
//
// the inverse of the tail rule: ExpectedFRR(s, TailThreshold(s, p)) = p.
// Without the model (fewer than 2 scores, a score or t not positive, or
// no spread) it is the share of scores above t.
func ExpectedFRR(scores []float64, t float64) float64 {
	n := len(scores)
	empirical := func() float64 {
		if n == 0 {
			return 0
		}
		k := 0
		for _, s := range scores {
			if s > t {
				k++
			}
		}
		return float64(k) / float64(n)
	}
	if n < 2 || !(t > 0) || math.IsInf(t, 0) {
		return empirical()
	}
	m, sd, err := logMoments(scores)
	if err != nil || !(sd > 0) {
		return empirical()
	}
	z := (math.Log(t) - m) / (sd * math.Sqrt(1+1/float64(n)))
	return 1 - StudentTCDF(z, float64(n-1))
}

// logisticWidth is the width of the normalized score for threshold t over
// good parts whose mean is mean: a part at the mean reads 1/(1+19) = 0.05.
// When t is not above the mean, 5% of t.
func logisticWidth(t, mean float64) float64 {
	w := (t - mean) / math.Log(19)
	if !(w > 0) {
		w = math.Max(0.05*t, 1e-12)
	}
	return w
}

func applyRule(rule string, param float64, s []float64) (float64, error) {
	st := Summarize(s)
	switch rule {
	case RuleTail:
		return TailThreshold(s, param)
	case RuleMaxMargin:
		if !(param >= 1 && param <= 10) {
			return 0, fmt.Errorf("patchcore: max-margin factor %v outside [1, 10]", param)
		}
		return st.Max * param, nil
	case RuleQuantile:
		if !(param > 0 && param <= 1) {
			return 0, fmt.Errorf("patchcore: quantile %v outside (0, 1]", param)
		}
		return Quantile(s, param), nil
	case RuleSigma:
		if !(param >= 0 && param <= 100) {
			return 0, fmt.Errorf("patchcore: sigma factor %v outside [0, 100]", param)
		}
		return st.Mean + param*st.Std, nil
	}
	return 0, fmt.Errorf("patchcore: unknown threshold rule %q (tail, max-margin, quantile or sigma)", rule)
}

// Summarize returns count, min, mean, population std, median, 95th
// percentile and max.
func Summarize(s []float64) bank.Stats {
	if len(s) == 0 {
		return bank.Stats{}
	}
	var sum, sq float64
	for _, v := range s {
		sum += v
	}
	mean := sum / float64(len(s))
	for _, v := range s {
		sq += (v - mean) * (v - mean)
	}
	return bank.Stats{N: len(s), Min: slices.Min(s), Mean: mean, Std: math.Sqrt(sq / float64(len(s))),
		P50: Quantile(s, 0.5), P95: Quantile(s, 0.95), Max: slices.Max(s)}
}

// Quantile is the q-quantile of s with linear interpolation between order
// statistics (numpy's default).
func Quantile(s []float64, q float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	v := slices.Clone(s)
	slices.Sort(v)
	pos := q * float64(len(v)-1)
	i := int(math.Floor(pos))
	if i >= len(v)-1 {
		return v[len(v)-1]
	}
	f := pos - float64(i)
	return v[i] + f*(v[i+1]-v[i])
}
