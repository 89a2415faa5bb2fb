package engine

import (
	"math"
	"math/bits"

	"github.com/linesight/linesight/internal/vec"
)

// Integer arithmetic with TensorFlow Lite's rounding rules. The reference
// kernels (tensorflow/lite/kernels/internal/common.h and gemmlowp's
// fixedpoint.h) define quantized ops in these terms; reproducing them exactly
// is what makes our outputs equal TFLite's.

// quantizeMultiplier splits a positive real multiplier into a Q31 mantissa
// and a power-of-two exponent: real ≈ m * 2^(shift-31). As in TFLite, the
// mantissa is rounded half away from zero and a mantissa of exactly 2^31
// becomes 2^30 with shift+1; exponents below -31 flush to zero.
func quantizeMultiplier(real float64) (int32, int) {
	if real == 0 {
		return 0, 0
	}
	q, shift := math.Frexp(real)
	qf := int64(math.Round(q * (1 << 31)))
	if qf == 1<<31 {
		qf /= 2
		shift++
	}
	if shift < -31 {
		return 0, 0
	}
	return int32(qf), shift
}

// srdhm and rdbpot are gemmlowp's SaturatingRoundingDoublingHighMul and
// RoundingDivideByPOT, defined once in package vec (its generic kernels
// use them too); these short names keep the ops readable.
func srdhm(a, b int32) int32        { return vec.SRDHM(a, b) }
func rdbpot(x int32, exp int) int32 { return vec.RDBPOT(x, exp) }

// mulByQuantizedMultiplier is TFLite's MultiplyByQuantizedMultiplier:
// x * m * 2^(shift-31), with a left shift applied before the high multiply.
func mulByQuantizedMultiplier(x, m int32, shift int) int32 {
	left, right := max(shift, 0), max(-shift, 0)
	return rdbpot(srdhm(x*(1<<uint(left)), m), right)
}

// Fixed-point numbers of gemmlowp, as raw int32 with a number of integer bits
// that the caller tracks. Multiplication of Q(a) by Q(b) gives Q(a+b).

// fpMulPOTNeg is SaturatingRoundingMultiplyByPOT with a negative exponent.
func fpMulPOTNeg(x int32, exp int) int32 { return rdbpot(x, -exp) }

// fpMulPOTPos is SaturatingRoundingMultiplyByPOT with a positive exponent.
func fpMulPOTPos(x int32, exp int) int32 {
	threshold := int32(1)<<uint(31-exp) - 1
	if x > threshold {
		return math.MaxInt32
	}
	if x < -threshold {
		return math.MinInt32
	}
	return x << uint(exp)
}

// expOnInterval is exp_on_interval_between_negative_one_quarter_and_0_excl
// for Q0 input and output.
func expOnInterval(a int32) int32 {
	const constantTerm = 1895147668
	const oneThird = 715827883
	x := a + 1<<28 // + 1/8
	x2 := srdhm(x, x)
	x3 := srdhm(x2, x)
	x4 := srdhm(x2, x2)
	x4over4 := fpMulPOTNeg(x4, -2)
	poly := fpMulPOTNeg(srdhm(x4over4+x3, oneThird)+x2, -1)
	return constantTerm + srdhm(constantTerm, x+poly)
}

// expOnNegativeValues is gemmlowp's exp_on_negative_values for a Q(intBits)
// input a <= 0; the result is Q0.
func expOnNegativeValues(a int32, intBits int) int32 {
	fracBits := 31 - intBits
	oneQuarter := int32(1) << uint(fracBits-2)
	mask := oneQuarter - 1
	aModQuarterMinusQuarter := (a & mask) - oneQuarter
	result := expOnInterval(fpMulPOTPos(aModQuarterMinusQuarter, intBits)) // Rescale to Q0
	remainder := aModQuarterMinusQuarter - a
	barrel := [...]struct {
		exp  int
		mult int32
	}{{-2, 1672461947}, {-1, 1302514674}, {0, 790015084}, {1, 290630308}, {2, 39332535}, {3, 720401}, {4, 242}}
	for _, b := range barrel {
		if intBits > b.exp {
			if remainder&(int32(1)<<uint(fracBits+b.exp)) != 0 {
				result = srdhm(result, b.mult)
			}
		}
	}
	if intBits > 5 {
		clamp := -(int32(1) << uint(36-intBits)) // -32.0 in Q(intBits)
		if a < clamp {
			result = 0
		}
	}
	if a == 0 {
		result = math.MaxInt32
	}
	return result
}

// oneOverOnePlusX is gemmlowp's one_over_one_plus_x_for_x_in_0_1 (Q0 in and out)
// by Newton-Raphson on a Q2 intermediate.
func oneOverOnePlusX(a int32) int32 {
	sum := int64(a) + int64(math.MaxInt32)
	sign := int64(1)
	if sum < 0 {
		sign = -1
	}
	half := int32((sum + sign) / 2) // RoundingHalfSum(a, One)
	const c48over17 = 1515870810
	const cNeg32over17 = -1010580540
	x := c48over17 + srdhm(half, cNeg32over17) // Q2
	const oneQ2 = 1 << 29
	for i := 0; i < 3; i++ {
		hx := srdhm(half, x)                    // Q0*Q2 -> Q2
		oneMinus := oneQ2 - hx                  // Q2
		x += fpMulPOTPos(srdhm(x, oneMinus), 2) // Q4 -> Q2
	}
	return fpMulPOTPos(x, 1) // ExactMulByPot<-1> gives Q1; Rescale to Q0
}

// reciprocal is TFLite's GetReciprocal: 1/x for a Q(intDigits) x > 0, as a
// Q0 mantissa and the number of bits it sits above the unit.
func reciprocal(x int32, intDigits int) (int32, int) {
	headroomPlusOne := bits.LeadingZeros32(uint32(x))
	numBitsOverUnit := intDigits - headroomPlusOne
	shiftedMinusOne := int32((uint32(x) << uint(headroomPlusOne)) - (1 << 31))
	return oneOverOnePlusX(shiftedMinusOne), numBitsOverUnit
}

// quantizedActivationRange is CalculateActivationRangeQuantized: the integer
// clamp bounds of a fused activation for an output with scale and zero point,
// within [qmin, qmax]. The real bounds are quantized in float32, as TFLite does.
func quantizedActivationRange(act int8, scale float32, zp, qmin, qmax int32) (int32, int32, bool) {
	q := func(f float32) int32 { return zp + int32(math.Round(float64(f/scale))) }
	lo, hi := qmin, qmax
	switch act {
	case 0: // NONE
	case 1: // RELU
		lo = max(qmin, q(0))
	case 3: // RELU6
		lo, hi = max(qmin, q(0)), min(qmax, q(6))
	case 2: // RELU_N1_TO_1
		lo, hi = max(qmin, q(-1)), min(qmax, q(1))
	default:
		return 0, 0, false
	}
	return lo, hi, true
}

// floatActivationRange is CalculateActivationRange for float outputs.
func floatActivationRange(act int8) (float32, float32, bool) {
	inf := float32(math.Inf(1))
	switch act {
	case 0:
		return -inf, inf, true
	case 1:
		return 0, inf, true
	case 3:
		return 0, 6, true
	case 2:
		return -1, 1, true
	}
	return 0, 0, false
}

func clamp32(x, lo, hi int32) int32 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}
