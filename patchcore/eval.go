package patchcore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/rgb"
)

// EvalResult holds the metrics of Evaluate. Pixel metrics cover the images
// whose masks are known: good test images (all normal) and defective ones
// with a mask file.
type EvalResult struct {
	ImageAUROC float64   `json:"image_auroc"`
	PixelAUROC float64   `json:"pixel_auroc"`
	AUPRO      float64   `json:"aupro"`
	F1         float64   `json:"f1"`
	Threshold  float64   `json:"threshold"`
	NTest      int       `json:"n_test"`
	Confusion  Confusion `json:"confusion"`
	// F1Optimal is the threshold that maximises F1 on this data.
	F1Optimal struct {
		Threshold float64   `json:"threshold"`
		F1        float64   `json:"f1"`
		Confusion Confusion `json:"confusion"`
	} `json:"f1_optimal"`
	// Tradeoff is the escape rate at false-reject rates of 0, 1, 2 and 5%
	// of the good test parts; Calibrated is where the bank's threshold
	// landed on the same data.
	Tradeoff   []TradeoffPoint `json:"tradeoff"`
	Calibrated TradeoffPoint   `json:"calibrated"`
	// PixelUnavailable says why the pixel metrics (PixelAUROC, AUPRO) were
	// not computed; they are 0 then.
	PixelUnavailable string      `json:"pixel_unavailable,omitempty"`
	PixelImages      int         `json:"pixel_images"`
	NoMask           []string    `json:"no_mask,omitempty"` // defective images without a mask
	BankVersion      uint64      `json:"bank_version"`
	Images           []EvalImage `json:"-"`
}

// EvalImage is one scored test image.
type EvalImage struct {
	Path       string
	Type       string // defect type, "good" for good parts
	Defective  bool
	Score      float64
	Normalized float64
	Fail       bool
	Regions    []Region
	Map        []float32 // input resolution
	Mask       []bool    // input resolution, nil when unknown
	Geometry   Geometry
}

// EvalOptions configures Evaluate.
type EvalOptions struct {
	// Each, if set, is called after each image is scored (reporting).
	Each func(i, n int, im *EvalImage, img *rgb.Image) error
}

// Scorer scores frames against a bank: a Detector, or in tests a
// reference that scores another way.
type Scorer interface {
	InspectInto(img *rgb.Image, r *Result) error
	Bank() *bank.Bank
}

// Evaluate scores an MVTec AD style folder: DIR/test/<type>/*.png with
// masks in DIR/ground_truth/<type>/<name>_mask.png ("good" is the normal
// type). Maps are compared with masks on the model-input grid: masks get the
// same crop and a nearest-neighbour resize.
func Evaluate(ctx context.Context, d Scorer, dir string, opts EvalOptions) (*EvalResult, error) {
	tests, err := listTests(dir)
	if err != nil {
		return nil, err
	}
	meta := &d.Bank().Meta
	res := &EvalResult{NTest: len(tests), BankVersion: meta.Version, Threshold: meta.Threshold.Value}
	var r Result
	for i, t := range tests {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("patchcore: evaluation stopped: %w", err)
		}
		img, err := rgb.ReadFile(t.Path)
		if err != nil {
			return nil, err
		}
		if err := d.InspectInto(img, &r); err != nil {
			return nil, fmt.Errorf("patchcore: %s: %w", t.Path, err)
		}
		t.Score, t.Normalized, t.Fail = r.Score, r.Normalized, r.Fail
		t.Regions = slices.Clone(r.Regions)
		t.Map = slices.Clone(r.Map)
		t.Geometry = r.Geometry
		if !t.Defective {
			t.Mask = make([]bool, len(t.Map))
		} else if mp := maskPath(dir, t); mp != "" {
			m, err := rgb.ReadFile(mp)
			if err != nil {
				return nil, fmt.Errorf("patchcore: mask of %s: %w", t.Path, err)
			}
			if m.W != img.W || m.H != img.H {
				return nil, fmt.Errorf("patchcore: mask %s is %dx%d, its image %dx%d", mp, m.W, m.H, img.W, img.H)
			}
			t.Mask = maskToInput(m, r.Geometry)
		} else {
			res.NoMask = append(res.NoMask, t.Path)
		}
		if opts.Each != nil {
			if err := opts.Each(i, len(tests), t, img); err != nil {
				return nil, err
			}
		}
	}
	scores := make([]float64, len(tests))
	labels := make([]bool, len(tests))
	var maps [][]float32
	var masks [][]bool
	for i, t := range tests {
		scores[i], labels[i] = t.Score, t.Defective
		if t.Mask != nil {
			maps = append(maps, t.Map)
			masks = append(masks, t.Mask)
		}
		res.Images = append(res.Images, *t)
	}
	res.PixelImages = len(maps)
	if res.ImageAUROC, err = AUROC(scores, labels); err != nil {
		return nil, fmt.Errorf("patchcore: image AUROC of %s: %w", dir, err)
	}
	res.Confusion = ConfusionAt(scores, labels, res.Threshold)
	res.F1 = res.Confusion.F1()
	res.F1Optimal.Threshold, res.F1Optimal.F1 = BestF1(scores, labels)
	res.F1Optimal.Confusion = ConfusionAt(scores, labels, res.F1Optimal.Threshold)
	if res.Tradeoff, err = Tradeoff(scores, labels, []float64{0, 0.01, 0.02, 0.05}); err != nil {
		return nil, err
	}
	res.Calibrated = OperatingPoint(scores, labels, res.Threshold)
	g := tests[0].Geometry
	masked := 0
	for _, t := range tests {
		if t.Defective && t.Mask != nil {
			masked++
		}
	}
	if masked == 0 {
		// Labels without masks: the common case in factories. The image
		// metrics stand on their own.
		res.PixelUnavailable = "no defective image has a mask (ground_truth/<type>/<name>_mask.png)"
		return res, nil
	}
	if res.PixelAUROC, err = PixelAUROC(maps, masks); err != nil {
		return nil, fmt.Errorf("patchcore: pixel AUROC of %s: %w", dir, err)
	}
	if res.AUPRO, err = AUPRO(maps, masks, g.InW, 0.3); err != nil {
		return nil, fmt.Errorf("patchcore: AUPRO of %s: %w", dir, err)
	}
	return res, nil
}

