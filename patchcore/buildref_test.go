package patchcore

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/tflite"
)

// buildReference is Build as it was before it streamed (kept here as the
// reference the streaming Build must equal bit for bit): every image's
// float patch vectors are kept until the bank is made, and each fold's bank
// quantizes a float copy of the other folds' vectors.
func buildReference(ctx context.Context, mf *model.File, images []string, opts BuildOptions) (*bank.Bank, *BuildReport, error) {
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
	// cells is the patches per frame (every tile's).
	dim, cells := emb.Dim(), gw*gh*fr.count()
	// With a region of interest the bank learns only the cells inside it.
	roi, _, err := frameROICells(opts.ROI, opts.Tiles, in.Shape[2], in.Shape[1], gw, gh)
	if err != nil {
		return nil, nil, err
	}
	var inside []float32
	insideOnly := func(f []float32) []float32 {
		if roi == nil {
			return f
		}
		inside = inside[:0]
		for img := 0; img < len(f)/(cells*dim); img++ {
			for _, c := range roi {
				o := (img*cells + int(c)) * dim
				inside = append(inside, f[o:o+dim]...)
			}
		}
		return inside
	}
	kept := cells
	if roi != nil {
		kept = len(roi)
	}

	// Embed the training images, each once.
	t0 := time.Now()
	feats := make([]float32, 0, len(rep.Train)*cells*dim)
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
		v, err := fr.embed(bb, emb, img, &tm)
		if err != nil {
			return nil, nil, fmt.Errorf("patchcore: %s: %w", path, err)
		}
		feats = append(feats, v...)
		sizes[i] = [2]int{img.W, img.H}
		if opts.Progress != nil {
			opts.Progress("embed", i+1, len(rep.Train))
		}
	}
	rep.EmbedTime = time.Since(t0)
	per := cells * dim

	coresetDim := opts.CoresetDim
	if coresetDim >= dim {
		coresetDim = 0
	}
	// newBank makes the bank that images with patch vectors f would give.
	newBank := func(f []float32, prog func(done, total int)) (*bank.Bank, []int8, error) {
		f = insideOnly(f)
		n := len(f) / dim
		// Quantize with one scale that clips nothing, then select the coreset.
		scale := bank.ScaleFor(f)
		q := make([]int8, len(f))
		bank.Quantize(f, scale, q)
		t1 := time.Now()
		sel, err := bank.Select(ctx, q, n, dim, bank.CoresetOptions{
			Ratio: opts.Ratio, Max: opts.Max, Seed: opts.Seed, ProjectDim: coresetDim, Pool: pool, Progress: prog,
		})
		if err != nil {
			return nil, nil, err
		}
		vecs := make([]int8, len(sel)*dim)
		for k, i := range sel {
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
		if err != nil {
			return nil, nil, err
		}
		if opts.keepFloat {
			rep.floatVectors = make([]float32, len(sel)*dim)
			for k, i := range sel {
				copy(rep.floatVectors[k*dim:(k+1)*dim], f[i*dim:(i+1)*dim])
			}
		}
		return b, q, nil
	}

	// Out-of-fold scores: fold k's images against a bank of the others.
	var scores, maxima []float64
	var r Result
	if rep.Folds > 0 {
		t1 := time.Now()
		scores, maxima = make([]float64, len(rep.Train)), make([]float64, len(rep.Train))
		fold := assignFolds(len(rep.Train), rep.Folds, opts.Seed)
		rest := make([]float32, 0, len(feats))
		for k := range rep.Folds {
			rest = rest[:0]
			for i := range rep.Train {
				if fold[i] != k {
					rest = append(rest, feats[i*per:(i+1)*per]...)
				}
			}
			fb, _, err := newBank(rest, nil)
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
				if err := d.scoreVecs(feats[i*per:(i+1)*per], sizes[i][0], sizes[i][1], &r); err != nil {
					return nil, nil, fmt.Errorf("patchcore: %s: %w", rep.Train[i], err)
				}
				scores[i], maxima[i] = r.Score, float64(slices.Max(r.Map))
			}
			if opts.Progress != nil {
				opts.Progress("fold", k+1, rep.Folds)
			}
		}
		rep.FoldTime = time.Since(t1)
	}

	// The bank.
	t1 := time.Now()
	var prog func(done, total int)
	if opts.Progress != nil {
		prog = func(done, total int) { opts.Progress("coreset", done, total) }
	}
	b, q, err := newBank(feats, prog)
	if err != nil {
		return nil, nil, err
	}
	rep.CoresetTime = time.Since(t1)
	rep.Patches, rep.Selected = b.Meta.Coreset.Patches, b.Meta.Count
	feats = nil
	inside = nil
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
