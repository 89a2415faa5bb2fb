package patchcore

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/tflite"
)

// BuildOptions configures Build. Zero values take the defaults noted.
type BuildOptions struct {
	Recipe         // how frames become scores; stored in the bank
	Ratio  float64 // coreset share, default 0.1
	Max    int     // coreset cap, 0 = none
	// Folds is the number of out-of-fold calibration folds, default
	// DefaultFolds, at most the number of images; SingleHoldout calibrates
	// on one held-out share (Holdout) instead.
	Folds      int
	Holdout    float64 // share held out when Folds is SingleHoldout, default 0.1
	Seed       uint64
	CoresetDim int     // random projection for the coreset, default 128
	Rule       string  // threshold rule, default "tail"
	Param      float64 // rule parameter, default DefaultParam(Rule)
	Threads    int
	Open       func(m *tflite.Model, taps []string, threads int) (model.Backbone, error)
	// Progress reports stages "embed", "coreset", "fold" and "calibrate".
	Progress func(stage string, done, total int)
	Note     string
	// Defects are labelled defective images, optional: with them the bank
	// also records the F1-optimal threshold over them and the calibration
	// images (Threshold.F1). The calibrated rule stays in force.
	Defects []string

	// keepFloat keeps the coreset's float vectors in the report, for the
	// test that measures what int8 costs.
	keepFloat bool
}

// DefaultFolds is the default number of out-of-fold calibration folds.
const DefaultFolds = 5

// SingleHoldout as BuildOptions.Folds calibrates on one held-out share of
// the images, which the bank does not learn from.
const SingleHoldout = -1

func (o *BuildOptions) defaults() {
	o.Recipe.defaults()
	if o.Ratio == 0 {
		o.Ratio = 0.1
	}
	if o.Folds == 0 {
		o.Folds = DefaultFolds
	}
	if o.Holdout == 0 {
		o.Holdout = 0.1
	}
	if o.CoresetDim == 0 {
		o.CoresetDim = 128
	}
	if o.Rule == "" {
		o.Rule = RuleTail
	}
	if o.Param == 0 {
		o.Param = DefaultParam(o.Rule)
	}
	o.Threads = max(o.Threads, 1)
}

// BuildReport tells what Build did.
type BuildReport struct {
	// Train are the images the bank learnt from; Holdout the images held
	// out for the threshold (none with folds: the bank learns from all).
	Train, Holdout []string
	Folds          int // out-of-fold folds, 0 with a single hold-out
	Patches        int
	Selected       int
	EmbedTime      time.Duration
	CoresetTime    time.Duration // the final bank's coreset
	FoldTime       time.Duration // the fold banks' coresets and scoring
	CalibrateTime  time.Duration
	// HoldoutScores are the calibration scores: each image scored by a
	// bank that did not learn from it (out-of-fold, or held out), in the
	// order of the images given (Holdout's order with a single hold-out).
	HoldoutScores []float64

	floatVectors []float32 // the selected vectors before int8 quantization (keepFloat)
}

