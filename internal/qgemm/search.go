package qgemm

// The search's reductions. They stay beside the GEMM rather than in
// package vec because they are the nearest-neighbour search's own steps,
// not element-wise maps: Dot gives the squared norms of the bank vectors
// and queries (and the coreset selection's distances) that the search
// combines with the GEMM's dot products as bn − 2·q·b, and ArgminBiased
// reduces a block of those products to its nearest column with the tie
// rule of LaneMins and the fused kernel. Both run on the implementation
// the GEMM chose (Kernels): the search is one implementation end to end,
// and LINESIGHT_KERNEL=generic rules all of it out at once.

// Dot returns the int32 dot product of a with the first len(a) values of b:
//
//	var s int32
//	for i := range a {
//		s += int32(a[i]) * int32(b[i])
//	}
//
// the 1×1 case of Gemm (the same sums; len(a) up to MaxK cannot overflow).
// It panics if b is shorter than a.
func Dot(a, b []int8) int32 {
	if len(b) < len(a) {
		panic("qgemm: Dot with len(b) < len(a)")
	}
	b = b[:len(a)]
	var s int32
	done := 0
	if chosen.avx512Search && len(a) >= 32 {
		s, done = dotVNNI(a, b)
	} else if chosen.neonSearch && len(a) >= 16 {
		s, done = dotARM64(a, b)
	}
	return s + dotRef(a[done:], b[done:])
}

// ArgminBiased returns the smallest bn[j] − 2·dot[j] over j < len(dot) and
// the lowest j reaching it:
//
//	best, bi := int32(0), -1
//	for j := range dot {
//		if d := bn[j] - 2*dot[j]; bi < 0 || d < best {
//			best, bi = d, j
//		}
//	}
//
// With dot the query's dot products with a block of bank vectors and bn
// their squared norms, that is the block's nearest vector (the query's own
// squared norm is the same for every j). len(bn) must be at least
// len(dot); an empty dot gives (0, −1).
func ArgminBiased(dot, bn []int32) (int32, int) {
	bn = bn[:len(dot)]
	if chosen.avx512Search {
		return argminVNNI(dot, bn)
	}
	if chosen.neonSearch && len(dot) >= 16 {
		return argminARM64(dot, bn)
	}
	return argminRef(dot, bn)
}

// argminRef is the generic ArgminBiased; it assumes len(bn) == len(dot).
func argminRef(dot, bn []int32) (int32, int) {
	bn = bn[:len(dot)]
	best, bi := int32(0), -1
	for j := range dot {
		if d := bn[j] - 2*dot[j]; bi < 0 || d < best {
			best, bi = d, j
		}
	}
	return best, bi
}
