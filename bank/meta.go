// Package bank is PatchCore's memory bank: the good parts' patch vectors kept
// by coreset selection, stored as int8 with one scale, searched exactly for
// nearest neighbours through internal/qgemm, and kept in a bbolt database
// that holds many versions (put, activate, rollback) or travels as a single
// bundle file.
//
// A bank carries everything needed to score the same way wherever it goes:
// the model's fingerprint and taps, the preprocessing, the embedding recipe,
// the distance and neighbour counts, the coreset parameters and the
// threshold with the statistics it was calibrated from (Meta). The package
// stores and checks that recipe; package patchcore defines what it means.
package bank

import (
	"fmt"
	"math"
	"time"
)

// FormatVersion is the layout of Meta and of the vectors this code writes.
// Readers refuse other formats rather than guess.
const FormatVersion = 1

// MaxDim bounds the vector length: squared int8 distances of MaxDim-long
// vectors (at most 256²·MaxDim) stay inside int32.
const MaxDim = 16384

// Meta describes a bank version. It is stored as JSON beside the vectors.
type Meta struct {
	Format  int       `json:"format"`
	Version uint64    `json:"version"` // assigned by Store.Put; 0 before
	Created time.Time `json:"created"`
	Note    string    `json:"note,omitempty"`
	// Origin records where an imported bank came from.
	Origin *Origin `json:"origin,omitempty"`

	Model      ModelRef   `json:"model"`
	Preprocess Preprocess `json:"preprocess"`
	Embed      Embed      `json:"embed"`
	Score      Score      `json:"score"`
	Coreset    Coreset    `json:"coreset"`
	Images     Images     `json:"images"`
	Threshold  Threshold  `json:"threshold"`

	// Dim and Count give the shape of the vectors (Count rows of Dim int8).
	Dim   int `json:"dim"`
	Count int `json:"count"`
	// Scale maps the int8 vectors back to feature units: x ≈ Scale·q.
	Scale float32 `json:"scale"`
	// SHA256 is the hex digest of the Count×Dim vector bytes.
	SHA256 string `json:"sha256"`
}

// Origin names the station and version an imported bank was exported from.
type Origin struct {
	Version uint64    `json:"version"`
	Created time.Time `json:"created"`
	File    string    `json:"file,omitempty"`
}

// ModelRef fingerprints the backbone the vectors came from.
type ModelRef struct {
	Path   string   `json:"path,omitempty"` // as given at build time; a hint only
	SHA256 string   `json:"sha256"`
	Taps   []string `json:"taps"`
}

// Preprocess is how frames become model input: centre crop keeping Crop of
// the shorter side (0 = whole frame), then Resize to Width×Height.
type Preprocess struct {
	Width  int     `json:"width"`
	Height int     `json:"height"`
	Crop   float64 `json:"crop"`
	Resize string  `json:"resize"`
	// Pixels says how pixel values enter the model (the model's input
	// quantization does any normalisation).
	Pixels string `json:"pixels"`
	// Fit is how Width×Height was chosen against the frames: "squash"
	// (the model's stored size whatever the frame's aspect) or
	// "keep-aspect" (a non-square input matching the good frames' aspect).
	// Empty in banks written before it was recorded: squash. The frame is
	// resized to Width×Height either way; Fit and Why say why that size.
	Fit string `json:"fit,omitempty"`
	// Why is the reason for the geometry, in words (the automatic rule's,
	// or "flags").
	Why string `json:"why,omitempty"`
	// ROI, when set, is the region of interest on the model input (with
	// Tiles: on the canvas): patches whose centre lies outside it are not
	// learnt, not scored, and zero in maps. Absent: the whole frame.
	ROI *ROI `json:"roi,omitempty"`
	// Tiles, when set, cuts frames much larger than the model input into
	// overlapping tiles: the frame is resized to the canvas, and Cols×Rows
	// tiles of Width×Height are spread evenly over it (the first at the
	// top left, the last at the bottom right). Each tile is scored, the
	// maps are stitched on the canvas, the image score is over all tiles.
	// Absent: one tile, the frame resized to Width×Height.
	Tiles *Tiles `json:"tiles,omitempty"`
}

// Tiles is a tiling of the canvas (see Preprocess.Tiles).
type Tiles struct {
	Cols    int `json:"cols"`
	Rows    int `json:"rows"`
	CanvasW int `json:"canvas_w"`
	CanvasH int `json:"canvas_h"`
}

// MaxTiles bounds Cols and Rows.
const MaxTiles = 16

// MaxROIRuns bounds the run lengths of a stored region of interest.
const MaxROIRuns = 1 << 16

