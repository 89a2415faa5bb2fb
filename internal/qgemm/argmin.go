package qgemm

// ArgminBiased returns the smallest bn[j] − 2·dot[j] over j < len(dot) and
// the lowest j reaching it: with dot the query's dot products with a block
// of bank vectors and bn their squared norms, that is the block's nearest
// vector (the query's own squared norm is the same for every j). len(dot)
// must be positive and len(bn) at least len(dot).
func ArgminBiased(dot, bn []int32) (int32, int) {
	n := len(dot)
	bn = bn[:n]
	best, bi := int32(0), -1
	n16 := 0
	if hasVectorOps(chosen.name) {
		n16 = n &^ 15
	}
	if n16 > 0 {
		var val, idx [16]int32
		argminLanes(&dot[0], &bn[0], n16, &val, &idx)
		for l := range 16 {
			v, j := val[l], int(idx[l])
			if bi < 0 || v < best || (v == best && j < bi) {
				best, bi = v, j
			}
		}
	}
	for j := n16; j < n; j++ {
		if d := bn[j] - 2*dot[j]; bi < 0 || d < best {
			best, bi = d, j
		}
	}
	return best, bi
}
