package jpeg

import "math"

// Fixed-point inverse DCT. The full-size transform is the LLM
// factorisation (Loeffler, Ligtenberg, Moschytz, ICASSP 1989) in the
// arrangement of the IJG's integer method: constants in 13 bits, the first
// (column) pass keeping 2 extra bits, the second descaling by 13+2+3 (the
// 3 is the 1/8 of the 2-D transform's normalisation).
const (
	constBits = 13
	pass1Bits = 2

	fix0_298631336 = 2446  // round(0.298631336 * 2^13)
	fix0_390180644 = 3196  // round(0.390180644 * 2^13)
	fix0_541196100 = 4433  // round(0.541196100 * 2^13)
	fix0_765366865 = 6270  // round(0.765366865 * 2^13)
	fix0_899976223 = 7373  // round(0.899976223 * 2^13)
	fix1_175875602 = 9633  // round(1.175875602 * 2^13)
	fix1_501321110 = 12299 // round(1.501321110 * 2^13)
	fix1_847759065 = 15137 // round(1.847759065 * 2^13)
	fix1_961570560 = 16069 // round(1.961570560 * 2^13)
	fix2_053119869 = 16819 // round(2.053119869 * 2^13)
	fix2_562915447 = 20995 // round(2.562915447 * 2^13)
	fix3_072711026 = 25172 // round(3.072711026 * 2^13)
)

// clamp8 limits a sample to 0..255.
func clamp8(v int32) uint8 {
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}

// idct8 writes the 8x8 inverse DCT of the dequantized coefficients blk
// (natural order), level-shifted by 128 and clamped, to dst with stride.
// blk is overwritten (it is the work space of the first pass).
// It assumes len(dst) >= 7*stride+8.
func idct8(blk *[64]int32, dst []uint8, stride int) {
	// Pass 1: columns, results scaled by 2^pass1Bits, back into blk.
	for c := 0; c < 8; c++ {
		if blk[8+c]|blk[16+c]|blk[24+c]|blk[32+c]|blk[40+c]|blk[48+c]|blk[56+c] == 0 {
			dc := blk[c] << pass1Bits
			for r := 0; r < 64; r += 8 {
				blk[r+c] = dc
			}
			continue
		}
		// Even part.
		z2, z3 := blk[16+c], blk[48+c]
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 - z3*fix1_847759065
		tmp3 := z1 + z2*fix0_765366865
		z2, z3 = blk[c], blk[32+c]
		tmp0 := (z2 + z3) << constBits
		tmp1 := (z2 - z3) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
		// Odd part.
		t0, t1, t2, t3 := blk[56+c], blk[40+c], blk[24+c], blk[8+c]
		z1, z2, z3 = t0+t3, t1+t2, t0+t2
		z4 := t1 + t3
		z5 := (z3 + z4) * fix1_175875602
		t0 *= fix0_298631336
		t1 *= fix2_053119869
		t2 *= fix3_072711026
		t3 *= fix1_501321110
		z1 *= -fix0_899976223
		z2 *= -fix2_562915447
		z3 = z3*-fix1_961570560 + z5
		z4 = z4*-fix0_390180644 + z5
		t0 += z1 + z3
		t1 += z2 + z4
		t2 += z2 + z3
		t3 += z1 + z4
		const sh, rnd = constBits - pass1Bits, 1 << (constBits - pass1Bits - 1)
		blk[c] = (tmp10 + t3 + rnd) >> sh
		blk[56+c] = (tmp10 - t3 + rnd) >> sh
		blk[8+c] = (tmp11 + t2 + rnd) >> sh
		blk[48+c] = (tmp11 - t2 + rnd) >> sh
		blk[16+c] = (tmp12 + t1 + rnd) >> sh
		blk[40+c] = (tmp12 - t1 + rnd) >> sh
		blk[24+c] = (tmp13 + t0 + rnd) >> sh
		blk[32+c] = (tmp13 - t0 + rnd) >> sh
	}
	// Pass 2: rows, descaled by 2^(constBits+pass1Bits+3), +128.
	const sh = constBits + pass1Bits + 3
	const rnd = 1<<(sh-1) + 128<<sh // rounding and the level shift
	for r := 0; r < 8; r++ {
		row := blk[8*r : 8*r+8 : 8*r+8]
		out := dst[r*stride : r*stride+8 : r*stride+8]
		if row[1]|row[2]|row[3]|row[4]|row[5]|row[6]|row[7] == 0 {
			v := clamp8((row[0] + (1<<(pass1Bits+3-1) + 128<<(pass1Bits+3))) >> (pass1Bits + 3))
			for i := range out {
				out[i] = v
			}
			continue
		}
		z2, z3 := row[2], row[6]
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 - z3*fix1_847759065
		tmp3 := z1 + z2*fix0_765366865
		tmp0 := (row[0] + row[4]) << constBits
		tmp1 := (row[0] - row[4]) << constBits
		tmp10, tmp13 := tmp0+tmp3+rnd, tmp0-tmp3+rnd
		tmp11, tmp12 := tmp1+tmp2+rnd, tmp1-tmp2+rnd
		t0, t1, t2, t3 := row[7], row[5], row[3], row[1]
		z1, z2, z3 = t0+t3, t1+t2, t0+t2
		z4 := t1 + t3
		z5 := (z3 + z4) * fix1_175875602
		t0 *= fix0_298631336
		t1 *= fix2_053119869
		t2 *= fix3_072711026
		t3 *= fix1_501321110
		z1 *= -fix0_899976223
		z2 *= -fix2_562915447
		z3 = z3*-fix1_961570560 + z5
		z4 = z4*-fix0_390180644 + z5
		t0 += z1 + z3
		t1 += z2 + z4
		t2 += z2 + z3
		t3 += z1 + z4
		out[0] = clamp8((tmp10 + t3) >> sh)
		out[7] = clamp8((tmp10 - t3) >> sh)
		out[1] = clamp8((tmp11 + t2) >> sh)
		out[6] = clamp8((tmp11 - t2) >> sh)
		out[2] = clamp8((tmp12 + t1) >> sh)
		out[5] = clamp8((tmp12 - t1) >> sh)
		out[3] = clamp8((tmp13 + t0) >> sh)
		out[4] = clamp8((tmp13 - t0) >> sh)
	}
}