// ROI is a region of interest rasterised on the Width×Height model input
// (with tiles, on the CanvasW×CanvasH canvas): Runs are run lengths over its pixels in row-major order, alternating
// outside and inside, starting outside (a first run of 0 starts inside).
type ROI struct {
	// Source says what it was drawn from (a polygon list or a mask file)
	// and in which frame size, for people reading the bank.
	Source string  `json:"source"`
	Runs   []int32 `json:"runs"`
}

// Inside expands r to one flag per input pixel (w·h), true inside.
func (r *ROI) Inside(w, h int) ([]bool, error) {
	out := make([]bool, w*h)
	p, in := 0, false
	for i, n := range r.Runs {
		if n < 0 || int(n) > len(out)-p {
			return nil, fmt.Errorf("%w: preprocess.roi.runs[%d]: %d overruns the %dx%d input", ErrCorrupt, i, n, w, h)
		}
		if in {
			for k := p; k < p+int(n); k++ {
				out[k] = true
			}
		}
		p += int(n)
		in = !in
	}
	if p != len(out) {
		return nil, fmt.Errorf("%w: preprocess.roi.runs cover %d pixels of the %dx%d input", ErrCorrupt, p, w, h)
	}
	return out, nil
}

// NewROI run-length encodes an input-sized inside mask.
func NewROI(source string, inside []bool) *ROI {
	r := &ROI{Source: source}
	cur, n := false, int32(0)
	for _, v := range inside {
		if v != cur {
			r.Runs = append(r.Runs, n)
			cur, n = v, 0
		}
		n++
	}
	r.Runs = append(r.Runs, n)
	return r
}

// Embed is the patch embedding recipe.
type Embed struct {
	Pool     string `json:"pool"`     // e.g. "avg3x3-s1-p1-include-pad"
	Upsample string `json:"upsample"` // e.g. "bilinear-half-pixel"
	GridW    int    `json:"grid_w"`   // patch grid (the first tap's map)
	GridH    int    `json:"grid_h"`
	TapDims  []int  `json:"tap_dims"` // channels per tap, in tap order
	// Project > 0 projects the concatenated vector to Project dimensions
	// with a seeded Gaussian matrix (ProjectSeed).
	Project     int    `json:"project,omitempty"`
	ProjectSeed uint64 `json:"project_seed,omitempty"`
}

// Score says how patch and image scores are computed.
type Score struct {
	Distance string  `json:"distance"` // "l2"
	K        int     `json:"k"`        // neighbours per patch score (1: the nearest)
	Image    string  `json:"image"`    // "eq7" or "max"
	B        int     `json:"b"`        // neighbours for Eq. 7
	Upsample string  `json:"upsample"` // patch grid -> input, e.g. "bilinear-half-pixel"
	Sigma    float64 `json:"sigma"`    // Gaussian blur of the map, input pixels
	Border   string  `json:"border"`   // blur border, e.g. "reflect"
}

// Coreset records how the vectors were selected.
type Coreset struct {
	Method     string  `json:"method"` // "greedy-k-center"
	Ratio      float64 `json:"ratio"`
	Max        int     `json:"max,omitempty"`
	Seed       uint64  `json:"seed"`
	ProjectDim int     `json:"project_dim"` // 0: selected on the vectors themselves
	Patches    int     `json:"patches"`     // candidates
	Seconds    float64 `json:"seconds"`
	// Radius is the coverage radius in feature units: the largest distance
	// from a candidate patch to its nearest bank vector (the k-center
	// radius). 0 in banks written before it was recorded.
	Radius float64 `json:"radius,omitempty"`
}

// Images counts the good images used.
type Images struct {
	Train        int      `json:"train"`
	Holdout      int      `json:"holdout"`
	HoldoutFiles []string `json:"holdout_files,omitempty"`
}

// MaxScores bounds the calibration scores a bank keeps
// (Threshold.Scores, Threshold.MapMaxima): so many, of any value, still
// fit the stored metadata's size limit (tested).
const MaxScores = 10000

