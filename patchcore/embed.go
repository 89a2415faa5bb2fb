package patchcore

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/vec"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
)

// Embedder turns a backbone's taps into patch vectors. It reuses its
// buffers: Embed allocates nothing after construction.
type Embedder struct {
	taps    []model.TensorInfo
	raw     [][]byte
	pooled  [][]float32
	rowSums [][]int32 // pool3x3 scratch per quantized tap

	// Pool, when set, splits pooling, upsampling and projection across
	// its workers; the vectors do not depend on it.
	Pool *parallel.Pool

	cur, curOff, curStride       int // the tap being embedded, for the loop bodies
	curDst                       []float32
	hsumFn, vsumFn, upFn, projFn func(lo, hi, worker int)
	gridW                        int
	gridH                        int
	concat                       int // length before projection
	dim                          int // length of the vectors handed out
	out                          []float32
	full                         []float32 // concatenated vectors when projecting
	proj                         []float32 // concat×dim, row-major
	tapDims                      []int
}

// NewEmbedder prepares embedding for the given taps (NHWC, batch 1). The
// first tap sets the patch grid; the others must not be larger. project > 0
// adds a seeded Gaussian projection to that many dimensions.
func NewEmbedder(taps []model.TensorInfo, project int, seed uint64) (*Embedder, error) {
	if len(taps) == 0 {
		return nil, fmt.Errorf("patchcore: no taps to embed")
	}
	e := &Embedder{taps: taps}
	for i, t := range taps {
		if len(t.Shape) != 4 || t.Shape[0] != 1 || t.Shape[1] <= 0 || t.Shape[2] <= 0 || t.Shape[3] <= 0 {
			return nil, fmt.Errorf("patchcore: tap %q has shape %v; want 1xHxWxC", t.Name, t.Shape)
		}
		switch t.Type {
		case tflite.Int8, tflite.Uint8:
			if len(t.Scale) != 1 {
				return nil, fmt.Errorf("patchcore: tap %q is quantized per channel; feature maps must be per tensor", t.Name)
			}
		case tflite.Float32:
		default:
			return nil, fmt.Errorf("patchcore: tap %q has type %v; want INT8, UINT8 or FLOAT32", t.Name, t.Type)
		}
		h, w := t.Shape[1], t.Shape[2]
		if i == 0 {
			e.gridH, e.gridW = h, w
		} else if h > e.gridH || w > e.gridW {
			return nil, fmt.Errorf("patchcore: tap %q (%dx%d) is larger than the first tap's grid %dx%d; list the finest tap first", t.Name, w, h, e.gridW, e.gridH)
		}
		e.raw = append(e.raw, make([]byte, t.Bytes()))
		e.pooled = append(e.pooled, make([]float32, t.Elements()))
		var hs []int32
		if t.Type != tflite.Float32 {
			hs = make([]int32, t.Elements())
		}
		e.rowSums = append(e.rowSums, hs)
		e.tapDims = append(e.tapDims, t.Shape[3])
		e.concat += t.Shape[3]
	}
	e.dim = e.concat
	cells := e.gridW * e.gridH
	if project > 0 {
		e.dim = project
		e.full = make([]float32, cells*e.concat)
		e.proj = gaussianMatrix(e.concat, project, seed)
	}
	e.out = make([]float32, cells*e.dim)
	e.hsumFn, e.vsumFn, e.upFn, e.projFn = e.hsum, e.vsum, e.up, e.project
	return e, nil
}

// gaussianMatrix returns rows×cols N(0, 1/cols) values from a seeded
// generator. Box-Muller over math.Log/Sqrt/Cos: pure Go on every port, so
// the matrix is the same everywhere.
func gaussianMatrix(rows, cols int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x656d626564)) // "embed"
	m := make([]float32, rows*cols)
	sd := 1 / math.Sqrt(float64(cols))
	for i := range m {
		u1 := 1 - rng.Float64() // (0, 1]
		u2 := rng.Float64()
		m[i] = float32(math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2) * sd)
	}
	return m
}

// Grid is the patch grid (width, height).
func (e *Embedder) Grid() (w, h int) { return e.gridW, e.gridH }

// Dim is the length of each patch vector.
func (e *Embedder) Dim() int { return e.dim }

// TapDims is the channel count of each tap.
func (e *Embedder) TapDims() []int { return e.tapDims }

// Embed reads the taps of b (after Invoke) and returns gridW·gridH patch
// vectors of Dim values, row-major over the grid. The slice is reused by the
// next call.
func (e *Embedder) Embed(b model.Backbone) ([]float32, error) {
	for i, t := range e.taps {
		if err := b.ReadOutput(i, e.raw[i]); err != nil {
			return nil, fmt.Errorf("patchcore: reading tap %q: %w", t.Name, err)
		}
	}
	return e.embedRaw(), nil
}

