package patchcore

import (
	"cmp"
	"math"
	"slices"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/vec"
)

// Upsample resizes a single-channel sw×sh map to dw×dh bilinearly with
// half-pixel centres (torch's interpolate, align_corners=False).
func Upsample(src []float32, sw, sh int, dst []float32, dw, dh int) {
	upsampleInto(src, sw, sh, 1, dst, dw, dh, 1)
}

// Blur is a Gaussian filter with scipy.ndimage.gaussian_filter's
// conventions: kernel radius round(4σ), weights exp(−x²/2σ²) normalised to
// sum 1, border mode "reflect" (d c b a | a b c d | d c b a), computed in
// float64. It keeps its scratch between calls.
type Blur struct {
	// Pool, when set, splits both passes across its workers; the map does
	// not depend on it.
	Pool *parallel.Pool

	sigma  float64
	kernel []float64
	tmp    []float64
	ext    [][]float64 // per worker: a reflected row, or a row of sums
	m      []float32
	w, h   int
	rows   func(lo, hi, worker int)
	cols   func(lo, hi, worker int)
}

// NewBlur returns a Gaussian blur of standard deviation sigma (pixels);
// sigma 0 leaves maps unchanged.
func NewBlur(sigma float64) *Blur {
	b := &Blur{sigma: sigma}
	if sigma <= 0 {
		return b
	}
	r := int(4*sigma + 0.5)
	b.kernel = make([]float64, 2*r+1)
	var sum float64
	for i := range b.kernel {
		x := float64(i - r)
		b.kernel[i] = math.Exp(-0.5 * x * x / (sigma * sigma))
		sum += b.kernel[i]
	}
	for i := range b.kernel {
		b.kernel[i] /= sum
	}
	b.rows, b.cols = b.blurRows, b.blurCols
	return b
}

// Apply blurs the w×h map m in place.
//
// Each output is Σ_k kernel[k]·in[reflect(i+k−r)], summed in k order from
// 0; the passes run that sum for a whole row at a time (taps outer, pixels
// inner, AxpyF64), which keeps every pixel's additions in the same order
// while the pixels of a row are independent and vectorise.
func (b *Blur) Apply(m []float32, w, h int) {
	if b.kernel == nil {
		return
	}
	if cap(b.tmp) < w*h {
		b.tmp = make([]float64, w*h)
	}
	threads := 1
	if b.Pool != nil {
		threads = b.Pool.Threads()
	}
	need := max(w+len(b.kernel), w)
	if len(b.ext) < threads || cap(b.ext[0]) < need {
		b.ext = b.ext[:0]
		for range threads {
			b.ext = append(b.ext, make([]float64, need))
		}
	}
	b.m, b.w, b.h = m, w, h
	if b.Pool != nil {
		b.Pool.Run(h, 8, b.rows)
		b.Pool.Run(h, 8, b.cols)
	} else {
		b.blurRows(0, h, 0)
		b.blurCols(0, h, 0)
	}
	b.m = nil
}

// blurRows filters rows [lo, hi) of m into tmp.
func (b *Blur) blurRows(lo, hi, worker int) {
	w := b.w
	r := len(b.kernel) / 2
	ext := b.ext[worker][:w+2*r]
	for y := lo; y < hi; y++ {
		row := b.m[y*w : (y+1)*w]
		for i := range ext {
			ext[i] = float64(row[reflect(i-r, w)])
		}
		acc := b.tmp[y*w : (y+1)*w]
		clear(acc)
		for k, kv := range b.kernel {
			vec.AxpyF64(acc, ext[k:k+w], kv)
		}
	}
}

// blurCols filters tmp along columns into rows [lo, hi) of m.
func (b *Blur) blurCols(lo, hi, worker int) {
	w, h := b.w, b.h
	r := len(b.kernel) / 2
	acc := b.ext[worker][:w]
	for y := lo; y < hi; y++ {
		clear(acc)
		for k, kv := range b.kernel {
			src := reflect(y+k-r, h)
			vec.AxpyF64(acc, b.tmp[src*w:(src+1)*w], kv)
		}
		out := b.m[y*w : (y+1)*w]
		for x, v := range acc {
			out[x] = float32(v)
		}
	}
}

// reflect maps index i into [0, n) by mirroring with the edge sample
// repeated, periodically for kernels wider than the map.
func reflect(i, n int) int {
	if i >= 0 && i < n {
		return i
	}
	p := 2 * n
	i %= p
	if i < 0 {
		i += p
	}
	if i >= n {
		i = p - 1 - i
	}
	return i
}

