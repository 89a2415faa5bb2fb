package patchcore

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/rgb"
)

// The geometry flags and the per-frame cost, shared by `bank build`,
// `linesight plan` and `linesight bench`: one function chooses the model
// input and tiles from the frames and the flags, one counts what a frame
// costs there, one prints it, so the three commands cannot disagree.

// GeometryFlags are the user's overrides of the automatic geometry, as
// bank build, plan and bench take them ("" = not given).
type GeometryFlags struct {
	Input  string // "WxH": the model input; "N": short side N, the frames' aspect
	Resize string // FitSquash or FitKeepAspect
	Tiles  string // "WxH": the canvas to tile, or "off"
}

// ParseTiles reads a --tiles value: "off" (no tiles, also for large
// frames) or the canvas "WxH" the frame is resized to before it is cut
// into tiles.
func ParseTiles(s string) (off bool, w, h int, err error) {
	if strings.TrimSpace(strings.ToLower(s)) == "off" {
		return true, 0, 0, nil
	}
	w, h, err = ParseSize(s)
	if err != nil {
		return false, 0, 0, fmt.Errorf("patchcore: tiles %q: want off or the canvas WxH: %w", s, err)
	}
	return false, w, h, nil
}

// ChooseGeometry chooses the model input (and tiles) for good frames of
// the given sizes (after the centre crop crop) and a model stored at
// sw×sh: AutoGeometry, unless the flags say otherwise. No sizes: the
// model's own input (and no tiles unless --tiles gives a canvas).
func ChooseGeometry(sw, sh int, sizes [][2]int, crop float64, f GeometryFlags) (Choice, error) {
	fw, fh := MedianSize(sizes)
	cw, ch := sw, sh
	if fw > 0 && fh > 0 {
		_, _, cw, ch = rgb.CenterCrop(fw, fh, crop)
	}
	var c Choice
	switch {
	case f.Resize != "" && f.Resize != FitSquash && f.Resize != FitKeepAspect:
		return Choice{}, fmt.Errorf("--resize %q: want %s or %s", f.Resize, FitSquash, FitKeepAspect)
	case f.Input != "" && !strings.ContainsAny(strings.ToLower(f.Input), "x"):
		// A resolution on the short side, e.g. --input 320: the frames'
		// aspect, as keep-aspect does at the model's own size.
		n, err := strconv.Atoi(strings.TrimSpace(f.Input))
		if err != nil || n < 16 || n > 1<<14 {
			return Choice{}, fmt.Errorf("patchcore: input %q: want WxH, or the short side N in 16..%d", f.Input, 1<<14)
		}
		if f.Resize == FitSquash {
			return Choice{}, fmt.Errorf("--input %d sets the short side and keeps the frames' aspect; --resize squash wants --input WxH", n)
		}
		c = Choice{Fit: FitKeepAspect}
		c.W, c.H = KeepAspect(n, cw, ch)
		c.Why = fmt.Sprintf("flags: --input %d: %dx%d frames, short side %d, aspect kept: %dx%d", n, fw, fh, n, c.W, c.H)
	case f.Input != "":
		w, h, err := ParseSize(f.Input)
		if err != nil {
			return Choice{}, err
		}
		c = Choice{W: w, H: h, Fit: f.Resize}
		ka := float64(w) / float64(h) / (float64(cw) / float64(ch))
		same := ka > 0.95 && ka < 1.05
		switch {
		case c.Fit == "" && same:
			c.Fit = FitKeepAspect
		case c.Fit == "":
			c.Fit = FitSquash
		case c.Fit == FitKeepAspect && !same && fw > 0:
			// The frames are resized to exactly WxH: recording keep-aspect
			// for a squash would misstate the bank's geometry.
			kw, kh := KeepAspect(min(w, h), cw, ch)
			return Choice{}, fmt.Errorf("--input %dx%d --resize keep-aspect: the frames (%dx%d) have another aspect; give --input %dx%d, or --input %d (the short side), or --resize squash", w, h, cw, ch, kw, kh, min(w, h))
		}
		c.Why = fmt.Sprintf("flags: --input %dx%d for %dx%d frames (%s)", w, h, fw, fh, c.Fit)
	case f.Resize == FitSquash:
		c = Choice{W: sw, H: sh, Fit: FitSquash, Why: fmt.Sprintf("flags: --resize squash: %dx%d frames to the model's own %dx%d", fw, fh, sw, sh)}
	case f.Resize == FitKeepAspect:
		c = Choice{Fit: FitKeepAspect}
		c.W, c.H = KeepAspect(min(sw, sh), cw, ch)
		c.Why = fmt.Sprintf("flags: --resize keep-aspect: %dx%d frames, short side at the model's %d: %dx%d", fw, fh, min(sw, sh), c.W, c.H)
	default:
		c = AutoGeometry(sw, sh, sizes, crop)
		c.Why = "auto: " + c.Why
	}
	if f.Tiles != "" {
		off, tw, th, err := ParseTiles(f.Tiles)
		switch {
		case err != nil:
			return Choice{}, fmt.Errorf("--tiles: %w", err)
		case off:
			if c.Tiles != nil {
				c = Choice{W: sw, H: sh, Fit: FitSquash, Why: fmt.Sprintf("flags: --tiles off: %dx%d frames to the model's own %dx%d", fw, fh, sw, sh)}
			}
		default:
			c.Tiles = TilesFor(tw, th, c.W, c.H)
			c.Why += fmt.Sprintf("; --tiles %dx%d: %dx%d overlapping tiles of %dx%d", tw, th, c.Tiles.Cols, c.Tiles.Rows, c.W, c.H)
		}
	}
	if c.Tiles != nil && (c.Tiles.Cols > bank.MaxTiles || c.Tiles.Rows > bank.MaxTiles) {
		return Choice{}, fmt.Errorf("%dx%d tiles, at most %d a side: a smaller canvas or a larger --input", c.Tiles.Cols, c.Tiles.Rows, bank.MaxTiles)
	}
	return c, nil
}

