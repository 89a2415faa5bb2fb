package qgemm

import "math"

// Integer arithmetic with TensorFlow Lite's rounding rules (gemmlowp's
// fixedpoint.h and tensorflow/lite/kernels/internal/common.h), shared by the
// vector kernels' scalar tails and the model package's ops: one definition.

// SRDHM is gemmlowp's SaturatingRoundingDoublingHighMul: a*b / 2^31 rounded
// to nearest with ties toward +infinity (the nudge then truncating division),
// saturating the one overflow.
func SRDHM(a, b int32) int32 {
	if a == b && a == math.MinInt32 {
		return math.MaxInt32
	}
	// Branch-free (the sign of a product is data, and mispredicted branches
	// cost more than the arithmetic): the nudge is 2^30 or 1−2^30 by the
	// sign of ab, and division by 2^31 truncating toward zero is an
	// arithmetic shift after adding 2^31−1 to negative values.
	ab := int64(a) * int64(b)
	q := ab + (1 << 30) + (ab>>63)&(1-(1<<31))
	q += (q >> 63) & (1<<31 - 1)
	return int32(q >> 31)
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
