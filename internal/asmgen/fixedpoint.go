package main

// srdhmHigh finishes SaturatingRoundingDoublingHighMul from the 64-bit
// products of the even lanes (ze) and the odd lanes (zo) into dst's 16
// dwords; zh holds 2^30 per qword; K2 selects the odd lanes. qgemm's fused
// requantization (vnniRequant) and vec's requantRows share it.
//
// gemmlowp adds a nudge of 2^30 (ab >= 0) or 1−2^30 (ab < 0) and divides
// by 2^31 truncating toward zero. For ab < 0 the truncating division is
// (v + 2^31 − 1) >> 31 with v = ab + 1 − 2^30, which is (ab + 2^30) >> 31,
// the same expression as for ab >= 0: so the result is (ab + 2^30) >> 31
// for every sign, with no overflow since |ab| < 2^62 (the saturating case,
// both operands −2^31, cannot occur: multipliers are positive). The even
// lanes keep the low dword of v >> 31; the odd lanes the high dword of
// v << 1, which is the same bits one dword up.
func srdhmHigh(ze, zo, zh, dst string) {
	p("\tVPADDQ %s, %s, %s", zh, ze, ze)
	p("\tVPSRLQ $31, %s, %s", ze, ze)
	p("\tVPADDQ %s, %s, %s", zh, zo, zo)
	p("\tVPSLLQ $1, %s, %s", zo, zo)
	p("\tVPBLENDMD %s, %s, K2, %s", zo, ze, dst)
}
