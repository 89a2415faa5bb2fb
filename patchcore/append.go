package patchcore

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/qgemm"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
)

// AppendOptions configures Append.
type AppendOptions struct {
	Threads int
	// Progress reports stages "embed", "cover" and "calibrate".
	Progress func(stage string, done, total int)
	Note     string // the new version's note; empty keeps the bank's
}

// AppendReport tells what Append did.
type AppendReport struct {
	Images  int // images appended
	Patches int // their patches
	Added   int // patches added to the bank
	// Radius is the coverage radius used (feature units); RadiusFallback
	// says it was estimated because the bank did not record one.
	Radius         float64
	RadiusFallback bool
	// Before and After are the appended images' scores against the old
	// and the new bank; LeaveOneOut each one's score against the old bank
	// plus the other appended images' added patches (the calibration
	// scores it contributes).
	Before, After, LeaveOneOut []float64
	// OldThreshold and NewThreshold are the image thresholds of the two
	// banks; Recalibrated is false when the old bank kept no calibration
	// scores, and the threshold was kept as it was.
	OldThreshold, NewThreshold float64
	Recalibrated               bool
}

// Append grows bank b with good images and returns the new bank (b is not
// changed). The images are embedded with b's recipe (Open checks that mf is
// b's model). Their patches that b already covers (nearest bank vector
// within the coverage radius r, bank.Coreset.Radius) are dropped; the rest
// extend the coreset greedily as k-center selection would: the patch
// farthest from the bank joins it (int8 with b's scale, clipped), until
// every appended patch is within r. The threshold is recalibrated with b's
// rule on b's kept calibration scores (still honest: they came from banks
// that did not learn from their images, and the bank only grows) plus each
// appended image's leave-one-out score: against the bank that appending
// the other images alone would give (b plus their own cover, which may
// differ from their share of the joint cover).
//
// Banks written before the radius was recorded use the smallest distance
// between two of their vectors: in greedy k-center selection that is the
// distance at which the last centre was chosen, the radius just before it,
// so a slight overestimate of the final radius. Banks without kept scores
// keep their threshold (AppendReport.Recalibrated is false).
func Append(ctx context.Context, mf *model.File, b *bank.Bank, images []string, opts AppendOptions) (*bank.Bank, *AppendReport, error) {
	if len(images) == 0 {
		return nil, nil, fmt.Errorf("patchcore: append needs at least 1 image")
	}
	if len(b.Meta.Threshold.Scores)+len(images) > bank.MaxScores {
		return nil, nil, fmt.Errorf("patchcore: %d kept scores and %d images exceed %d", len(b.Meta.Threshold.Scores), len(images), bank.MaxScores)
	}
	d, err := Open(b, mf, Options{Threads: opts.Threads})
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	meta := &b.Meta
	dim := meta.Dim
	cells := d.Patches()
	per := cells * dim
	// With a region of interest only the cells inside it are candidates:
	// InspectInto leaves their int8 vectors at the front of d.q.
	qcells := cells
	if d.roiCells != nil {
		qcells = len(d.roiCells)
	}
	rep := &AppendReport{Images: len(images), Patches: len(images) * qcells, OldThreshold: meta.Threshold.Value}

	// Embed once: the float vectors (to score against other banks) and
	// their int8 form with b's scale; the score against b on the way.
	feats := make([]float32, 0, len(images)*per)
	q := make([]int8, 0, len(images)*per)
	sizes := make([][2]int, len(images))
	var r Result
	for i, path := range images {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("patchcore: append stopped: %w", err)
		}
		img, err := rgb.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		if err := d.InspectInto(img, &r); err != nil {
			return nil, nil, fmt.Errorf("patchcore: %s: %w", path, err)
		}
		feats, q = append(feats, d.vecs...), append(q, d.q[:qcells*dim]...)
		sizes[i] = [2]int{img.W, img.H}
		rep.Before = append(rep.Before, r.Score)
		if opts.Progress != nil {
			opts.Progress("embed", i+1, len(images))
		}
	}

	rep.Radius = meta.Coreset.Radius
	if !(rep.Radius > 0) {
		rep.Radius, rep.RadiusFallback = smallestSpacing(b, d.pool), true
	}
	cov, err := newCoverage(b, q, qcells, d.pool)
	if err != nil {
		return nil, nil, err
	}
	added, err := cov.cover(ctx, rep.Radius, -1, opts.Progress)
	if err != nil {
		return nil, nil, err
	}
	rep.Added = len(added)

	// bankWith is b plus the patches added.
	bankWith := func(added []int) (*bank.Bank, error) {
		vecs := slices.Clone(b.Vectors)
		for _, i := range added {
			vecs = append(vecs, q[i*dim:(i+1)*dim]...)
		}
		m := cloneMeta(meta)
		return bank.New(m, vecs)
	}
	// scoreWithout scores image i, into r, against b plus the cover of
	// the other images alone.
	scoreWithout := func(i int) error {
		others, err := cov.cover(ctx, rep.Radius, i, nil)
		if err != nil {
			return err
		}
		ob, err := bankWith(others)
		if err != nil {
			return err
		}
		od, err := newDetector(ob, d.bb, d.pool)
		if err != nil {
			return err
		}
		return od.scoreVecs(feats[i*per:(i+1)*per], sizes[i][0], sizes[i][1], &r)
	}
	nb, err := bankWith(added)
	if err != nil {
		return nil, nil, err
	}
	nd, err := newDetector(nb, d.bb, d.pool)
	if err != nil {
		return nil, nil, err
	}
	addedBy := make([]int, len(images))
	for _, i := range added {
		addedBy[i/qcells]++
	}
	maxima := make([]float64, len(images))
	for i := range images {
		if err := nd.scoreVecs(feats[i*per:(i+1)*per], sizes[i][0], sizes[i][1], &r); err != nil {
			return nil, nil, err
		}
		rep.After = append(rep.After, r.Score)
		loo, mx := r.Score, float64(slices.Max(r.Map))
		if addedBy[i] > 0 {
			// Image i's own patches are in nb: score it against the bank
			// appending the other images alone would give (their cover
			// without image i, which may take patches of theirs that
			// image i's covered in the joint cover).
			if err := scoreWithout(i); err != nil {
				return nil, nil, err
			}
			loo, mx = r.Score, float64(slices.Max(r.Map))
		}
		rep.LeaveOneOut, maxima[i] = append(rep.LeaveOneOut, loo), mx
		if opts.Progress != nil {
			opts.Progress("calibrate", i+1, len(images))
		}
	}

	m := &nb.Meta
	m.Created = time.Now().UTC().Truncate(time.Second)
	if opts.Note != "" {
		m.Note = opts.Note
	}
	m.Origin = nil
	m.Images.Train += len(images)
	m.Coreset.Patches += rep.Patches
	m.Coreset.Radius = rep.Radius
	if old := meta.Threshold; len(old.Scores) > 0 && len(old.MapMaxima) == len(old.Scores) {
		th, err := Calibrate(old.Rule, old.Param, append(slices.Clone(old.Scores), rep.LeaveOneOut...),
			append(slices.Clone(old.MapMaxima), maxima...))
		if err != nil {
			return nil, nil, err
		}
		th.Folds = old.Folds
		m.Threshold, rep.Recalibrated = th, true
	}
	rep.NewThreshold = m.Threshold.Value
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}
	return nb, rep, nil
}