// listTests finds DIR/test/<type>/<image>, sorted by type then name.
func listTests(dir string) ([]*EvalImage, error) {
	root := filepath.Join(dir, "test")
	types, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("patchcore: %s is not in MVTec AD layout (test/<type>/...): %w", dir, err)
	}
	var out []*EvalImage
	for _, ty := range types {
		if !ty.IsDir() {
			continue
		}
		files, err := ImageFiles(filepath.Join(root, ty.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			out = append(out, &EvalImage{Path: f, Type: ty.Name(), Defective: ty.Name() != "good"})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("patchcore: no test images under %s", root)
	}
	return out, nil
}

func maskPath(dir string, t *EvalImage) string {
	stem := strings.TrimSuffix(filepath.Base(t.Path), filepath.Ext(t.Path))
	for _, ext := range []string{".png", ".bmp", ".jpg"} {
		p := filepath.Join(dir, "ground_truth", t.Type, stem+"_mask"+ext)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// maskToInput crops a mask like the frame and resizes it to the input grid
// with nearest neighbour (pixel centres). Any non-zero channel marks an
// anomalous pixel.
func maskToInput(m *rgb.Image, g Geometry) []bool {
	out := make([]bool, g.InW*g.InH)
	for iy := range g.InH {
		fy := g.Y + min(g.H-1, int((float64(iy)+0.5)*float64(g.H)/float64(g.InH)))
		for ix := range g.InW {
			fx := g.X + min(g.W-1, int((float64(ix)+0.5)*float64(g.W)/float64(g.InW)))
			p := m.Pix[3*(fy*m.W+fx):]
			out[iy*g.InW+ix] = p[0] > 127 || p[1] > 127 || p[2] > 127
		}
	}
	return out
}

// ErrNoImages: a folder holds no image files.
var ErrNoImages = errors.New("no PNG, JPEG or BMP images")

// ImageFiles lists the image files (PNG, JPEG, BMP) of a folder, sorted.
func ImageFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("patchcore: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink != 0 { // follow links (datasets are often linked in)
			if fi, err := os.Stat(filepath.Join(dir, e.Name())); err != nil || !fi.Mode().IsRegular() {
				continue
			}
		} else if !e.Type().IsRegular() {
			continue
		}
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".png", ".jpg", ".jpeg", ".bmp":
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("patchcore: %w in %s", ErrNoImages, dir)
	}
	return out, nil
}