// TileCount is the number of backbone passes per frame (1 without tiles).
func (c Cost) TileCount() int { return max(1, c.Tiles) }

// SearchMACs is the brute-force search's work per frame against a bank of
// count vectors of dim: every patch searched meets every bank vector.
func (c Cost) SearchMACs(count, dim int) int64 {
	return int64(c.Patches) * int64(count) * int64(dim)
}

// Line is the per-frame cost in words, as bank build, bench and plan print
// it after "cost": the backbone's work at the input (times the tiles), the
// patches searched and the brute-force search's work against count
// vectors of dim.
func (c Cost) Line(count, dim int) string {
	tiles := ""
	if c.Tiles > 0 {
		tiles = fmt.Sprintf(" x %d tiles", c.Tiles)
	}
	return fmt.Sprintf("per frame: backbone %.2f GMAC at %dx%d%s, %d patches (%dx%d grid%s) x %d bank vectors x %d dims = %.2f GMAC search (brute force)",
		float64(c.MACs)/1e9, c.InW, c.InH, tiles, c.Patches, c.Grid[0], c.Grid[1], tiles, count, dim, float64(c.SearchMACs(count, dim))/1e9)
}

// SearchedPatches is the number of patch vectors a frame's search looks
// up: every tile's grid, only the cells inside the region of interest.
// It equals CostOf's Patches for the detector's bank.
func (d *Detector) SearchedPatches() int {
	if d.roiCells != nil {
		return len(d.roiCells)
	}
	return len(d.patch)
}

// SearchMACs is the int8 multiply-accumulates the detector's searches
// have done so far (bank vectors and cluster centres met, times the
// dimension): the work actually done, which the clustered search keeps
// below SearchedPatches × bank size × dimension.
func (d *Detector) SearchMACs() int64 { return d.search.MACs() }

// frameROICells is roiCells for a frame cut into tiles tl (nil: none, the
// region on the iw×ih model input): the region is then rasterised on the
// canvas, and a cell of tile i is inside when its centre pixel, at the
// tile's place on the canvas, is. Cells are numbered as the framer lays
// out a frame's vectors: tile-major, each tile's grid row-major. pix is
// the canvas's inside flags (the map is stitched on the canvas).
func frameROICells(r *bank.ROI, tl *bank.Tiles, iw, ih, gw, gh int) (cells []int32, pix []bool, err error) {
	if r == nil || tl == nil {
		return roiCells(r, iw, ih, gw, gh)
	}
	pix, err = r.Inside(tl.CanvasW, tl.CanvasH)
	if err != nil {
		return nil, nil, err
	}
	for i, o := range tileOffsets(tl, iw, ih) {
		for cy := range gh {
			iy := min(ih-1, int((float64(cy)+0.5)*float64(ih)/float64(gh)))
			for cx := range gw {
				ix := min(iw-1, int((float64(cx)+0.5)*float64(iw)/float64(gw)))
				if pix[(o[1]+iy)*tl.CanvasW+o[0]+ix] {
					cells = append(cells, int32(i*gw*gh+cy*gw+cx))
				}
			}
		}
	}
	if len(cells) == 0 {
		return nil, nil, fmt.Errorf("patchcore: the region of interest (%s) holds no patch centre of the %dx%d tiles' %dx%d grids", r.Source, tl.Cols, tl.Rows, gw, gh)
	}
	return cells, pix, nil
}

// ROISize is the size a region of interest is rasterised at for a model
// input of iw×ih and tiles tl: the input, or with tiles the canvas.
func ROISize(iw, ih int, tl *bank.Tiles) (w, h int) {
	if tl != nil {
		return tl.CanvasW, tl.CanvasH
	}
	return iw, ih
}
