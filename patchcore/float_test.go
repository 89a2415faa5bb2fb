package patchcore

import (
	"math"
	"slices"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/rgb"
)

// floatScorer scores with float32 bank vectors instead of the int8 bank:
// the reference that measures what int8 costs (see the bottle test). It
// shares the detector's preprocessing, backbone, embedding and map, and
// replaces the int8 search and Eq. 7 with a plain exhaustive float search.
type floatScorer struct {
	d    *Detector
	vecs []float32 // Count×Dim, same order as the bank
}

func (f *floatScorer) Bank() *bank.Bank { return f.d.Bank() }

func (f *floatScorer) InspectInto(img *rgb.Image, r *Result) error {
	d := f.d
	if err := d.embedFrame(img, r); err != nil {
		return err
	}
	f.patchScores(d.vecs)
	best, sStar := d.patchMax()
	score := sStar
	if d.meta.Score.Image == ImageEq7 {
		score = f.reweight(best, sStar)
	}
	d.finish(img.W, img.H, r, score, sStar)
	return nil
}

// patchScores fills d.patch and d.nn from float distances.
func (f *floatScorer) patchScores(vecs []float32) {
	d := f.d
	dim := d.meta.Dim
	n := len(f.vecs) / dim
	cells := len(d.patch)
	d.pool.Run(cells, 8, func(lo, hi, _ int) {
		for i := lo; i < hi; i++ {
			q := vecs[i*dim : (i+1)*dim]
			best, bi := math.Inf(1), -1
			for j := range n {
				if dd := sqDist(q, f.vecs[j*dim:(j+1)*dim]); dd < best {
					best, bi = dd, j
				}
			}
			d.patch[i] = float32(math.Sqrt(best))
			d.nn[i] = int32(bi)
		}
	})
}

// reweight is Eq. 7 with float vectors.
func (f *floatScorer) reweight(p int, sStar float64) float64 {
	d := f.d
	if d.meta.Score.B <= 1 {
		return sStar
	}
	dim := d.meta.Dim
	bank := f.vecs
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
	q := d.vecs[p*dim : (p+1)*dim]
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