// Threshold is the pass/fail decision and how it was calibrated.
type Threshold struct {
	Rule       string  `json:"rule"`        // "tail", "max-margin", "quantile" or "sigma"
	Param      float64 `json:"param"`       // target false-reject rate, margin, quantile or k
	Value      float64 `json:"value"`       // image score above which a part fails
	Pixel      float64 `json:"pixel"`       // anomaly-map value above which a pixel is anomalous
	Width      float64 `json:"width"`       // logistic width of the normalized score
	Stats      Stats   `json:"stats"`       // calibration image scores
	PixelStats Stats   `json:"pixel_stats"` // their per-image map maxima
	// F1 is the F1-optimal threshold when labelled defects were given.
	F1 *F1Threshold `json:"f1,omitempty"`

	// Target is the target false-reject rate of the "tail" rule (its Param).
	Target float64 `json:"target_frr,omitempty"`
	// ExpectedFRR is the share of good parts expected to fail at Value:
	// Target for "tail", the tail model's estimate for the other rules.
	ExpectedFRR float64 `json:"expected_frr,omitempty"`
	// Folds is the number of out-of-fold calibration folds; 0 means a
	// single held-out share (Images.Holdout).
	Folds int `json:"folds,omitempty"`
	// Scores are the calibration image scores themselves (good images
	// each scored by a bank that did not learn from them), and MapMaxima
	// the largest anomaly-map value of each, in the same order. Absent in
	// banks written before they were kept.
	Scores    []float64 `json:"scores,omitempty"`
	MapMaxima []float64 `json:"map_maxima,omitempty"`
}

// F1Threshold is a threshold chosen on labelled data.
type F1Threshold struct {
	Value   float64 `json:"value"`
	F1      float64 `json:"f1"`
	Defects int     `json:"defects"`
}

// Stats summarises a set of scores.
type Stats struct {
	N    int     `json:"n"`
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	Max  float64 `json:"max"`
}

