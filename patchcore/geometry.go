package patchcore

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
)

// How the model input's size is chosen against the frames (bank.Preprocess.Fit).
const (
	FitSquash     = "squash"      // the model's stored input size, whatever the frame's aspect
	FitKeepAspect = "keep-aspect" // a non-square input with the frames' aspect
)

// nearSquare is the aspect ratio (long/short) up to which frames count as
// square: squashing them distorts both axes by less than 15%.
const nearSquare = 1.15

// gridStep is what a keep-aspect input's sides are rounded to: the stride
// of the deepest default tap (layer3 of a ResNet, 1/16), so that the patch
// grid covers the input evenly.
const gridStep = 16

// Choice is a model-input geometry and why it was chosen.
type Choice struct {
	W, H  int
	Fit   string
	Why   string
	Tiles *bank.Tiles // overlapping tiles for large frames, nil: none
}

// ParseSize reads "WxH" (e.g. "224x560").
func ParseSize(s string) (w, h int, err error) {
	a, b, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	if ok {
		w, err = strconv.Atoi(a)
		if err == nil {
			h, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || w < 16 || h < 16 || w > 1<<14 || h > 1<<14 {
		return 0, 0, fmt.Errorf("patchcore: input size %q: want WxH with sides in 16..%d", s, 1<<14)
	}
	return w, h, nil
}

// StoredInput is the model's own input size (width, height).
func StoredInput(m *tflite.Model) (w, h int, err error) {
	sg := &m.Subgraphs[0]
	if len(sg.Inputs) != 1 {
		return 0, 0, fmt.Errorf("patchcore: the model has %d inputs; backbones take one image", len(sg.Inputs))
	}
	in := model.InfoOf(m, int(sg.Inputs[0]))
	if len(in.Shape) != 4 {
		return 0, 0, fmt.Errorf("patchcore: model input %s is not NHWC", in)
	}
	return in.Shape[2], in.Shape[1], nil
}

// MedianSize is the median frame width and height of sizes.
func MedianSize(sizes [][2]int) (w, h int) {
	if len(sizes) == 0 {
		return 0, 0
	}
	ws, hs := make([]int, len(sizes)), make([]int, len(sizes))
	for i, s := range sizes {
		ws[i], hs[i] = s[0], s[1]
	}
	slices.Sort(ws)
	slices.Sort(hs)
	return ws[len(ws)/2], hs[len(hs)/2]
}

// AutoGeometry chooses the model input for good frames of the given sizes
// (after the centre crop crop, 0 = none) and a model stored at sw×sh.
//
// The rule follows from the geometry alone: the backbone sees frames at the
// scale it was made for (its stored short side S), and no axis is shrunk
// more than the other. Near-square frames (aspect up to 1.15) are squashed
// to the stored input, as published; elongated frames get a non-square
// input with their aspect, short side S and long side rounded to the
// deepest tap's stride (16), so a thin defect across the long axis keeps as
// many pixels as one across the short axis instead of being shrunk by the
// aspect ratio a second time.
func AutoGeometry(sw, sh int, sizes [][2]int, crop float64) Choice {
	fw, fh := MedianSize(sizes)
	if fw <= 0 || fh <= 0 {
		return Choice{W: sw, H: sh, Fit: FitSquash, Why: "no frame sizes: the model's own input"}
	}
	_, _, cw, ch := rgb.CenterCrop(fw, fh, crop)
	aspect := float64(cw) / float64(ch)
	long := math.Max(aspect, 1/aspect)
	if tl, why := TileGeometry(min(sw, sh), cw, ch); tl != nil {
		s := min(sw, sh)
		return Choice{W: s, H: s, Fit: FitKeepAspect, Tiles: tl, Why: fmt.Sprintf("frames %dx%d are large: %s", fw, fh, why)}
	}
	if long <= nearSquare {
		return Choice{W: sw, H: sh, Fit: FitSquash, Why: fmt.Sprintf(
			"frames %dx%d are near square (aspect %.2f <= %.2f): the model's own %dx%d input, as published", fw, fh, long, nearSquare, sw, sh)}
	}
	s := min(sw, sh)
	c := Choice{Fit: FitKeepAspect}
	c.W, c.H = KeepAspect(s, cw, ch)
	c.Why = fmt.Sprintf("frames %dx%d have aspect %.2f: a squash to %dx%d would shrink one axis %.2fx more than the other; keep the aspect, short side at the model's %d: %dx%d",
		fw, fh, long, sw, sh, long, s, c.W, c.H)
	return c
}

// KeepAspect is the input of short side s with the aspect of cw×ch frames,
// the long side rounded to the deepest tap's stride (16).
func KeepAspect(s, cw, ch int) (w, h int) {
	long := math.Max(float64(cw)/float64(ch), float64(ch)/float64(cw))
	l := max(gridStep, int(math.Round(float64(s)*long/gridStep))*gridStep)
	if ch > cw {
		return s, l
	}
	return l, s
}

// Point is a vertex of a region-of-interest polygon, in frame pixels.
type Point struct{ X, Y float64 }

// ParsePolygons reads polygons in frame pixels, one per line, as
// "x,y x,y x,y ..." (at least 3 vertices); blank lines and lines starting
// with '#' are skipped.
func ParsePolygons(text string) ([][]Point, error) {
	var out [][]Point
	for ln, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var poly []Point
		for _, f := range strings.Fields(line) {
			xs, ys, ok := strings.Cut(f, ",")
			x, err1 := strconv.ParseFloat(xs, 64)
			y, err2 := strconv.ParseFloat(ys, 64)
			if !ok || err1 != nil || err2 != nil || math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
				return nil, fmt.Errorf("patchcore: roi line %d: %q is not x,y", ln+1, f)
			}
			poly = append(poly, Point{x, y})
		}
		if len(poly) < 3 {
			return nil, fmt.Errorf("patchcore: roi line %d: a polygon needs at least 3 vertices, got %d", ln+1, len(poly))
		}
		if len(poly) > 10000 {
			return nil, fmt.Errorf("patchcore: roi line %d: %d vertices, at most 10000", ln+1, len(poly))
		}
		out = append(out, poly)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("patchcore: roi: no polygon")
	}
	return out, nil
}

