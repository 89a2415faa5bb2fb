package patchcore

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/qgemm"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/tflite"
)

// ErrMismatch: a bank does not belong to the model it is used with.
var ErrMismatch = errors.New("patchcore: bank and model do not match")

// Options configures a Detector.
type Options struct {
	// Threads for the backbone and the search (0: 1).
	Threads int
	// Open makes the backbone; nil uses the pure-Go engine.
	Open func(m *tflite.Model, taps []string, threads int) (model.Backbone, error)
}

// Detector scores frames against one bank with one backbone. It reuses its
// buffers; it is not safe for concurrent use, except SetThreshold and
// Threshold, which may be called from any goroutine.
type Detector struct {
	bank    *bank.Bank
	meta    *bank.Meta
	bb      model.Backbone
	fr      *framer
	emb     *Embedder
	pool    *parallel.Pool
	search  *bank.Searcher
	blur    *Blur
	vecs    []float32 // the frame's patch vectors, for quantFn
	quantFn func(lo, hi, worker int)

	// override is the operator's threshold (math.Float64bits; 0 = the
	// bank's calibrated one).
	override atomic.Uint64

	q     []int8
	d2    []int32
	nn    []int32
	patch []float32
	amap  []float32
	inW   int // the model input's size (Backbone.Input allocates its shape)
	inH   int
	mapW  int // the map's size: the model input's, or the canvas with tiles
	mapH  int
	tmap  []float32 // one tile's map (tiles only)
	lab   []int32
	rb    regionBuf
	nbIdx []int32
	nbD2  []int32
	dists []float64

	// The region of interest (nil: the whole frame): the patch cells
	// scored, each cell's row in the compacted search (-1 outside), and
	// the input pixels inside.
	roiCells []int32
	cellRow  []int32
	roiPix   []bool
}

// Stage is one step of scoring a frame; its String is the name used in
// results, metrics and benchmarks.
type Stage int

// The stages of InspectInto, in order.
const (
	StagePreprocess Stage = iota // resize and quantize the frame into the model input
	StageBackbone                // the backbone up to its last tap
	StageEmbed                   // patch vectors from the taps, quantized to the bank's scale
	StageSearch                  // nearest bank vector per patch, and the image score
	StageMap                     // anomaly map, blur and regions
	NumStages
)

var stageNames = [NumStages]string{"preprocess", "backbone", "embed", "search", "map"}

func (s Stage) String() string {
	if s < 0 || s >= NumStages {
		return fmt.Sprintf("stage(%d)", int(s))
	}
	return stageNames[s]
}

// Timing is the time spent in each stage of one frame.
type Timing [NumStages]time.Duration

// Total is the sum of the stages.
func (t *Timing) Total() time.Duration {
	var s time.Duration
	for _, d := range t {
		s += d
	}
	return s
}

// Result is the outcome of one frame. Map and Regions are reused by the
// next InspectInto: copy them to keep them.
type Result struct {
	Score      float64 // image score, feature units
	Normalized float64 // in [0, 1], 0.5 at the threshold
	Fail       bool    // Score > Threshold
	Threshold  float64 // the threshold in force: the bank's, or the operator's
	PatchMax   float64 // largest patch score (s*)
	// Map is the anomaly map at model-input resolution (Geometry.InW×InH).
	Map      []float32
	Geometry Geometry
	Regions  []Region
	Timing   Timing
}

// Open prepares scoring with bank b and backbone file mf. It refuses a
// bank made with another model or a recipe this build does not implement.
func Open(b *bank.Bank, mf *model.File, opts Options) (*Detector, error) {
	meta := &b.Meta
	if mf.SHA256 != meta.Model.SHA256 {
		return nil, fmt.Errorf("%w: model sha256 %s, bank %d was built with %s (%s)", ErrMismatch, short(mf.SHA256), meta.Version, short(meta.Model.SHA256), meta.Model.Path)
	}
	if err := CheckRecipe(meta); err != nil {
		return nil, err
	}
	threads := max(opts.Threads, 1)
	// One pool for every stage, the backbone's operators included (see
	// engine.Options.Pool).
	pool := parallel.New(threads)
	open := opts.Open
	if open == nil {
		open = func(m *tflite.Model, taps []string, threads int) (model.Backbone, error) {
			return engine.NewInterpreter(m, engine.Options{Pool: pool, Taps: taps})
		}
	}
	// The bank's input size, which may not be the one stored in the file.
	m, err := atSize(mf.Model, meta.Model.Taps, meta.Preprocess.Width, meta.Preprocess.Height)
	if err != nil {
		pool.Close()
		return nil, err
	}
	bb, err := open(m, meta.Model.Taps, threads)
	if err != nil {
		pool.Close()
		return nil, err
	}
	d, err := newDetector(b, bb, pool)
	if err != nil {
		bb.Close()
		pool.Close()
		return nil, err
	}
	return d, nil
}

