package patchcore

import (
	"math"
	"slices"
)

// floatRef scores with float32 bank vectors instead of the int8 bank: the
// reference that measures what int8 costs (see the bottle test). It is a
// plain exhaustive search; nothing on the hot path uses it.
type floatRef struct {
	vecs []float32 // Count×Dim, same order as the bank
	vec  []float32 // the frame's float patch vectors
}

// useFloatReference makes d score with float bank vectors.
func (d *Detector) useFloatReference(vecs []float32) {
	d.ref = &floatRef{vecs: vecs}
}

// floatPatchScores fills d.patch and d.nn from float distances.
func (d *Detector) floatPatchScores(vecs []float32) {
	dim := d.meta.Dim
	n := len(d.ref.vecs) / dim
	d.ref.vec = append(d.ref.vec[:0], vecs...)
	cells := len(d.patch)
	d.pool.Run(cells, 8, func(lo, hi, _ int) {
		for i := lo; i < hi; i++ {
			q := vecs[i*dim : (i+1)*dim]
			best, bi := math.Inf(1), -1
			for j := range n {
				if dd := sqDist(q, d.ref.vecs[j*dim:(j+1)*dim]); dd < best {
					best, bi = dd, j
				}
			}
			d.patch[i] = float32(math.Sqrt(best))
			d.nn[i] = int32(bi)
		}
	})
}

// floatReweight is Eq. 7 with float vectors.
func (d *Detector) floatReweight(p int, sStar float64) float64 {
	if d.meta.Score.B <= 1 {
		return sStar
	}
	dim := d.meta.Dim
	bank := d.ref.vecs
	n := len(bank) / dim
	m := int(d.nn[p])
	mv := bank[m*dim : (m+1)*dim]
	type nd struct {
		d float64
		j int
	}
	all := make([]nd, 0, n)
	for j := range n {
		if j != m {
			all = append(all, nd{sqDist(mv, bank[j*dim:(j+1)*dim]), j})
		}
	}
	slices.SortStableFunc(all, func(a, b nd) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		}
		return 0
	})
	q := d.ref.vec[p*dim : (p+1)*dim]
	dists := []float64{sStar}
	for _, e := range all[:min(len(all), d.meta.Score.B-1)] {
		dists = append(dists, math.Sqrt(sqDist(q, bank[e.j*dim:(e.j+1)*dim])))
	}
	return Reweight(dists)
}

func sqDist(a, b []float32) float64 {
	var s float64
	b = b[:len(a)]
	for i, v := range a {
		x := float64(v - b[i])
		s += x * x
	}
	return s
}
