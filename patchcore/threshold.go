package patchcore

import (
	"fmt"
	"math"
	"slices"

	"github.com/linesight/linesight/bank"
)

// Threshold rules, calibrated on held-out good images only:
//
//   - "max-margin" (default, param 1.1): t = param · max(scores). No held-out
//     good part fails, with room for the spread of unseen good parts.
//   - "quantile" (param q in (0, 1]): t = the q-quantile of the scores
//     (linear interpolation); a share 1−q of good parts is expected to fail.
//   - "sigma" (param k): t = mean + k·std.
//
// The same rule, applied to the largest anomaly-map value of each held-out
// image, gives the pixel threshold for regions.
const (
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
	}
	return 1.1
}

// Calibrate sets the threshold from held-out good image scores and the
// per-image maxima of their anomaly maps.
func Calibrate(rule string, param float64, scores, mapMax []float64) (bank.Threshold, error) {
	if len(scores) == 0 || len(mapMax) != len(scores) {
		return bank.Threshold{}, fmt.Errorf("patchcore: calibration needs held-out good images (got %d scores, %d maps)", len(scores), len(mapMax))
	}
	t, err := applyRule(rule, param, scores)
	if err != nil {
		return bank.Threshold{}, err
	}
	px, _ := applyRule(rule, param, mapMax)
	st := Summarize(scores)
	return bank.Threshold{Rule: rule, Param: param, Value: t, Pixel: px, Width: logisticWidth(t, st.Mean), Stats: st, PixelStats: Summarize(mapMax)}, nil
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
	return 0, fmt.Errorf("patchcore: unknown threshold rule %q (max-margin, quantile or sigma)", rule)
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