// newDetector scores with backbone bb on pool; Close closes both.
func newDetector(b *bank.Bank, bb model.Backbone, pool *parallel.Pool) (*Detector, error) {
	meta := &b.Meta
	in := bb.Input()
	if len(in.Shape) != 4 || in.Shape[2] != meta.Preprocess.Width || in.Shape[1] != meta.Preprocess.Height {
		return nil, fmt.Errorf("%w: model input %v, bank expects %dx%d", ErrMismatch, in.Shape, meta.Preprocess.Width, meta.Preprocess.Height)
	}
	emb, err := NewEmbedder(bb.Outputs(), meta.Embed.Project, meta.Embed.ProjectSeed)
	if err != nil {
		return nil, err
	}
	gw0, gh0 := emb.Grid()
	fr, err := newFramer(in, meta.Preprocess.Crop, meta.Preprocess.Tiles, gw0*gh0*emb.Dim())
	if err != nil {
		return nil, err
	}
	gw, gh := emb.Grid()
	if gw != meta.Embed.GridW || gh != meta.Embed.GridH || emb.Dim() != meta.Dim || !slices.Equal(emb.TapDims(), meta.Embed.TapDims) {
		return nil, fmt.Errorf("%w: taps give a %dx%d grid of %d-d vectors %v, bank %d holds %dx%d, %d-d %v", ErrMismatch,
			gw, gh, emb.Dim(), emb.TapDims(), meta.Version, meta.Embed.GridW, meta.Embed.GridH, meta.Dim, meta.Embed.TapDims)
	}
	cells := gw * gh * fr.count()
	fr.feeder.SetPool(pool)
	blur := NewBlur(meta.Score.Sigma)
	blur.Pool = pool
	emb.Pool = pool
	d := &Detector{
		bank: b, meta: meta, bb: bb, fr: fr, emb: emb, pool: pool,
		search: bank.NewSearcher(b, pool),
		blur:   blur,
		q:      make([]int8, cells*meta.Dim),
		d2:     make([]int32, cells),
		nn:     make([]int32, cells),
		patch:  make([]float32, cells),
		inW:    in.Shape[2],
		inH:    in.Shape[1],
		mapW:   in.Shape[2],
		mapH:   in.Shape[1],
	}
	if tl := meta.Preprocess.Tiles; tl != nil {
		d.mapW, d.mapH = tl.CanvasW, tl.CanvasH
		d.tmap = make([]float32, d.inW*d.inH)
	}
	d.amap = make([]float32, d.mapW*d.mapH)
	d.quantFn = d.quantizeRange
	if d.roiCells, d.roiPix, err = frameROICells(meta.Preprocess.ROI, meta.Preprocess.Tiles, d.inW, d.inH, gw, gh); err != nil {
		return nil, err
	}
	if d.roiCells != nil {
		d.cellRow = make([]int32, cells)
		for i := range d.cellRow {
			d.cellRow[i] = -1
		}
		for k, c := range d.roiCells {
			d.cellRow[c] = int32(k)
		}
	}
	return d, nil
}

// quantizeRange quantizes patch vector values [lo, hi) of the current
// frame into d.q with the bank's scale.
func (d *Detector) quantizeRange(lo, hi, _ int) {
	bank.Quantize(d.vecs[lo:hi], d.meta.Scale, d.q[lo:hi])
}

// Close releases the backbone and the worker pool.
func (d *Detector) Close() error {
	err := d.bb.Close() // first: the backbone may run on the pool
	d.pool.Close()
	return err
}

// Bank is the bank the detector scores against.
func (d *Detector) Bank() *bank.Bank { return d.bank }

// Backbone is the detector's backbone.
func (d *Detector) Backbone() model.Backbone { return d.bb }

// Grid is the patch grid of one tile (of the frame without tiles).
func (d *Detector) Grid() (w, h int) { return d.emb.Grid() }