// Geometry relates the model input to the frame it came from: the centre
// crop (X, Y, W, H in frame pixels) was resized to InW×InH.
type Geometry struct {
	FrameW, FrameH int
	X, Y, W, H     int
	InW, InH       int
}

// ToFrame samples an input-resolution map onto the frame (FrameW×FrameH,
// row-major, into dst): bilinear inside the crop, 0 outside it.
func (g Geometry) ToFrame(m []float32, dst []float32) {
	clear(dst[:g.FrameW*g.FrameH])
	xs := bilinearTaps(g.InW, g.W)
	ys := bilinearTaps(g.InH, g.H)
	for y, ty := range ys {
		r0, r1 := m[ty.i0*g.InW:], m[ty.i1*g.InW:]
		o := dst[(g.Y+y)*g.FrameW+g.X:]
		for x, tx := range xs {
			a := float32(tx.w0*r0[tx.i0]) + float32(tx.w1*r0[tx.i1])
			b := float32(tx.w0*r1[tx.i0]) + float32(tx.w1*r1[tx.i1])
			o[x] = float32(ty.w0*a) + float32(ty.w1*b)
		}
	}
}

// Region is an anomalous area: a box in frame pixels, its peak map value,
// and its size in model-input pixels.
type Region struct {
	X    int     `json:"x"`
	Y    int     `json:"y"`
	W    int     `json:"w"`
	H    int     `json:"h"`
	Peak float64 `json:"peak"`
	Area int     `json:"area_px"`
}

// MaxRegions caps the regions reported per frame (largest peaks first).
const MaxRegions = 32

// Regions finds the 8-connected components of the w×h input map above
// threshold and returns their boxes in frame coordinates, highest peak
// first. lab is scratch of w·h int32 (reallocated if short) and is returned
// for reuse.
func (g Geometry) Regions(m []float32, threshold float64, lab []int32) ([]Region, []int32) {
	var rb regionBuf
	out, lab := g.regionsInto(m, threshold, lab, &rb)
	return slices.Clone(out), lab
}

// regionBuf is the scratch of regionsInto, kept by a Detector so that a
// frame with regions allocates nothing either.
type regionBuf struct {
	accs  []regionAcc
	out   []Region
	stack []int
}

type regionAcc struct {
	x0, y0, x1, y1, area int
	peak                 float64
}

// regionsInto is Regions into rb's buffers (the result is valid until the
// next call with rb).
func (g Geometry) regionsInto(m []float32, threshold float64, lab []int32, rb *regionBuf) ([]Region, []int32) {
	w := g.InW
	lab, n := label8Into(w, g.InH, func(i int) bool { return float64(m[i]) > threshold }, lab, &rb.stack)
	if n == 0 {
		return rb.out[:0], lab
	}
	if cap(rb.accs) < n {
		rb.accs = make([]regionAcc, n)
		rb.out = make([]Region, n)
	}
	accs := rb.accs[:n]
	for i := range accs {
		accs[i] = regionAcc{x0: w, y0: g.InH, x1: -1, y1: -1, peak: math.Inf(-1)}
	}
	for p, l := range lab {
		if l == 0 {
			continue
		}
		a := &accs[l-1]
		x, y := p%w, p/w
		a.x0, a.y0, a.x1, a.y1 = min(a.x0, x), min(a.y0, y), max(a.x1, x), max(a.y1, y)
		a.peak = max(a.peak, float64(m[p]))
		a.area++
	}
	out := rb.out[:n]
	for i, a := range accs {
		out[i] = g.box(a.x0, a.y0, a.x1, a.y1, a.peak, a.area)
	}
	slices.SortStableFunc(out, func(a, b Region) int { return cmp.Compare(b.Peak, a.Peak) })
	if len(out) > MaxRegions {
		out = out[:MaxRegions]
	}
	return out, lab
}

// box converts an inclusive input-pixel box to frame pixels, covering every
// frame pixel that maps into it.
func (g Geometry) box(x0, y0, x1, y1 int, peak float64, area int) Region {
	sx := float64(g.W) / float64(g.InW)
	sy := float64(g.H) / float64(g.InH)
	fx0 := g.X + int(math.Floor(float64(x0)*sx))
	fy0 := g.Y + int(math.Floor(float64(y0)*sy))
	fx1 := g.X + min(g.W, int(math.Ceil(float64(x1+1)*sx)))
	fy1 := g.Y + min(g.H, int(math.Ceil(float64(y1+1)*sy)))
	return Region{X: fx0, Y: fy0, W: fx1 - fx0, H: fy1 - fy0, Peak: peak, Area: area}
}