// Validate checks that m is complete and consistent, and bounds every
// number that sizes memory or work. Errors name the field. Whether this
// build implements the recipe's named methods (resize, pooling, distance,
// image score...) is package patchcore's to say (patchcore.CheckRecipe).
func (m *Meta) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, field, fmt.Sprintf(format, a...))
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case m.Format != FormatVersion:
		return fmt.Errorf("%w: format %d, this build reads format %d", ErrFormat, m.Format, FormatVersion)
	case m.Dim <= 0 || m.Dim > MaxDim:
		return bad("dim", "%d outside 1..%d", m.Dim, MaxDim)
	case m.Count <= 0 || m.Count > math.MaxInt32/m.Dim:
		return bad("count", "%d vectors of %d not allowed", m.Count, m.Dim)
	case !(m.Scale > 0) || !finite(float64(m.Scale)):
		return bad("scale", "%v is not a positive finite number", m.Scale)
	case len(m.SHA256) != 64:
		return bad("sha256", "%q is not a hex SHA-256", m.SHA256)
	case len(m.Model.SHA256) != 64:
		return bad("model.sha256", "%q is not a hex SHA-256", m.Model.SHA256)
	case len(m.Model.Taps) == 0:
		return bad("model.taps", "no taps")
	case len(m.Embed.TapDims) != len(m.Model.Taps):
		return bad("embed.tap_dims", "%d dims for %d taps", len(m.Embed.TapDims), len(m.Model.Taps))
	case m.Preprocess.Width <= 0 || m.Preprocess.Height <= 0 || m.Preprocess.Width > 1<<14 || m.Preprocess.Height > 1<<14:
		return bad("preprocess", "input %dx%d", m.Preprocess.Width, m.Preprocess.Height)
	case !finite(m.Preprocess.Crop) || m.Preprocess.Crop < 0 || m.Preprocess.Crop > 1:
		return bad("preprocess.crop", "%v outside [0, 1]", m.Preprocess.Crop)
	case m.Embed.GridW <= 0 || m.Embed.GridH <= 0 || m.Embed.GridW > m.Preprocess.Width || m.Embed.GridH > m.Preprocess.Height:
		return bad("embed.grid", "%dx%d for input %dx%d", m.Embed.GridW, m.Embed.GridH, m.Preprocess.Width, m.Preprocess.Height)
	case m.Embed.Project < 0 || m.Embed.Project > MaxDim:
		return bad("embed.project", "%d", m.Embed.Project)
	case m.Score.K < 1 || m.Score.K > 1024:
		return bad("score.k", "%d outside 1..1024", m.Score.K)
	case m.Score.B < 0 || m.Score.B > 1024:
		return bad("score.b", "%d outside 0..1024", m.Score.B)
	case !finite(m.Score.Sigma) || m.Score.Sigma < 0 || m.Score.Sigma > 64:
		return bad("score.sigma", "%v outside [0, 64]", m.Score.Sigma)
	case !finite(m.Threshold.Value) || m.Threshold.Value < 0:
		return bad("threshold.value", "%v", m.Threshold.Value)
	case !finite(m.Threshold.Pixel) || m.Threshold.Pixel < 0:
		return bad("threshold.pixel", "%v", m.Threshold.Pixel)
	case !finite(m.Threshold.Width) || m.Threshold.Width <= 0:
		return bad("threshold.width", "%v is not positive", m.Threshold.Width)
	case !finite(m.Threshold.Target) || m.Threshold.Target < 0 || m.Threshold.Target >= 1:
		return bad("threshold.target_frr", "%v outside [0, 1)", m.Threshold.Target)
	case !finite(m.Threshold.ExpectedFRR) || m.Threshold.ExpectedFRR < 0 || m.Threshold.ExpectedFRR > 1:
		return bad("threshold.expected_frr", "%v outside [0, 1]", m.Threshold.ExpectedFRR)
	case m.Threshold.Folds < 0 || m.Threshold.Folds > MaxScores:
		return bad("threshold.folds", "%d outside 0..%d", m.Threshold.Folds, MaxScores)
	case len(m.Threshold.Scores) > MaxScores:
		return bad("threshold.scores", "%d scores, at most %d", len(m.Threshold.Scores), MaxScores)
	case len(m.Threshold.MapMaxima) != 0 && len(m.Threshold.MapMaxima) != len(m.Threshold.Scores):
		return bad("threshold.map_maxima", "%d maxima for %d scores", len(m.Threshold.MapMaxima), len(m.Threshold.Scores))
	case !finite(m.Coreset.Radius) || m.Coreset.Radius < 0:
		return bad("coreset.radius", "%v is not a finite number >= 0", m.Coreset.Radius)
	case len(m.Preprocess.Why) > 1024:
		return bad("preprocess.why", "%d bytes, at most 1024", len(m.Preprocess.Why))
	}
	if tl := m.Preprocess.Tiles; tl != nil {
		w, h := m.Preprocess.Width, m.Preprocess.Height
		switch {
		case tl.Cols < 1 || tl.Rows < 1 || tl.Cols > MaxTiles || tl.Rows > MaxTiles:
			return bad("preprocess.tiles", "%dx%d tiles, each 1..%d", tl.Cols, tl.Rows, MaxTiles)
		case tl.CanvasW < w || tl.CanvasH < h || tl.CanvasW > tl.Cols*w || tl.CanvasH > tl.Rows*h:
			return bad("preprocess.tiles", "canvas %dx%d for %dx%d tiles of %dx%d (gaps between tiles)", tl.CanvasW, tl.CanvasH, tl.Cols, tl.Rows, w, h)
		case (tl.Cols == 1) != (tl.CanvasW == w) || (tl.Rows == 1) != (tl.CanvasH == h):
			return bad("preprocess.tiles", "canvas %dx%d and %dx%d tiles of %dx%d do not match", tl.CanvasW, tl.CanvasH, tl.Cols, tl.Rows, w, h)
		}
	}
	if r := m.Preprocess.ROI; r != nil {
		if len(r.Runs) == 0 || len(r.Runs) > MaxROIRuns || len(r.Source) > 1024 {
			return bad("preprocess.roi", "%d runs (1..%d allowed), source of %d bytes", len(r.Runs), MaxROIRuns, len(r.Source))
		}
		// The region is rasterised on the model input, or with tiles on
		// the canvas the tiles cut.
		w, h, on := m.Preprocess.Width, m.Preprocess.Height, "input"
		if tl := m.Preprocess.Tiles; tl != nil {
			w, h, on = tl.CanvasW, tl.CanvasH, "canvas"
		}
		total := 0
		for i, n := range r.Runs {
			if n < 0 || int(n) > w*h-total {
				return bad(fmt.Sprintf("preprocess.roi.runs[%d]", i), "%d overruns the %dx%d %s", n, w, h, on)
			}
			total += int(n)
		}
		if total != w*h {
			return bad("preprocess.roi.runs", "cover %d pixels of the %dx%d %s", total, w, h, on)
		}
	}
	for _, f := range []struct {
		name string
		v    []float64
	}{{"threshold.scores", m.Threshold.Scores}, {"threshold.map_maxima", m.Threshold.MapMaxima}} {
		for i, x := range f.v {
			if !finite(x) || x < 0 {
				return bad(fmt.Sprintf("%s[%d]", f.name, i), "%v is not a finite number >= 0", x)
			}
		}
	}
	dims := 0
	for i, d := range m.Embed.TapDims {
		if d <= 0 || d > MaxDim {
			return bad(fmt.Sprintf("embed.tap_dims[%d]", i), "%d", d)
		}
		dims += d
	}
	want := dims
	if m.Embed.Project > 0 {
		want = m.Embed.Project
	}
	if want != m.Dim {
		return bad("dim", "%d, but the embedding recipe gives %d", m.Dim, want)
	}
	return nil
}