// cloneMeta copies m, its slices included, as an unversioned bank's.
func cloneMeta(m *bank.Meta) bank.Meta {
	c := *m
	c.Version = 0
	c.Model.Taps = slices.Clone(m.Model.Taps)
	c.Embed.TapDims = slices.Clone(m.Embed.TapDims)
	c.Images.HoldoutFiles = slices.Clone(m.Images.HoldoutFiles)
	c.Threshold.Scores = slices.Clone(m.Threshold.Scores)
	c.Threshold.MapMaxima = slices.Clone(m.Threshold.MapMaxima)
	if m.Threshold.F1 != nil {
		f := *m.Threshold.F1
		c.Threshold.F1 = &f
	}
	return c
}

// coverage is what greedy covering starts from: every appended patch's
// squared distance to the bank (int8 units) and its squared norm. One
// search against the bank serves the cover of all images and the cover of
// each leave-one-out set.
type coverage struct {
	b           *bank.Bank
	q           []int8
	cells       int
	mind0, norm []int64
	pool        *parallel.Pool
}

func newCoverage(b *bank.Bank, q []int8, cells int, pool *parallel.Pool) (*coverage, error) {
	dim := b.Meta.Dim
	n := len(q) / dim
	s := bank.NewSearcher(b, pool)
	defer s.Close()
	c := &coverage{b: b, q: q, cells: cells, mind0: make([]int64, n), norm: make([]int64, n), pool: pool}
	d2, nn := make([]int32, cells), make([]int32, cells)
	for lo := 0; lo < n; lo += cells {
		m := min(cells, n-lo)
		if err := s.Nearest(q[lo*dim:(lo+m)*dim], m, d2[:m], nn[:m]); err != nil {
			return nil, err
		}
		for i, v := range d2[:m] {
			c.mind0[lo+i] = int64(v)
		}
	}
	for i := range n {
		v := q[i*dim : (i+1)*dim]
		c.norm[i] = int64(qgemm.Dot(v, v))
	}
	return c, nil
}