// Build makes a bank from good images and calibrates its threshold on
// scores of good images the scoring bank did not learn from.
//
// By default (Folds > 0) it embeds every image once, splits the images into
// seeded folds, and for each fold selects a coreset from the other folds'
// patches exactly as a bank built from those images alone would be (their
// own int8 scale, the same seed) and scores the fold's images against it:
// n images give n out-of-fold scores. The bank itself is then built from
// all images. With Folds = SingleHoldout it holds out a seeded share
// instead, builds the bank from the rest and scores the held-out images.
// The bank records mf's fingerprint, and its path as a hint.
//
// Memory: what is kept of an image is its taps (patchStore), not its float
// vectors; the patches are held once, in int8, at the bank's scale, and
// each fold's bank selects from their rows (bank.SelectRows) instead of a
// copy. The fold holding the image with the largest value has a scale of
// its own and is built first, its patches quantized from the taps into the
// same int8 buffer. So a build holds one byte per patch value plus the
// taps (about half that with an int8 backbone) and bounded scratch, and the
// collector runs more often meanwhile (lowerGCPercent). The taps are
// dropped once q holds every image at the bank's scale: the other folds
// score their images from q's rows (scoreRows). The own-scale fold, the
// only one with the taps, borrows q's rows its bank does not learn for the
// selection's projection and the bank's vectors. A 768-d bank of bottle's
// 209 images (163,856 patches) peaked at 2.2 GiB and now at about 275 MiB
// of heap (289 MiB of process with the pure-Go binary), and the bank is
// bit for bit the one the float path gave
// (TestStreamingBuildEqualsReference).
func Build(ctx context.Context, mf *model.File, images []string, opts BuildOptions) (*bank.Bank, *BuildReport, error) {
	m := mf.Model
	opts.defaults()
	if len(images) < 2 {
		return nil, nil, fmt.Errorf("patchcore: a bank needs at least 2 good images (1 to learn, 1 to calibrate); got %d", len(images))
	}
	if opts.Folds == SingleHoldout {
		if !(opts.Holdout > 0 && opts.Holdout < 1) {
			return nil, nil, fmt.Errorf("patchcore: holdout %v outside (0, 1)", opts.Holdout)
		}
	} else if opts.Folds < 2 {
		return nil, nil, fmt.Errorf("patchcore: %d calibration folds; use at least 2, or SingleHoldout", opts.Folds)
	}
	if len(images) > bank.MaxScores {
		return nil, nil, fmt.Errorf("patchcore: %d images, a bank calibrates on at most %d", len(images), bank.MaxScores)
	}
	if _, err := applyRule(opts.Rule, opts.Param, []float64{1, 2}); err != nil {
		return nil, nil, err // a bad rule fails before minutes of work
	}
	if len(opts.Taps) == 0 {
		taps, err := DefaultTaps(m)
		if err != nil {
			return nil, nil, err
		}
		opts.Taps = taps
	}
	setGC, restoreGC := lowerGCPercent(buildGCPercent)
	defer restoreGC()
	rep := &BuildReport{}
	if opts.Folds == SingleHoldout {
		rep.Train, rep.Holdout = splitHoldout(images, opts.Holdout, opts.Seed)
	} else {
		opts.Folds = min(opts.Folds, len(images))
		rep.Train, rep.Folds = images, opts.Folds
	}

	// One pool for the backbone, the coreset and the calibration (see
	// engine.Options.Pool); closed after the backbone.
	pool := parallel.New(opts.Threads)
	defer pool.Close()
	open := opts.Open
	if open == nil {
		open = func(m *tflite.Model, taps []string, threads int) (model.Backbone, error) {
			return engine.NewInterpreter(m, engine.Options{Pool: pool, Taps: taps})
		}
	}
	// The recipe's input size, which may not be the one stored in the file.
	m, err := atSize(m, opts.Taps, opts.InputW, opts.InputH)
	if err != nil {
		return nil, nil, err
	}
	bb, err := open(m, opts.Taps, opts.Threads)
	if err != nil {
		return nil, nil, err
	}
	defer bb.Close()
	in := bb.Input()
	emb, err := NewEmbedder(bb.Outputs(), opts.Project, opts.Seed)
	if err != nil {
		return nil, nil, err
	}
	gw, gh := emb.Grid()
	fr, err := newFramer(in, opts.Crop, opts.Tiles, gw*gh*emb.Dim())
	if err != nil {
		return nil, nil, err
	}
	fr.feeder.SetPool(pool)
	dim := emb.Dim()
	// With a region of interest the bank learns only the cells inside it.
	roi, _, err := frameROICells(opts.ROI, opts.Tiles, in.Shape[2], in.Shape[1], gw, gh)
	if err != nil {
		return nil, nil, err
	}
	emb.Pool = pool // the vectors do not depend on it

	// Embed the training images, each once, keeping their taps and the
	// statistic of their scale (patchStore), not their float vectors.
	t0 := time.Now()
	ps := newPatchStore(fr, emb, roi, len(rep.Train))
	kept := ps.kept
	sizes := make([][2]int, len(rep.Train))
	for i, path := range rep.Train {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("patchcore: build stopped: %w", err)
		}
		img, err := rgb.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		var tm Timing
		v, err := fr.embedKeep(bb, emb, img, &tm, ps.keep(i))
		if err != nil {
			return nil, nil, fmt.Errorf("patchcore: %s: %w", path, err)
		}
		ps.embedded(i, v)
		sizes[i] = [2]int{img.W, img.H}
		if opts.Progress != nil {
			opts.Progress("embed", i+1, len(rep.Train))
		}
	}
	rep.EmbedTime = time.Since(t0)

	coresetDim := opts.CoresetDim
	if coresetDim >= dim {
		coresetDim = 0
	}
	// newBank makes the bank of the n int8 vectors of q listed in rows
	// (nil: the first n), quantized with scale: the bank that images with
	// those vectors give.
	// The selection may use scratch (see bank.CoresetOptions.Scratch), and
	// so may the bank's vectors after it.
	newBank := func(q []int8, rows []int32, n int, scale float32, scratch []int8, prog func(done, total int)) (*bank.Bank, []int, error) {
		t1 := time.Now()
		copts := bank.CoresetOptions{Ratio: opts.Ratio, Max: opts.Max, Seed: opts.Seed, ProjectDim: coresetDim, Pool: pool, Progress: prog, Scratch: scratch}
		var sel []int
		var err error
		if rows != nil {
			sel, err = bank.SelectRows(ctx, q, rows, dim, copts)
		} else {
			sel, err = bank.Select(ctx, q, n, dim, copts)
		}
		if err != nil {
			return nil, nil, err
		}
		// The bank's vectors go to the scratch too if it is long enough
		// (the selection is done with it): a fold's bank lives until the
		// fold is scored.
		vecs := scratch
		if len(vecs) < len(sel)*dim {
			vecs = make([]int8, len(sel)*dim)
		}
		vecs = vecs[: len(sel)*dim : len(sel)*dim]
		for k, i := range sel {
			if rows != nil {
				i = int(rows[i])
			}
			copy(vecs[k*dim:(k+1)*dim], q[i*dim:(i+1)*dim])
		}
		meta := bank.Meta{
			Created: time.Now().UTC().Truncate(time.Second),
			Note:    opts.Note,
			Model:   bank.ModelRef{Path: mf.Path, SHA256: mf.SHA256},
			Coreset: bank.Coreset{Method: "greedy-k-center", Ratio: opts.Ratio, Max: opts.Max, Seed: opts.Seed,
				ProjectDim: coresetDim, Patches: n, Seconds: time.Since(t1).Seconds()},
			Images:    bank.Images{Train: n / kept},
			Scale:     scale,
			Threshold: bank.Threshold{Rule: opts.Rule, Param: opts.Param, Value: 1, Pixel: 1, Width: 1},
		}
		opts.Recipe.Stamp(&meta, in, emb, opts.Seed)
		b, err := bank.New(meta, vecs)
		return b, sel, err
	}

	// q is the one int8 copy of the learnt patches: the images' at the
	// bank's scale (full), or a fold bank's at its own while it is built.
	all := make([]int, len(rep.Train))
	for i := range all {
		all[i] = i
	}
	scale := ps.scale(all)
	n := len(all) * kept
	q := make([]int8, n*dim)
	full := false
	fill := func() {
		if !full {
			ps.quantize(q, all, scale)
			full = true
		}
	}

	// Out-of-fold scores: fold k's images against a bank of the others.
	// From here the live heap is at its largest: collect more often.
	setGC(foldGCPercent)
	var scores, maxima []float64
	var r Result
	if rep.Folds > 0 {
		t1 := time.Now()
		scores, maxima = make([]float64, len(rep.Train)), make([]float64, len(rep.Train))
		fold := assignFolds(len(rep.Train), rep.Folds, opts.Seed)
		rest := make([][]int, rep.Folds)
		for k := range rep.Folds {
			for i := range rep.Train {
				if fold[i] != k {
					rest[k] = append(rest[k], i)
				}
			}
		}
		// A fold holding the image with the largest value has a smaller
		// scale than the whole: its bank's vectors are quantized into q
		// first, before q holds every image at the bank's scale and the
		// other folds select from its rows.
		order := make([]int, 0, rep.Folds)
		for k := range rep.Folds {
			if ps.scale(rest[k]) != scale {
				order = append(order, k)
			}
		}
		for k := range rep.Folds {
			if ps.scale(rest[k]) == scale {
				order = append(order, k)
			}
		}
		for done, k := range order {
			var fb *bank.Bank
			var err error
			sk := ps.scale(rest[k])
			own := sk != scale
			if own {
				// q's rows past the fold's are free until fill: the
				// selection's scratch, then its bank's vectors.
				full = false
				nk := len(rest[k]) * kept
				ps.quantize(q, rest[k], sk)
				fb, _, err = newBank(q, nil, nk, sk, q[nk*dim:], nil)
			} else {
				fill()
				if !opts.keepFloat {
					// This fold and those after it score from q: the
					// taps go before its selection.
					ps.dropTaps()
				}
				fb, _, err = newBank(q, ps.rows(rest[k]), len(rest[k])*kept, scale, nil, nil)
			}
			if err != nil {
				return nil, nil, err
			}
			d, err := newDetector(fb, bb, pool)
			if err != nil {
				return nil, nil, err
			}
			for i := range rep.Train {
				if fold[i] != k {
					continue
				}
				if err := ctx.Err(); err != nil {
					return nil, nil, fmt.Errorf("patchcore: build stopped: %w", err)
				}
				if own {
					err = d.scoreVecs(ps.vectors(i), sizes[i][0], sizes[i][1], &r)
				} else {
					// At the bank's scale, image i's int8 vectors are
					// its rows of q: no need for its taps.
					err = scoreRows(d, q[i*kept*dim:(i+1)*kept*dim], roi, sizes[i][0], sizes[i][1], &r)
				}
				if err != nil {
					return nil, nil, fmt.Errorf("patchcore: %s: %w", rep.Train[i], err)
				}
				scores[i], maxima[i] = r.Score, float64(slices.Max(r.Map))
			}
			if opts.Progress != nil {
				opts.Progress("fold", done+1, rep.Folds)
			}
			// The fold's bank, detector and coreset scratch are garbage
			// now. Collected here, the next fold reuses their memory;
			// otherwise the heap grows to twice the live patches (GOGC)
			// before the collector runs.
			runtime.GC()
		}
		rep.FoldTime = time.Since(t1)
	}

	// The bank.
	t1 := time.Now()
	var prog func(done, total int)
	if opts.Progress != nil {
		prog = func(done, total int) { opts.Progress("coreset", done, total) }
	}
	fill()
	// From here on the patches are in q; the taps go (but for the test
	// that compares the float vectors) before the bank's coreset.
	floats := ps
	if !opts.keepFloat {
		floats = nil
	}
	ps = nil
	runtime.GC()
	b, sel, err := newBank(q, nil, n, scale, nil, prog)
	if err != nil {
		return nil, nil, err
	}
	rep.CoresetTime = time.Since(t1)
	rep.Patches, rep.Selected = b.Meta.Coreset.Patches, b.Meta.Count
	if floats != nil {
		rep.floatVectors = floats.floats(sel)
	}
	b.Meta.Coreset.Radius, err = coverageRadius(ctx, b, q, kept, pool)
	if err != nil {
		return nil, nil, err
	}
	q = nil
	b.Meta.Images.Holdout = len(rep.Holdout)
	for _, h := range rep.Holdout {
		b.Meta.Images.HoldoutFiles = append(b.Meta.Images.HoldoutFiles, filepath.Base(h))
	}

	// Calibrate with the bank as it will score: on the held-out images, or
	// on the out-of-fold scores.
	t2 := time.Now()
	// The detector borrows bb and pool, which the defers above close.
	d, err := newDetector(b, bb, pool)
	if err != nil {
		return nil, nil, err
	}
	for i, path := range rep.Holdout {
		img, err := rgb.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		if err := d.InspectInto(img, &r); err != nil {
			return nil, nil, fmt.Errorf("patchcore: %s: %w", path, err)
		}
		scores = append(scores, r.Score)
		maxima = append(maxima, float64(slices.Max(r.Map)))
		if opts.Progress != nil {
			opts.Progress("calibrate", i+1, len(rep.Holdout))
		}
	}
	th, err := Calibrate(opts.Rule, opts.Param, scores, maxima)
	if err != nil {
		return nil, nil, err
	}
	th.Folds = rep.Folds
	if len(opts.Defects) > 0 {
		all := slices.Clone(scores)
		labels := make([]bool, len(scores), len(scores)+len(opts.Defects))
		for i, path := range opts.Defects {
			img, err := rgb.ReadFile(path)
			if err != nil {
				return nil, nil, err
			}
			if err := d.InspectInto(img, &r); err != nil {
				return nil, nil, fmt.Errorf("patchcore: %s: %w", path, err)
			}
			all, labels = append(all, r.Score), append(labels, true)
			if opts.Progress != nil {
				opts.Progress("defects", i+1, len(opts.Defects))
			}
		}
		v, f1 := BestF1(all, labels)
		th.F1 = &bank.F1Threshold{Value: v, F1: f1, Defects: len(opts.Defects)}
	}
	rep.CalibrateTime = time.Since(t2)
	rep.HoldoutScores = scores
	b.Meta.Threshold = th
	if err := b.Meta.Validate(); err != nil {
		return nil, nil, err
	}
	return b, rep, nil
}