// tapBytes is the size of the taps as the backbone hands them out (int8
// maps: one byte a value, before pooling and upsampling).
func (e *Embedder) tapBytes() int {
	n := 0
	for _, r := range e.raw {
		n += len(r)
	}
	return n
}

// saveTaps copies the taps the last Embed read into dst (tapBytes long),
// so that reembed can give the same vectors later without the backbone.
func (e *Embedder) saveTaps(dst []byte) {
	for _, r := range e.raw {
		dst = dst[copy(dst, r):]
	}
}

// reembed returns the patch vectors of taps saved by saveTaps: the very
// vectors Embed returned then (the same arithmetic on the same bytes).
func (e *Embedder) reembed(src []byte) []float32 {
	for _, r := range e.raw {
		src = src[copy(r, src):]
	}
	return e.embedRaw()
}

// embedRaw embeds the taps in e.raw.
func (e *Embedder) embedRaw() []float32 {
	dst, stride := e.out, e.dim
	if e.proj != nil {
		dst, stride = e.full, e.concat
	}
	off := 0
	for i, t := range e.taps {
		e.cur, e.curOff, e.curDst, e.curStride = i, off, dst, stride
		h := t.Shape[1]
		if t.Type == tflite.Float32 || e.Pool == nil {
			pool3x3(t, e.raw[i], e.pooled[i], e.rowSums[i])
			upsampleRows(e.pooled[i], t.Shape[2], h, t.Shape[3], dst[off:], e.gridW, e.gridH, stride, 0, e.gridH)
		} else {
			// Row sums of every row before the column sums that read
			// them, then the upsampling of the pooled map.
			e.Pool.Run(h, 4, e.hsumFn)
			e.Pool.Run(h, 4, e.vsumFn)
			e.Pool.Run(e.gridH, 4, e.upFn)
		}
		off += t.Shape[3]
	}
	if e.proj != nil {
		if e.Pool == nil {
			e.project(0, e.gridW*e.gridH, 0)
		} else {
			e.Pool.Run(e.gridW*e.gridH, 16, e.projFn)
		}
	}
	return e.out
}

func (e *Embedder) hsum(lo, hi, _ int) {
	t := e.taps[e.cur]
	pool3x3RowSums(t, e.raw[e.cur], e.rowSums[e.cur], lo, hi)
}

func (e *Embedder) vsum(lo, hi, _ int) {
	t := e.taps[e.cur]
	pool3x3ColSums(t, e.rowSums[e.cur], e.pooled[e.cur], lo, hi)
}

func (e *Embedder) up(lo, hi, _ int) {
	t := e.taps[e.cur]
	upsampleRows(e.pooled[e.cur], t.Shape[2], t.Shape[1], t.Shape[3], e.curDst[e.curOff:], e.gridW, e.gridH, e.curStride, lo, hi)
}

func (e *Embedder) project(lo, hi, _ int) {
	for p := lo; p < hi; p++ {
		src := e.full[p*e.concat : (p+1)*e.concat]
		dst := e.out[p*e.dim : (p+1)*e.dim]
		clear(dst)
		for i, v := range src {
			row := e.proj[i*e.dim : (i+1)*e.dim]
			for j, r := range row {
				// The conversion rounds the product: no fused multiply-add, so
				// every architecture gets the same sums.
				dst[j] += float32(v * r)
			}
		}
	}
}

// pool3x3 dequantizes an NHWC map and averages it over 3×3 windows (stride
// 1, zero padding 1, always divided by 9). Quantized maps are summed exactly
// in integers, as separable row then column sums of q − zp (hs holds the
// row sums, h·w·c), and scaled once.
func pool3x3(t model.TensorInfo, raw []byte, dst []float32, hs []int32) {
	h := t.Shape[1]
	if t.Type == tflite.Float32 {
		pool3x3Float(h, t.Shape[2], t.Shape[3], raw, dst)
		return
	}
	pool3x3RowSums(t, raw, hs, 0, h)
	pool3x3ColSums(t, hs, dst, 0, h)
}

// pool3x3RowSums writes rows [lo, hi) of hs: each value less the zero point
// plus its left and right neighbours inside the row.
func pool3x3RowSums(t model.TensorInfo, raw []byte, hs []int32, lo, hi int) {
	w, c := t.Shape[2], t.Shape[3]
	zp := int32(t.ZeroPoint[0])
	signed := t.Type == tflite.Int8
	val := func(b byte) int32 {
		if signed {
			return int32(int8(b)) - zp
		}
		return int32(b) - zp
	}
	row := w * c
	for y := lo; y < hi; y++ {
		src := raw[y*row : (y+1)*row]
		out := hs[y*row : (y+1)*row]
		for x := range w {
			o := out[x*c : (x+1)*c]
			for ch := range o {
				o[ch] = val(src[x*c+ch])
			}
			if x > 0 {
				l := src[(x-1)*c : x*c]
				for ch := range o {
					o[ch] += val(l[ch])
				}
			}
			if x+1 < w {
				r := src[(x+1)*c : (x+2)*c]
				for ch := range o {
					o[ch] += val(r[ch])
				}
			}
		}
	}
}