// dcValue is the sample every pixel of a block with only a DC coefficient
// has: what idct8 computes for it (round(dc/8) + 128), and the 1/8-scale
// output of any block.
func dcValue(dc int32) uint8 { return clamp8((dc+4)>>3 + 128) }

// fill sets an n x n square of dst to v.
func fill(dst []uint8, stride, n int, v uint8) {
	for r := 0; r < n; r++ {
		row := dst[r*stride : r*stride+n]
		for i := range row {
			row[i] = v
		}
	}
}

// Reduced inverse DCTs: the N-point transform of the N x N lowest
// frequencies, out = M F M^T with M[x][u] = C(u)/2 cos((2x+1)u pi/2N)
// (C(0) = 1/sqrt2), which keeps the 8-point transform's scale: a DC-only
// block gives DC/8 in both, and each output pixel is the mean of the s x s
// pixels of the full-size block it stands for, less the discarded
// frequencies. The matrices are in constBits fixed point.
var idctM4, idctM2 = reducedMatrix(4), reducedMatrix(2)

func reducedMatrix(n int) []int32 {
	m := make([]int32, n*n)
	for x := 0; x < n; x++ {
		for u := 0; u < n; u++ {
			c := 0.5
			if u == 0 {
				c = 0.5 / math.Sqrt2
			}
			m[x*n+u] = int32(math.Round(c * math.Cos(float64(2*x+1)*float64(u)*math.Pi/float64(2*n)) * (1 << constBits)))
		}
	}
	return m
}

// idctN writes the n x n (n = 4 or 2) reduced inverse DCT of blk (natural
// order, 8x8) to dst. ws is scratch of at least n*n.
func idctN(blk *[64]int32, dst []uint8, stride, n int, m []int32, ws []int32) {
	// Pass 1: columns u < n: ws[y*n+u] = sum_v M[y][v] F[v][u], keeping
	// pass1Bits extra bits.
	for u := 0; u < n; u++ {
		for y := 0; y < n; y++ {
			var s int32
			for v := 0; v < n; v++ {
				s += m[y*n+v] * blk[8*v+u]
			}
			ws[y*n+u] = (s + 1<<(constBits-pass1Bits-1)) >> (constBits - pass1Bits)
		}
	}
	// Pass 2: rows.
	const sh = constBits + pass1Bits
	for y := 0; y < n; y++ {
		out := dst[y*stride : y*stride+n]
		for x := 0; x < n; x++ {
			var s int32
			for u := 0; u < n; u++ {
				s += m[x*n+u] * ws[y*n+u]
			}
			out[x] = clamp8((s + 1<<(sh-1) + 128<<sh) >> sh)
		}
	}
}
