package patchcore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
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

// Fingerprint is the hex SHA-256 of a model file's bytes, as banks record it.
func Fingerprint(modelBytes []byte) string {
	s := sha256.Sum256(modelBytes)
	return hex.EncodeToString(s[:])
}

// Options configures a Detector.
type Options struct {
	// Threads for the backbone and the search (0: 1).
	Threads int
	// Open makes the backbone; nil uses the pure-Go interpreter.
	Open func(m *tflite.Model, taps []string, threads int) (model.Backbone, error)
}

// Detector scores frames against one bank with one backbone. It reuses its
// buffers; it is not safe for concurrent use.
type Detector struct {
	bank    *bank.Bank
	meta    *bank.Meta
	bb      model.Backbone
	feeder  *model.Feeder
	emb     *Embedder
	pool    *parallel.Pool
	search  *bank.Searcher
	blur    *Blur
	vecs    []float32 // the frame's patch vectors, for quantFn
	quantFn func(lo, hi, worker int)

	q     []int8
	d2    []int32
	nn    []int32
	patch []float32
	amap  []float32
	inW   int // the model input's size (Backbone.Input allocates its shape)
	inH   int
	lab   []int32
	rb    regionBuf
	nbIdx []int32
	nbD2  []int32
	dists []float64
	ref   *floatRef // float reference scoring (tests only)
}

// Result is the outcome of one frame. Map and Regions are reused by the
// next InspectInto: copy them to keep them.
type Result struct {
	Score      float64 // image score, feature units
	Normalized float64 // in [0, 1], 0.5 at the threshold
	Fail       bool
	Threshold  float64
	PatchMax   float64 // largest patch score (s*)
	// Map is the anomaly map at model-input resolution (Geometry.InW×InH).
	Map      []float32
	Geometry Geometry
	Regions  []Region
	Timing   Timing
}

// Timing is the time spent per stage of one Inspect.
type Timing struct {
	Preprocess, Backbone, Embed, Search, Map time.Duration
}

// Open prepares scoring with bank b and model m, whose file bytes hash to
// modelSHA. It refuses a bank made with another model or recipe.
func Open(b *bank.Bank, m *tflite.Model, modelSHA string, opts Options) (*Detector, error) {
	meta := &b.Meta
	if modelSHA != meta.Model.SHA256 {
		return nil, fmt.Errorf("%w: model sha256 %s, bank %d was built with %s (%s)", ErrMismatch, short(modelSHA), meta.Version, short(meta.Model.SHA256), meta.Model.Path)
	}
	if meta.Embed.Pool != PoolAvg3x3 || meta.Embed.Upsample != UpsampleBilinear || meta.Score.Upsample != UpsampleBilinear || meta.Score.Border != "reflect" {
		return nil, fmt.Errorf("%w: bank %d uses recipe pool=%q upsample=%q map=%q/%q; this build scores %q, %q, reflect", ErrMismatch,
			meta.Version, meta.Embed.Pool, meta.Embed.Upsample, meta.Score.Upsample, meta.Score.Border, PoolAvg3x3, UpsampleBilinear)
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
	feeder, err := model.NewFeeder(in, meta.Preprocess.Crop)
	if err != nil {
		return nil, err
	}
	emb, err := NewEmbedder(bb.Outputs(), meta.Embed.Project, meta.Embed.ProjectSeed)
	if err != nil {
		return nil, err
	}
	gw, gh := emb.Grid()
	if gw != meta.Embed.GridW || gh != meta.Embed.GridH || emb.Dim() != meta.Dim || !slices.Equal(emb.TapDims(), meta.Embed.TapDims) {
		return nil, fmt.Errorf("%w: taps give a %dx%d grid of %d-d vectors %v, bank %d holds %dx%d, %d-d %v", ErrMismatch,
			gw, gh, emb.Dim(), emb.TapDims(), meta.Version, meta.Embed.GridW, meta.Embed.GridH, meta.Dim, meta.Embed.TapDims)
	}
	cells := gw * gh
	feeder.SetPool(pool)
	blur := NewBlur(meta.Score.Sigma)
	blur.Pool = pool
	emb.Pool = pool
	d := &Detector{
		bank: b, meta: meta, bb: bb, feeder: feeder, emb: emb, pool: pool,
		search: bank.NewSearcher(b, pool),
		blur:   blur,
		q:      make([]int8, cells*meta.Dim),
		d2:     make([]int32, cells),
		nn:     make([]int32, cells),
		patch:  make([]float32, cells),
		amap:   make([]float32, in.Shape[1]*in.Shape[2]),
		inW:    in.Shape[2],
		inH:    in.Shape[1],
	}
	d.quantFn = d.quantizeRange
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

// Inspect scores one frame.
func (d *Detector) Inspect(img *rgb.Image) (*Result, error) {
	r := &Result{}
	return r, d.InspectInto(img, r)
}

// InspectInto scores one frame into r, reusing r.
func (d *Detector) InspectInto(img *rgb.Image, r *Result) error {
	t0 := time.Now()
	if err := d.feeder.Feed(d.bb, img); err != nil {
		return err
	}
	t1 := time.Now()
	if err := d.bb.Invoke(); err != nil {
		return err
	}
	t2 := time.Now()
	vecs, err := d.emb.Embed(d.bb)
	if err != nil {
		return err
	}
	d.vecs = vecs
	d.pool.Run(len(vecs), 8192, d.quantFn)
	t3 := time.Now()
	if d.ref != nil {
		d.floatPatchScores(vecs)
	} else {
		if err := d.search.Nearest(d.q, len(d.patch), d.d2, d.nn); err != nil {
			return err
		}
		scale := float64(d.meta.Scale)
		for i, v := range d.d2 {
			d.patch[i] = float32(math.Sqrt(float64(v)) * scale)
		}
	}
	best := 0
	for i, v := range d.patch {
		if v > d.patch[best] {
			best = i
		}
	}
	sStar := float64(d.patch[best])
	score := sStar
	switch {
	case d.meta.Score.Image != "eq7":
	case d.ref != nil:
		score = d.floatReweight(best, sStar)
	default:
		score = d.reweight(best, sStar)
	}
	t4 := time.Now()
	gw, gh := d.emb.Grid()
	iw, ih := d.inW, d.inH
	Upsample(d.patch, gw, gh, d.amap, iw, ih)
	d.blur.Apply(d.amap, iw, ih)
	x, y, cw, ch := rgb.CenterCrop(img.W, img.H, d.meta.Preprocess.Crop)
	r.Geometry = Geometry{FrameW: img.W, FrameH: img.H, X: x, Y: y, W: cw, H: ch, InW: iw, InH: ih}
	r.Regions, d.lab = r.Geometry.regionsInto(d.amap, d.meta.Threshold.Pixel, d.lab, &d.rb)
	t5 := time.Now()

	th := &d.meta.Threshold
	r.Score, r.PatchMax, r.Threshold = score, sStar, th.Value
	r.Normalized = Normalize(score, th.Value, th.Width)
	r.Fail = score > th.Value
	r.Map = d.amap
	r.Timing = Timing{Preprocess: t1.Sub(t0), Backbone: t2.Sub(t1), Embed: t3.Sub(t2), Search: t4.Sub(t3), Map: t5.Sub(t4)}
	return nil
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
