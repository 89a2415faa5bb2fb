package patchcore

import (
	"fmt"
	"math"
)

// The tail rule sets the threshold for a target false-reject rate p from
// the scores of good parts, honestly for small samples. Image scores of
// good parts are positive and skewed to the right; their logarithms are
// close to normal. With m and s the mean and standard deviation (n − 1 in
// the denominator) of the n log scores, the threshold is the upper
// 1 − p prediction bound for one more good part:
//
//	t = exp(m + t_{1−p, n−1} · s · √(1 + 1/n))
//
// where t_{q, ν} is the q-quantile of Student's t distribution with ν
// degrees of freedom. For normal log scores the probability that the next
// good part scores above t is exactly p, whatever n: the t quantile and the
// √(1 + 1/n) account for m and s being estimated from n parts, which is
// what makes 10 or 20 parts usable (with 20 parts and p = 1%,
// t_{0.99, 19}·√1.05 = 2.64 standard deviations instead of the normal
// 2.33). The expected false-reject rate stored in the bank is p.

// TailThreshold returns the tail rule's threshold for target
// false-reject rate p over scores (at least 2, all positive).
func TailThreshold(scores []float64, p float64) (float64, error) {
	n := len(scores)
	if n < 2 {
		return 0, fmt.Errorf("patchcore: the tail rule needs at least 2 good scores, got %d", n)
	}
	if !(p > 0 && p < 0.5) {
		return 0, fmt.Errorf("patchcore: target false-reject rate %v outside (0, 0.5)", p)
	}
	mean, sd, err := logMoments(scores)
	if err != nil {
		return 0, err
	}
	k := StudentTQuantile(1-p, float64(n-1)) * math.Sqrt(1+1/float64(n))
	return math.Exp(mean + k*sd), nil
}

// logMoments is the mean and the standard deviation (n − 1 in the
// denominator) of the logarithms of at least 2 positive finite scores.
func logMoments(scores []float64) (mean, sd float64, err error) {
	n := len(scores)
	for _, s := range scores {
		if !(s > 0) || math.IsInf(s, 0) {
			return 0, 0, fmt.Errorf("patchcore: the tail rule needs positive scores, got %v", s)
		}
		mean += math.Log(s)
	}
	mean /= float64(n)
	var ss float64
	for _, s := range scores {
		d := math.Log(s) - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss / float64(n-1)), nil
}

// StudentTQuantile is the q-quantile of Student's t distribution with nu
// degrees of freedom, found by bisection on StudentTCDF.
func StudentTQuantile(q, nu float64) float64 {
	if q == 0.5 {
		return 0
	}
	if q < 0.5 {
		return -StudentTQuantile(1-q, nu)
	}
	lo, hi := 0.0, 1.0
	for StudentTCDF(hi, nu) < q {
		hi *= 2
		if hi > 1e12 {
			return math.Inf(1)
		}
	}
	for range 200 {
		mid := (lo + hi) / 2
		if StudentTCDF(mid, nu) < q {
			lo = mid
		} else {
			hi = mid
		}
		if hi-lo <= 1e-13*hi {
			break
		}
	}
	return (lo + hi) / 2
}

// StudentTCDF is P(T ≤ x) for Student's t with nu degrees of freedom:
// 1 − I_{ν/(ν+x²)}(ν/2, 1/2)/2 for x ≥ 0, I the regularized incomplete
// beta function.
func StudentTCDF(x, nu float64) float64 {
	tail := 0.5 * incBeta(nu/2, 0.5, nu/(nu+x*x))
	if x >= 0 {
		return 1 - tail
	}
	return tail
}

// incBeta is the regularized incomplete beta function I_x(a, b), by its
// continued fraction (Lentz's method), using the symmetry
// I_x(a, b) = 1 − I_{1−x}(b, a) where the fraction converges slowly.
func incBeta(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	front := math.Exp(lab - la - lb + a*math.Log(x) + b*math.Log1p(-x))
	if x > (a+1)/(a+b+2) {
		return 1 - front*betaFraction(b, a, 1-x)/b
	}
	return front * betaFraction(a, b, x) / a
}

// betaFraction evaluates the continued fraction of the incomplete beta
// function.
func betaFraction(a, b, x float64) float64 {
	const tiny = 1e-300
	c, d := 1.0, 1-(a+b)*x/(a+1)
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	f := d
	for m := 1; m <= 500; m++ {
		fm := float64(m)
		// Even step.
		num := fm * (b - fm) * x / ((a + 2*fm - 1) * (a + 2*fm))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		f *= d * c
		// Odd step.
		num = -(a + fm) * (a + b + fm) * x / ((a + 2*fm) * (a + 2*fm + 1))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		delta := d * c
		f *= delta
		if math.Abs(delta-1) < 1e-15 {
			break
		}
	}
	return f
}