// inPolygon is the even-odd rule.
func inPolygon(p []Point, x, y float64) bool {
	in := false
	for i, j := 0, len(p)-1; i < len(p); j, i = i, i+1 {
		a, b := p[i], p[j]
		if (a.Y > y) != (b.Y > y) && x < (b.X-a.X)*(y-a.Y)/(b.Y-a.Y)+a.X {
			in = !in
		}
	}
	return in
}

// ROIFromPolygons rasterises polygons drawn on fw×fh frames onto the
// iw×ih model input of those frames (after centre crop crop): an input
// pixel is inside when the frame point at its centre is inside a polygon.
func ROIFromPolygons(polys [][]Point, fw, fh int, crop float64, iw, ih int) (*bank.ROI, error) {
	inside := make([]bool, iw*ih)
	x0, y0, cw, ch := rgb.CenterCrop(fw, fh, crop)
	for iy := range ih {
		fy := float64(y0) + (float64(iy)+0.5)*float64(ch)/float64(ih)
		for ix := range iw {
			fx := float64(x0) + (float64(ix)+0.5)*float64(cw)/float64(iw)
			for _, p := range polys {
				if inPolygon(p, fx, fy) {
					inside[iy*iw+ix] = true
					break
				}
			}
		}
	}
	return finishROI(fmt.Sprintf("%d polygon(s) on %dx%d frames", len(polys), fw, fh), inside)
}

// ROIFromMask rasterises a mask image the size of the frames (any non-zero
// channel above 127 is inside) onto the iw×ih model input, sampling the
// frame pixel under each input pixel's centre.
func ROIFromMask(m *rgb.Image, crop float64, iw, ih int) (*bank.ROI, error) {
	g := Geometry{FrameW: m.W, FrameH: m.H, InW: iw, InH: ih}
	g.X, g.Y, g.W, g.H = rgb.CenterCrop(m.W, m.H, crop)
	return finishROI(fmt.Sprintf("mask image of %dx%d", m.W, m.H), maskToInput(m, g))
}

func finishROI(source string, inside []bool) (*bank.ROI, error) {
	if !slices.Contains(inside, true) {
		return nil, fmt.Errorf("patchcore: the region of interest (%s) covers no pixel of the model input", source)
	}
	r := bank.NewROI(source, inside)
	if len(r.Runs) > bank.MaxROIRuns {
		return nil, fmt.Errorf("patchcore: the region of interest (%s) has %d runs on the model input, at most %d: simplify it", source, len(r.Runs), bank.MaxROIRuns)
	}
	return r, nil
}

