package rgb

import (
	"fmt"
	"math"
)

// Resizer scales images with a bilinear (triangle) filter whose support
// widens with the scale factor when shrinking, so a 900-pixel frame averages
// every source pixel into a 224-pixel input instead of sampling a few (plain
// bilinear would alias). Coefficients are computed once per geometry; Resize
// allocates nothing after the first call with a given size.
type Resizer struct {
	key    [5]int
	crop   [4]int
	xs, ys []contrib
	tmp    []float32
}

type contrib struct {
	start   int
	weights []float32
}

// CenterCrop returns the centred square-ish window of a w×h frame that keeps
// fraction f (0 < f <= 1) of its shorter side, as x, y, width, height. f <= 0
// or f >= 1 keeps the whole frame.
func CenterCrop(w, h int, f float64) (x, y, cw, ch int) {
	if f <= 0 || f >= 1 {
		return 0, 0, w, h
	}
	side := int(math.Round(float64(min(w, h)) * f))
	side = max(side, 1)
	return (w - side) / 2, (h - side) / 2, side, side
}

// Resize scales the window (x, y, cw, ch) of src into dst, whose W and H
// set the output size.
func (r *Resizer) Resize(src *Image, x, y, cw, ch int, dst *Image) error {
	if cw <= 0 || ch <= 0 || x < 0 || y < 0 || x+cw > src.W || y+ch > src.H {
		return fmt.Errorf("rgb: window %d,%d %dx%d outside a %dx%d image", x, y, cw, ch, src.W, src.H)
	}
	if dst.W <= 0 || dst.H <= 0 || len(dst.Pix) < 3*dst.W*dst.H {
		return fmt.Errorf("rgb: destination %dx%d has no room", dst.W, dst.H)
	}
	key := [5]int{cw, ch, dst.W, dst.H, src.W}
	if key != r.key || r.xs == nil {
		r.key = key
		r.xs = contributions(cw, dst.W)
		r.ys = contributions(ch, dst.H)
		r.tmp = make([]float32, 3*dst.W*ch)
	}
	// Horizontal pass into tmp (dst.W x ch), then vertical into dst.
	for yy := 0; yy < ch; yy++ {
		row := src.Pix[3*((y+yy)*src.W+x):]
		out := r.tmp[3*dst.W*yy:]
		for ox, c := range r.xs {
			var s0, s1, s2 float32
			for k, w := range c.weights {
				p := 3 * (c.start + k)
				// The float32() round each product: without them
				// Go fuses multiply and add on arm64 (FMA) and not on
				// amd64, and frames would differ by a level between the two.
				s0 += float32(w * float32(row[p]))
				s1 += float32(w * float32(row[p+1]))
				s2 += float32(w * float32(row[p+2]))
			}
			out[3*ox], out[3*ox+1], out[3*ox+2] = s0, s1, s2
		}
	}
	stride := 3 * dst.W
	for oy, c := range r.ys {
		out := dst.Pix[stride*oy : stride*(oy+1)]
		for i := range out {
			var s float32
			for k, w := range c.weights {
				s += float32(w * r.tmp[stride*(c.start+k)+i]) // no FMA, as above
			}
			out[i] = uint8(min(max(s+0.5, 0), 255))
		}
	}
	return nil
}

// contributions computes, for each output pixel, the source pixels and
// normalised triangle weights covering it (pixel centres at +0.5).
func contributions(in, out int) []contrib {
	scale := float64(in) / float64(out)
	support := math.Max(scale, 1) // triangle radius in source pixels
	cs := make([]contrib, out)
	for o := range cs {
		center := (float64(o) + 0.5) * scale
		lo := max(int(math.Floor(center-support)), 0)
		hi := min(int(math.Ceil(center+support)), in)
		ws := make([]float32, 0, hi-lo)
		var sum float64
		for i := lo; i < hi; i++ {
			d := math.Abs((float64(i) + 0.5 - center) / math.Max(scale, 1))
			w := math.Max(0, 1-d)
			ws = append(ws, float32(w))
			sum += w
		}
		// Trim zero weights at the ends so loops stay short.
		start := lo
		for len(ws) > 1 && ws[0] == 0 {
			ws = ws[1:]
			start++
		}
		for len(ws) > 1 && ws[len(ws)-1] == 0 {
			ws = ws[:len(ws)-1]
		}
		if sum == 0 {
			ws, sum = []float32{1}, 1
			start = min(max(int(center), 0), in-1)
		}
		for i := range ws {
			ws[i] = float32(float64(ws[i]) / sum)
		}
		cs[o] = contrib{start: start, weights: ws}
	}
	return cs
}
