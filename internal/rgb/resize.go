package rgb

import (
	"fmt"
	"math"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/vec"
)

// Resizer scales images with a bilinear (triangle) filter whose support
// widens with the scale factor when shrinking, so a 900-pixel frame averages
// every source pixel into a 224-pixel input instead of sampling a few (plain
// bilinear would alias). Coefficients are computed once per geometry; Resize
// allocates nothing after the first call with a given size.
type Resizer struct {
	// Pool, when set, splits both passes across its workers; the result
	// does not depend on it.
	Pool *parallel.Pool

	key    [5]int
	src    *Image
	x, y   int
	dst    *Image
	xs, ys []contrib
	taps   int         // every xs filter's length
	acc    [][]float32 // per worker: one window row of vertical sums
	rowsFn func(lo, hi, worker int)
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
	threads := 1
	if r.Pool != nil {
		threads = r.Pool.Threads()
	}
	key := [5]int{cw, ch, dst.W, dst.H, src.W}
	if key != r.key || r.xs == nil || len(r.acc) < threads {
		r.key = key
		r.xs = contributions(cw, dst.W)
		r.taps = padContribs(r.xs, cw)
		r.ys = contributions(ch, dst.H)
		r.acc = r.acc[:0]
		for range threads {
			r.acc = append(r.acc, make([]float32, 3*cw))
		}
		r.rowsFn = r.rows
	}
	r.src, r.x, r.y, r.dst = src, x, y, dst
	if r.Pool != nil {
		r.Pool.Run(dst.H, 8, r.rowsFn)
	} else {
		r.rows(0, dst.H, 0)
	}
	r.src, r.dst = nil, nil
	return nil
}

// rows computes output rows [lo, hi): for each, the vertical filter over
// the window's source rows into one row of sums (a vector kernel: every
// value's sum is its own, taken in tap order), then the horizontal filter
// of that row, rounded to bytes. Filtering vertically first runs the
// per-pixel horizontal taps on dst.H rows instead of the window's ch (720
// for a 720p frame), and the sums stay in cache.
func (r *Resizer) rows(lo, hi, worker int) {
	src := r.src
	cw := r.key[0]
	acc := r.acc[worker][:3*cw]
	for oy := lo; oy < hi; oy++ {
		c := r.ys[oy]
		clear(acc)
		for k, w := range c.weights {
			row := src.Pix[3*((r.y+c.start+k)*src.W+r.x):][:3*cw]
			vec.AxpyBytesF32(acc, row, w)
		}
		r.horizontal(acc, r.dst.Pix[3*r.dst.W*oy:3*r.dst.W*(oy+1)])
	}
}

// horizontal filters one row of vertical sums into an output row.
func (r *Resizer) horizontal(acc []float32, out []uint8) {
	// Two output pixels at a time (the filters were padded to one
	// length): six independent sums hide the latency of the additions,
	// each still summed in tap order.
	n := r.taps
	ox := 0
	for ; ox+1 < len(r.xs); ox += 2 {
		c, d := &r.xs[ox], &r.xs[ox+1]
		pc := acc[3*c.start : 3*(c.start+n)]
		pd := acc[3*d.start : 3*(d.start+n)]
		wc, wd := c.weights[:n], d.weights[:n]
		var s0, s1, s2, t0, t1, t2 float32
		for k := range n {
			p := pc[3*k : 3*k+3 : 3*k+3]
			q := pd[3*k : 3*k+3 : 3*k+3]
			w, v := wc[k], wd[k]
			// The float32() round each product: without them Go fuses
			// multiply and add on arm64 (FMA) and not on amd64, and
			// frames would differ by a level between the two.
			s0 += float32(w * p[0])
			s1 += float32(w * p[1])
			s2 += float32(w * p[2])
			t0 += float32(v * q[0])
			t1 += float32(v * q[1])
			t2 += float32(v * q[2])
		}
		o := out[3*ox : 3*ox+6 : 3*ox+6]
		o[0], o[1], o[2], o[3], o[4], o[5] = toByte(s0), toByte(s1), toByte(s2), toByte(t0), toByte(t1), toByte(t2)
	}
	if ox < len(r.xs) {
		c := &r.xs[ox]
		var s0, s1, s2 float32
		px := acc[3*c.start : 3*(c.start+n)]
		for k, w := range c.weights[:n] {
			p := px[3*k : 3*k+3 : 3*k+3]
			s0 += float32(w * p[0]) // no FMA, as above
			s1 += float32(w * p[1])
			s2 += float32(w * p[2])
		}
		out[3*ox], out[3*ox+1], out[3*ox+2] = toByte(s0), toByte(s1), toByte(s2)
	}
}

// toByte rounds a filtered value to the nearest level (halves up), clamped.
func toByte(s float32) uint8 { return uint8(min(max(s+0.5, 0), 255)) }

// padContribs extends every filter with zero weights to the longest one's
// length (within the source's n pixels), so the horizontal pass runs one
// loop shape. A zero tap adds +0 to a sum of non-negative terms, which
// leaves it bit for bit unchanged. It returns the common length.
func padContribs(cs []contrib, n int) int {
	taps := 0
	for _, c := range cs {
		taps = max(taps, len(c.weights))
	}
	taps = min(taps, n)
	for i := range cs {
		c := &cs[i]
		extra := taps - len(c.weights)
		if extra == 0 {
			continue
		}
		// Zeros after the taps where the source allows, before them
		// otherwise (a zero first adds +0 to +0).
		after := min(extra, n-(c.start+len(c.weights)))
		before := extra - after
		ws := make([]float32, 0, taps)
		ws = append(ws, make([]float32, before)...)
		ws = append(ws, c.weights...)
		ws = append(ws, make([]float32, after)...)
		c.start -= before
		c.weights = ws
	}
	return taps
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