// roiCells returns the patch cells of a gw×gh grid over an iw×ih input
// whose centre pixel is inside the ROI (nil: no ROI, every cell), and the
// per-pixel inside flags.
func roiCells(r *bank.ROI, iw, ih, gw, gh int) (cells []int32, pix []bool, err error) {
	if r == nil {
		return nil, nil, nil
	}
	pix, err = r.Inside(iw, ih)
	if err != nil {
		return nil, nil, err
	}
	for cy := range gh {
		iy := min(ih-1, int((float64(cy)+0.5)*float64(ih)/float64(gh)))
		for cx := range gw {
			ix := min(iw-1, int((float64(cx)+0.5)*float64(iw)/float64(gw)))
			if pix[iy*iw+ix] {
				cells = append(cells, int32(cy*gw+cx))
			}
		}
	}
	if len(cells) == 0 {
		return nil, nil, fmt.Errorf("patchcore: the region of interest (%s) holds no patch centre of the %dx%d grid", r.Source, gw, gh)
	}
	return cells, pix, nil
}

// atSize is m at input w×h for the taps (m itself at its stored size).
func atSize(m *tflite.Model, taps []string, w, h int) (*tflite.Model, error) {
	sw, sh, err := StoredInput(m)
	if err != nil {
		return nil, err
	}
	if w == 0 && h == 0 || w == sw && h == sh {
		return m, nil
	}
	rm, err := model.AtInputSize(m, taps, h, w)
	if err != nil {
		return nil, fmt.Errorf("patchcore: %w", err)
	}
	return rm, nil
}

// Cost is what one frame costs at a geometry.
type Cost struct {
	InW, InH int
	MACs     int64  // backbone multiply-accumulates up to the last tap
	Patches  int    // patch vectors searched per frame (inside the ROI, every tile's)
	Grid     [2]int // one tile's
	Tiles    int    // backbone passes per frame beyond one (0: no tiles)
}

// CostOf is the per-frame cost of scoring with bank metadata m on model mf:
// backbone MACs at the bank's input size (only the operators up to the
// taps), and the patches searched.
func CostOf(m *tflite.Model, meta *bank.Meta) (Cost, error) {
	rm, err := atSize(m, meta.Model.Taps, meta.Preprocess.Width, meta.Preprocess.Height)
	if err != nil {
		return Cost{}, err
	}
	need, err := neededForTaps(rm, meta.Model.Taps)
	if err != nil {
		return Cost{}, err
	}
	c := Cost{InW: meta.Preprocess.Width, InH: meta.Preprocess.Height, Grid: [2]int{meta.Embed.GridW, meta.Embed.GridH}}
	for i := range rm.Subgraphs[0].Operators {
		if need[i] {
			c.MACs += model.OpMACs(rm, i)
		}
	}
	c.Patches = meta.Embed.GridW * meta.Embed.GridH
	if tl := meta.Preprocess.Tiles; tl != nil {
		c.Tiles = tl.Cols * tl.Rows
		c.MACs *= int64(c.Tiles)
		c.Patches *= c.Tiles
	}
	if meta.Preprocess.ROI != nil {
		cells, _, err := frameROICells(meta.Preprocess.ROI, meta.Preprocess.Tiles, c.InW, c.InH, meta.Embed.GridW, meta.Embed.GridH)
		if err != nil {
			return Cost{}, err
		}
		c.Patches = len(cells)
	}
	return c, nil
}

// neededForTaps marks the operators that feed the taps.
func neededForTaps(m *tflite.Model, taps []string) ([]bool, error) {
	sg := &m.Subgraphs[0]
	need := make([]bool, len(sg.Tensors))
	for _, name := range taps {
		i, err := model.FindTensor(m, name)
		if err != nil {
			return nil, err
		}
		need[i] = true
	}
	run := make([]bool, len(sg.Operators))
	for oi := len(sg.Operators) - 1; oi >= 0; oi-- {
		for _, o := range sg.Operators[oi].Outputs {
			if o >= 0 && need[o] {
				run[oi] = true
			}
		}
		if run[oi] {
			for _, x := range sg.Operators[oi].Inputs {
				if x >= 0 {
					need[x] = true
				}
			}
		}
	}
	return run, nil
}
