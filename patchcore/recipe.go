package patchcore

import (
	"fmt"
	"slices"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/model"
)

// The recipe names this build implements. A bank records them; Open
// refuses a bank that names anything else, since it would score
// differently here than where it was built.
const (
	ResizeAntialiased = "antialiased-bilinear" // model.Feeder's resize
	PixelsRGB8        = "rgb8"                 // 8-bit RGB into the model's input quantization
	PoolAvg3x3        = "avg3x3-s1-p1-include-pad"
	UpsampleBilinear  = "bilinear-half-pixel"
	DistanceL2        = "l2"
	BorderReflect     = "reflect"
	ImageEq7          = "eq7"
	ImageMax          = "max"
)

// Recipe is what a user chooses about how frames become scores. Stamp
// writes it, with everything this build fixes (resize filter, pixel format,
// pooling, upsampling, distance, map border) and everything the model
// decides (input size, grid, tap widths), into a bank's metadata;
// CheckRecipe refuses a bank this build would score differently. Both, and
// RecipeOf, are the only places that write or read those fields.
type Recipe struct {
	Taps    []string // feature-map tensors, finest first; default DefaultTaps
	Crop    float64  // centre crop fraction of the shorter side, 0 = whole frame
	Project int      // embedding projection dimensions, 0 = none
	Image   string   // image score: ImageEq7 (default) or ImageMax
	B       int      // Eq. 7 neighbours, default 9
	Sigma   float64  // map blur in input pixels, default 4

	// InputW×InputH is the model input the frames are resized to; 0 is
	// the size stored in the model file. Another size runs the backbone at
	// that size (model.AtInputSize): a fully convolutional backbone gives a
	// larger or non-square patch grid with the same weights.
	InputW, InputH int
	// Fit and Why record how the size was chosen (FitSquash,
	// FitKeepAspect; AutoGeometry's reason, or the flags').
	Fit, Why string
	// ROI, when set, is the region of interest on the model input, or
	// with Tiles on the canvas (ROIFromPolygons, ROIFromMask at ROISize).
	ROI *bank.ROI
	// Tiles, when set, scores frames much larger than the input as
	// overlapping tiles of InputW×InputH over a canvas (TileGeometry).
	Tiles *bank.Tiles
}

// RecipeOf is the recipe bank metadata m was built with: re-teaching a
// station builds its new bank the way its current one was built.
func RecipeOf(m *bank.Meta) Recipe {
	return Recipe{Taps: slices.Clone(m.Model.Taps), Crop: m.Preprocess.Crop, Project: m.Embed.Project,
		Image: m.Score.Image, B: m.Score.B, Sigma: m.Score.Sigma,
		InputW: m.Preprocess.Width, InputH: m.Preprocess.Height, Fit: m.Preprocess.Fit, Why: m.Preprocess.Why, ROI: m.Preprocess.ROI, Tiles: m.Preprocess.Tiles}
}

func (r *Recipe) defaults() {
	if r.Image == "" {
		r.Image = ImageEq7
	}
	if r.B == 0 {
		r.B = 9
	}
	if r.Sigma == 0 {
		r.Sigma = 4
	}
}

// Stamp writes the recipe into m for a backbone whose input is in and
// whose taps e embeds; seed is the projection's seed.
func (r Recipe) Stamp(m *bank.Meta, in model.TensorInfo, e *Embedder, seed uint64) {
	r.defaults()
	gw, gh := e.Grid()
	m.Model.Taps = slices.Clone(r.Taps)
	fit, why := r.Fit, r.Why
	if fit == "" {
		fit = FitSquash
	}
	if why == "" {
		why = "the model's own input size"
	}
	m.Preprocess = bank.Preprocess{Width: in.Shape[2], Height: in.Shape[1], Crop: r.Crop, Resize: ResizeAntialiased, Pixels: PixelsRGB8,
		Fit: fit, Why: why, ROI: r.ROI, Tiles: r.Tiles}
	m.Embed = bank.Embed{Pool: PoolAvg3x3, Upsample: UpsampleBilinear, GridW: gw, GridH: gh,
		TapDims: slices.Clone(e.TapDims()), Project: r.Project}
	if r.Project > 0 {
		m.Embed.ProjectSeed = seed
	}
	m.Score = bank.Score{Distance: DistanceL2, K: 1, Image: r.Image, B: r.B, Upsample: UpsampleBilinear,
		Sigma: r.Sigma, Border: BorderReflect}
	m.Dim = e.Dim()
}

// CheckRecipe refuses a bank whose recipe this build does not implement,
// naming the field. (bank.Meta.Validate has already bounded the numbers.)
func CheckRecipe(m *bank.Meta) error {
	for _, f := range []struct{ field, got, want string }{
		{"preprocess.resize", m.Preprocess.Resize, ResizeAntialiased},
		{"preprocess.pixels", m.Preprocess.Pixels, PixelsRGB8},
		{"embed.pool", m.Embed.Pool, PoolAvg3x3},
		{"embed.upsample", m.Embed.Upsample, UpsampleBilinear},
		{"score.distance", m.Score.Distance, DistanceL2},
		{"score.upsample", m.Score.Upsample, UpsampleBilinear},
		{"score.border", m.Score.Border, BorderReflect},
	} {
		if f.got != f.want {
			return fmt.Errorf("%w: bank %d has %s %q; this build scores with %q", ErrMismatch, m.Version, f.field, f.got, f.want)
		}
	}
	if f := m.Preprocess.Fit; f != "" && f != FitSquash && f != FitKeepAspect {
		return fmt.Errorf("%w: bank %d has preprocess.fit %q; this build knows %q and %q", ErrMismatch, m.Version, f, FitSquash, FitKeepAspect)
	}
	if m.Score.K != 1 {
		return fmt.Errorf("%w: bank %d has score.k %d; patch scores here use the nearest neighbour (k = 1)", ErrMismatch, m.Version, m.Score.K)
	}
	if m.Score.Image != ImageEq7 && m.Score.Image != ImageMax {
		return fmt.Errorf("%w: bank %d has score.image %q; this build scores %q or %q", ErrMismatch, m.Version, m.Score.Image, ImageEq7, ImageMax)
	}
	return nil
}