// Patches is the number of patch vectors per frame: the grid times the
// tiles.
func (d *Detector) Patches() int { return len(d.patch) }

// SetThreshold overrides the bank's calibrated threshold with t from the
// next frame on; t = 0 returns to the bank's. The verdict, the normalized
// score and Result.Threshold all follow it.
func (d *Detector) SetThreshold(t float64) {
	if !(t > 0) {
		t = 0
	}
	d.override.Store(math.Float64bits(t))
}

// Threshold is the threshold in force and whether it is an override.
func (d *Detector) Threshold() (t float64, override bool) {
	if o := math.Float64frombits(d.override.Load()); o > 0 {
		return o, true
	}
	return d.meta.Threshold.Value, false
}

// Inspect scores one frame.
func (d *Detector) Inspect(img *rgb.Image) (*Result, error) {
	r := &Result{}
	return r, d.InspectInto(img, r)
}

// InspectInto scores one frame into r, reusing r.
func (d *Detector) InspectInto(img *rgb.Image, r *Result) error {
	if err := d.embedFrame(img, r); err != nil {
		return err
	}
	return d.scoreEmbedded(img.W, img.H, r)
}

// scoreVecs scores patch vectors embedded earlier (by this bank's recipe)
// from a frame of fw×fh pixels, as InspectInto would score that frame:
// Build and Append embed each image once and score it against several
// banks.
func (d *Detector) scoreVecs(vecs []float32, fw, fh int, r *Result) error {
	if len(vecs) != len(d.q) {
		return fmt.Errorf("patchcore: %d embedded values, the bank's grid needs %d", len(vecs), len(d.q))
	}
	d.vecs = vecs
	d.pool.Run(len(vecs), 8192, d.quantFn)
	return d.scoreEmbedded(fw, fh, r)
}

// scoreEmbedded scores the frame whose int8 patch vectors are in d.q.
func (d *Detector) scoreEmbedded(fw, fh int, r *Result) error {
	t := time.Now()
	if d.roiCells != nil {
		return d.scoreROI(fw, fh, r, t)
	}
	if err := d.search.Nearest(d.q, len(d.patch), d.d2, d.nn); err != nil {
		return err
	}
	scale := float64(d.meta.Scale)
	for i, v := range d.d2 {
		d.patch[i] = float32(math.Sqrt(float64(v)) * scale)
	}
	best, sStar := d.patchMax()
	score := sStar
	if d.meta.Score.Image == ImageEq7 {
		score = d.reweight(best, sStar)
	}
	r.Timing[StageSearch] = time.Since(t)
	d.finish(fw, fh, r, score, sStar)
	return nil
}

// scoreROI is scoreEmbedded with a region of interest: the vectors of the
// cells inside are moved to the front of d.q (in cell order, so each moves
// down or stays) and only they are searched; cells outside score 0 and
// cannot be the image score's patch.
func (d *Detector) scoreROI(fw, fh int, r *Result, t time.Time) error {
	dim := d.meta.Dim
	for k, c := range d.roiCells {
		if int(c) != k {
			copy(d.q[k*dim:(k+1)*dim], d.q[int(c)*dim:(int(c)+1)*dim])
		}
	}
	n := len(d.roiCells)
	if err := d.search.Nearest(d.q[:n*dim], n, d.d2[:n], d.nn[:n]); err != nil {
		return err
	}
	scale := float64(d.meta.Scale)
	clear(d.patch)
	best := 0
	for k, c := range d.roiCells {
		d.patch[c] = float32(math.Sqrt(float64(d.d2[k])) * scale)
		if d.patch[c] > d.patch[d.roiCells[best]] {
			best = k
		}
	}
	sStar := float64(d.patch[d.roiCells[best]])
	score := sStar
	if d.meta.Score.Image == ImageEq7 {
		score = d.reweight(best, sStar) // best indexes the compacted rows of d.q and d.nn
	}
	r.Timing[StageSearch] = time.Since(t)
	d.finish(fw, fh, r, score, sStar)
	return nil
}

// embedFrame runs the preprocessing, the backbone and the embedding of one
// frame: d.vecs holds its patch vectors and d.q their int8 form.
func (d *Detector) embedFrame(img *rgb.Image, r *Result) error {
	vecs, err := d.fr.embed(d.bb, d.emb, img, &r.Timing)
	if err != nil {
		return err
	}
	t := time.Now()
	d.vecs = vecs
	d.pool.Run(len(vecs), 8192, d.quantFn)
	r.Timing[StageEmbed] += time.Since(t)
	return nil
}