// cover returns the appended patches (int8 with b's scale, cells per
// image; without those of image skip, -1: all images) to add so that every
// one is within radius of b or of an added one: greedy k-center continued
// from b's vectors (the farthest patch joins, lowest index on ties), in
// the order chosen.
func (cv *coverage) cover(ctx context.Context, radius float64, skip int, progress func(string, int, int)) ([]int, error) {
	b, q, cells, pool, norm := cv.b, cv.q, cv.cells, cv.pool, cv.norm
	dim := b.Meta.Dim
	n := len(q) / dim
	mind := slices.Clone(cv.mind0)
	if skip >= 0 {
		for i := skip * cells; i < (skip+1)*cells; i++ {
			mind[i] = 0 // never chosen, never updated: as if absent
		}
	}
	// Within the radius: |x − c|·scale <= radius, in int8 units squared
	// (the radius came from an integer squared distance: the margin keeps
	// rounding from putting that very distance outside).
	r := radius / float64(b.Meta.Scale)
	limit := int64(math.Floor(r * r * (1 + 1e-9)))
	over := 0
	for _, v := range mind {
		if v > limit {
			over++
		}
	}
	var added []int
	for {
		c := 0
		for i := range mind {
			if mind[i] > mind[c] {
				c = i
			}
		}
		if mind[c] <= limit {
			return added, nil
		}
		if len(added)%32 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("patchcore: append stopped: %w", err)
			}
		}
		added = append(added, c)
		cv := q[c*dim : (c+1)*dim]
		pool.Run(n, 2048, func(lo, hi, _ int) {
			for i := lo; i < hi; i++ {
				if mind[i] == 0 {
					continue
				}
				d := norm[i] + norm[c] - 2*int64(qgemm.Dot(q[i*dim:(i+1)*dim], cv))
				mind[i] = min(mind[i], d)
			}
		})
		if progress != nil {
			progress("cover", len(added), over) // at most over are added
		}
	}
}

// smallestSpacing is the smallest distance between two of b's vectors, in
// feature units (0 for a bank of one vector).
func smallestSpacing(b *bank.Bank, pool *parallel.Pool) float64 {
	n := b.Meta.Count
	best := int64(math.MaxInt64)
	var mu sync.Mutex
	pool.Run(n, 64, func(lo, hi, _ int) {
		local := int64(math.MaxInt64)
		for i := lo; i < hi; i++ {
			for j := i + 1; j < n; j++ {
				d := int64(b.Norms[i]) + int64(b.Norms[j]) - 2*int64(qgemm.Dot(b.Row(i), b.Row(j)))
				local = min(local, d)
			}
		}
		mu.Lock()
		best = min(best, local)
		mu.Unlock()
	})
	if best == math.MaxInt64 {
		return 0
	}
	return math.Sqrt(float64(best)) * float64(b.Meta.Scale)
}