// pool3x3ColSums writes rows [lo, hi) of dst from the row sums above, at
// and below each row, scaled once.
func pool3x3ColSums(t model.TensorInfo, hs []int32, dst []float32, lo, hi int) {
	h, w, c := t.Shape[1], t.Shape[2], t.Shape[3]
	k := t.Scale[0] / 9
	row := w * c
	for y := lo; y < hi; y++ {
		d := dst[y*row : (y+1)*row]
		mid := hs[y*row : (y+1)*row]
		var up, down []int32
		if y > 0 {
			up = hs[(y-1)*row : y*row]
		}
		if y+1 < h {
			down = hs[(y+1)*row : (y+2)*row]
		}
		for i, v := range mid {
			s := v
			if up != nil {
				s += up[i]
			}
			if down != nil {
				s += down[i]
			}
			d[i] = float32(s) * k
		}
	}
}

// pool3x3Float is pool3x3 for float32 maps, summing each window in row-major
// order as banks built from float models were.
func pool3x3Float(h, w, c int, raw []byte, dst []float32) {
	at := func(i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])) }
	for y := range h {
		for x := range w {
			for ch := range c {
				var sf float32
				for dy := -1; dy <= 1; dy++ {
					yy := y + dy
					if yy < 0 || yy >= h {
						continue
					}
					for dx := -1; dx <= 1; dx++ {
						xx := x + dx
						if xx < 0 || xx >= w {
							continue
						}
						sf += at((yy*w+xx)*c + ch)
					}
				}
				dst[(y*w+x)*c+ch] = sf / 9
			}
		}
	}
}

// upsampleInto resizes an h×w×c map to gh×gw bilinearly with half-pixel
// centres (torch's align_corners=False: source coordinate (d+0.5)·in/out −
// 0.5, clamped at 0) and writes channel ch of cell p at dst[p*stride+ch].
// Same-size maps are copied.
func upsampleInto(src []float32, w, h, c int, dst []float32, gw, gh, stride int) {
	upsampleRows(src, w, h, c, dst, gw, gh, stride, 0, gh)
}

// upsampleRows is upsampleInto for output rows [lo, hi).
func upsampleRows(src []float32, w, h, c int, dst []float32, gw, gh, stride, lo, hi int) {
	xs := bilinearTaps(w, gw)
	ys := bilinearTaps(h, gh)
	for y := lo; y < hi; y++ {
		ty := ys[y]
		r0, r1 := src[ty.i0*w*c:], src[ty.i1*w*c:]
		for x, tx := range xs {
			// Across the channels at once (a vector kernel), each value
			// computed as a = wx0·r0[i0] + wx1·r0[i1], b likewise from
			// r1, o = wy0·a + wy1·b, every product rounded.
			wt := [4]float32{tx.w0, tx.w1, ty.w0, ty.w1}
			o := dst[(y*gw+x)*stride:][:c]
			vec.Lerp2x2(o, r0[tx.i0*c:], r0[tx.i1*c:], r1[tx.i0*c:], r1[tx.i1*c:], &wt)
		}
	}
}

type lerp struct {
	i0, i1 int
	w0, w1 float32
}

// bilinearTaps returns, for each of out positions, the two source indices
// and weights of half-pixel bilinear resampling from in positions.
func bilinearTaps(in, out int) []lerp {
	k := [2]int{in, out}
	tapCache.Lock()
	defer tapCache.Unlock()
	if t, ok := tapCache.m[k]; ok {
		return t
	}
	if tapCache.m == nil || len(tapCache.m) > 64 {
		tapCache.m = map[[2]int][]lerp{}
	}
	t := computeTaps(in, out)
	tapCache.m[k] = t
	return t
}

// tapCache keeps the taps per size pair (read-only once made): the same
// few sizes recur every frame, and a frame must not allocate.
var tapCache struct {
	sync.Mutex
	m map[[2]int][]lerp
}

func computeTaps(in, out int) []lerp {
	t := make([]lerp, out)
	scale := float32(in) / float32(out)
	for d := range t {
		s := float32(scale*(float32(d)+0.5)) - 0.5 // rounded product: no FMA
		if s < 0 {
			s = 0
		}
		i0 := min(int(s), in-1)
		i1 := min(i0+1, in-1)
		l1 := s - float32(i0)
		if i0 == in-1 {
			l1 = 0
		}
		t[d] = lerp{i0: i0, i1: i1, w0: 1 - l1, w1: l1}
	}
	return t
}