// assignFolds puts n images into k seeded folds of sizes differing by at
// most one: fold[i] is image i's fold.
func assignFolds(n, k int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 0x666f6c6473)) // "folds"
	fold := make([]int, n)
	for j, i := range rng.Perm(n) {
		fold[i] = j % k
	}
	return fold
}

// coverageRadius is the largest distance, in feature units, from any of
// the candidate patches q (cells per image) to its nearest vector of b:
// the radius of the k-center cover b is.
func coverageRadius(ctx context.Context, b *bank.Bank, q []int8, cells int, pool *parallel.Pool) (float64, error) {
	dim := b.Meta.Dim
	n := len(q) / dim
	s := bank.NewSearcher(b, pool)
	defer s.Close()
	d2, nn := make([]int32, cells), make([]int32, cells)
	var big int32
	for lo := 0; lo < n; lo += cells {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("patchcore: build stopped: %w", err)
		}
		m := min(cells, n-lo)
		if err := s.Nearest(q[lo*dim:(lo+m)*dim], m, d2[:m], nn[:m]); err != nil {
			return 0, err
		}
		big = max(big, slices.Max(d2[:m]))
	}
	return math.Sqrt(float64(big)) * float64(b.Meta.Scale), nil
}

// splitHoldout returns the images kept for the bank and the seeded share
// held out, both in their original order. At least one image goes each way.
func splitHoldout(images []string, share float64, seed uint64) (train, holdout []string) {
	nh := int(share*float64(len(images)) + 0.5)
	nh = max(1, min(nh, len(images)-1))
	rng := rand.New(rand.NewPCG(seed, 0x686f6c646f7574)) // "holdout"
	perm := rng.Perm(len(images))
	held := make([]bool, len(images))
	for _, i := range perm[:nh] {
		held[i] = true
	}
	for i, p := range images {
		if held[i] {
			holdout = append(holdout, p)
		} else {
			train = append(train, p)
		}
	}
	return train, holdout
}

