package vec

import "math"

// Integer arithmetic with TensorFlow Lite's rounding rules (gemmlowp's
// fixedpoint.h and tensorflow/lite/kernels/internal/common.h), shared by the
// generic kernels here and the engine's operators: one definition.

// SRDHM is gemmlowp's SaturatingRoundingDoublingHighMul: a*b / 2^31 rounded
// to nearest with ties toward +infinity (the nudge then truncating division),
// saturating the one overflow.
func SRDHM(a, b int32) int32 {
	if a == b && a == math.MinInt32 {
		return math.MaxInt32
	}
	// gemmlowp adds a nudge of 2^30 (ab >= 0) or 1−2^30 (ab < 0) and
	// divides by 2^31 truncating toward zero. For ab < 0 that division is
	// (v + 2^31 − 1) >> 31 with v = ab + 1 − 2^30, i.e. (ab + 2^30) >> 31:
	// the same expression as for ab >= 0, so one add and one shift, no
	// branch and no sign test (|ab| < 2^62: no overflow).
	ab := int64(a) * int64(b)
	return int32((ab + 1<<30) >> 31)
}

// RDBPOT is gemmlowp's RoundingDivideByPOT: x / 2^exp rounded to nearest,
// ties away from zero.
func RDBPOT(x int32, exp int) int32 {
	mask := int32(1)<<uint(exp) - 1
	rem := x & mask
	threshold := mask>>1 + int32(uint32(x)>>31)
	// rem and threshold are in [0, 2^31): threshold−rem is negative exactly
	// when rem > threshold, and its sign bit is the rounding increment.
	return x>>uint(exp) - (threshold-rem)>>31
}