// patchMax is the first patch with the largest score in d.patch.
func (d *Detector) patchMax() (int, float64) {
	best := 0
	for i, v := range d.patch {
		if v > d.patch[best] {
			best = i
		}
	}
	return best, float64(d.patch[best])
}

// finish turns the patch scores in d.patch and the image score into the
// anomaly map, the regions and the verdict.
func (d *Detector) finish(fw, fh int, r *Result, score, sStar float64) {
	t := time.Now()
	gw, gh := d.emb.Grid()
	iw, ih := d.mapW, d.mapH
	if d.tmap == nil {
		Upsample(d.patch, gw, gh, d.amap, iw, ih)
	} else {
		// Each tile's map at the input size, stitched on the canvas by
		// the largest value where tiles overlap: a defect one tile sees
		// is not diluted by its neighbour.
		clear(d.amap)
		cells := gw * gh
		for i, o := range d.fr.offs {
			Upsample(d.patch[i*cells:(i+1)*cells], gw, gh, d.tmap, d.inW, d.inH)
			for y := range d.inH {
				dst := d.amap[(o[1]+y)*iw+o[0]:][:d.inW]
				for x, v := range d.tmap[y*d.inW : (y+1)*d.inW] {
					dst[x] = max(dst[x], v)
				}
			}
		}
	}
	d.blur.Apply(d.amap, iw, ih)
	if d.roiPix != nil {
		for i, in := range d.roiPix {
			if !in {
				d.amap[i] = 0 // outside the region of interest: no evidence either way
			}
		}
	}
	x, y, cw, ch := rgb.CenterCrop(fw, fh, d.meta.Preprocess.Crop)
	r.Geometry = Geometry{FrameW: fw, FrameH: fh, X: x, Y: y, W: cw, H: ch, InW: iw, InH: ih}
	r.Regions, d.lab = r.Geometry.regionsInto(d.amap, d.meta.Threshold.Pixel, d.lab, &d.rb)
	r.Map = d.amap
	r.Timing[StageMap] = time.Since(t)

	th, _ := d.Threshold()
	r.Score, r.PatchMax, r.Threshold = score, sStar, th
	r.Normalized = Normalize(score, th, d.meta.Threshold.Width)
	r.Fail = score > th
}

// reweight applies Eq. 7 to the most anomalous patch p with score sStar.
func (d *Detector) reweight(p int, sStar float64) float64 {
	if d.meta.Score.B <= 1 {
		return sStar // N_b = {m*}: Eq. 7 would give 0; b = 1 means plain max
	}
	b := d.bank
	dim := d.meta.Dim
	mStar := int(d.nn[p])
	q := d.q[p*dim : (p+1)*dim]
	qn := qgemm.Dot(q, q)
	d.nbIdx, d.nbD2 = b.NeighboursInto(b.Row(mStar), d.meta.Score.B+1, d.nbIdx, d.nbD2)
	scale := float64(d.meta.Scale)
	// N_b: m* first, then its nearest other bank vectors.
	d.dists = append(d.dists[:0], sStar)
	for _, j := range d.nbIdx {
		if len(d.dists) == d.meta.Score.B {
			break
		}
		if int(j) == mStar {
			continue
		}
		d2 := qn + b.Norms[j] - 2*qgemm.Dot(q, b.Row(int(j)))
		d.dists = append(d.dists, math.Sqrt(float64(d2))*scale)
	}
	return Reweight(d.dists)
}

// Reweight is Eq. 7 of the PatchCore paper: given the distances from the
// most anomalous test patch to N_b(m*), with dists[0] = s* = its distance
// to m*, it returns (1 − exp(s*)/Σ exp(dists))·s*. Computed as
// (1 − 1/Σ exp(d − s*))·s*, which cannot overflow.
func Reweight(dists []float64) float64 {
	if len(dists) == 0 {
		return 0
	}
	s := dists[0]
	var sum float64
	for _, d := range dists {
		sum += math.Exp(d - s)
	}
	return (1 - 1/sum) * s
}

// Normalize maps a score to [0, 1] with 0.5 at threshold t and logistic
// width w (see the package documentation).
func Normalize(s, t, w float64) float64 {
	if !(w > 0) {
		w = math.Max(0.05*t, 1e-12)
	}
	return 1 / (1 + math.Exp(-(s-t)/w))
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