// DefaultTaps returns the taps of the backbones Linesight knows: the
// ResNet18 builder's "layer2", "layer3", and the shared MobileNetV2 models
// (see the README for the comparison that chose them).
func DefaultTaps(m *tflite.Model) ([]string, error) {
	for _, c := range knownTaps {
		ok := true
		for _, t := range c {
			if _, err := model.FindTensor(m, t); err != nil {
				ok = false
				break
			}
		}
		if ok {
			return slices.Clone(c), nil
		}
	}
	taps, err := AutoTaps(m)
	if err != nil {
		return nil, fmt.Errorf("patchcore: no default taps for this model and %w; choose two feature maps with --taps (see `linesight model info --tensors`)", err)
	}
	return taps, nil
}

// AutoTaps picks two feature maps of an unknown backbone by stride: at 1/8
// and 1/16 of the input's height (PatchCore's mid-level features, as
// layer2 and layer3 of a ResNet), the deepest tensor at each: the output
// of the last ADD at that size (a residual block's output) if there is
// one, else the last 4-D tensor any operator writes at that size. They are
// named "#index" (see model.FindTensor).
func AutoTaps(m *tflite.Model) ([]string, error) {
	sg := &m.Subgraphs[0]
	if len(sg.Inputs) != 1 {
		return nil, fmt.Errorf("automatic taps need a model with one input, this one has %d", len(sg.Inputs))
	}
	in := sg.Tensors[sg.Inputs[0]].Shape
	if len(in) != 4 || in[1] < 16 {
		return nil, fmt.Errorf("automatic taps need an NHWC image input, this one is %v", in)
	}
	var taps []string
	for _, stride := range []int32{8, 16} {
		h := (in[1] + stride - 1) / stride
		last, lastAdd := -1, -1
		for _, op := range sg.Operators {
			isAdd := int(op.OpcodeIndex) < len(m.OperatorCodes) && m.OperatorCodes[op.OpcodeIndex].Builtin == tflite.OpAdd
			for _, o := range op.Outputs {
				if o < 0 || int(o) >= len(sg.Tensors) {
					continue
				}
				if sh := sg.Tensors[o].Shape; len(sh) == 4 && sh[1] == h {
					last = int(o)
					if isAdd {
						lastAdd = int(o)
					}
				}
			}
		}
		if lastAdd >= 0 {
			last = lastAdd
		}
		if last < 0 {
			return nil, fmt.Errorf("no tensor at 1/%d of the input height (%d rows)", stride, h)
		}
		taps = append(taps, fmt.Sprintf("#%d", last))
	}
	return taps, nil
}

var knownTaps = [][]string{
	{"layer2", "layer3"},
	{"MobileNetV2/expanded_conv_6/add/add", "MobileNetV2/expanded_conv_10/add/add"},
}
