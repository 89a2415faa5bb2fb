package patchcore

import (
	"fmt"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
)

// framer turns a frame into the patch vectors a bank scores: one pass of
// the backbone over the frame resized to the model input, or with tiles one
// pass per tile of the frame resized to the canvas, the tiles' vectors one
// after the other (tile-major, each tile's grid row-major). It reuses its
// buffers: after the first frame it allocates nothing.
type framer struct {
	feeder   *model.Feeder // to the model input, or to the canvas with tiles
	tiles    *bank.Tiles
	inW, inH int
	offs     [][2]int  // each tile's top-left corner on the canvas
	esize    int       // bytes per input element
	tile     []byte    // one tile's input
	vecs     []float32 // every tile's vectors (tiles only)
}

// newFramer prepares frames for input in (the model input) with centre crop
// crop and tiling tl (nil: none).
func newFramer(in model.TensorInfo, crop float64, tl *bank.Tiles, cellsDim int) (*framer, error) {
	f := &framer{tiles: tl, inW: in.Shape[2], inH: in.Shape[1]}
	if tl == nil {
		fd, err := model.NewFeeder(in, crop)
		if err != nil {
			return nil, err
		}
		f.feeder = fd
		return f, nil
	}
	canvas := in
	canvas.Shape = []int{1, tl.CanvasH, tl.CanvasW, in.Shape[3]}
	fd, err := model.NewFeeder(canvas, crop)
	if err != nil {
		return nil, err
	}
	f.feeder = fd
	f.offs = tileOffsets(tl, f.inW, f.inH)
	f.esize = in.Type.Size()
	f.tile = make([]byte, in.Bytes())
	f.vecs = make([]float32, len(f.offs)*cellsDim)
	return f, nil
}

// count is the number of backbone passes per frame.
func (f *framer) count() int { return max(1, len(f.offs)) }

// tileOffsets spreads tl's tiles evenly: the first at 0, the last flush
// with the canvas's far edge.
func tileOffsets(tl *bank.Tiles, w, h int) [][2]int {
	at := func(i, n, canvas, size int) int {
		if n == 1 {
			return 0
		}
		return (i*(canvas-size) + (n-1)/2) / (n - 1)
	}
	var out [][2]int
	for r := range tl.Rows {
		for c := range tl.Cols {
			out = append(out, [2]int{at(c, tl.Cols, tl.CanvasW, w), at(r, tl.Rows, tl.CanvasH, h)})
		}
	}
	return out
}

// embed runs the backbone over img (every tile) and returns its patch
// vectors (valid until the next call), adding the stage times to tm.
func (f *framer) embed(bb model.Backbone, emb *Embedder, img *rgb.Image, tm *Timing) ([]float32, error) {
	return f.embedKeep(bb, emb, img, tm, nil)
}

// tapBytes is the size of a frame's taps (every tile's) that embedKeep
// keeps.
func (f *framer) tapBytes(emb *Embedder) int { return f.count() * emb.tapBytes() }

// embedKeep is embed that also copies the frame's taps into keep (nil:
// not kept; else tapBytes long), for reembed.
func (f *framer) embedKeep(bb model.Backbone, emb *Embedder, img *rgb.Image, tm *Timing, keep []byte) ([]float32, error) {
	t0 := time.Now()
	if f.tiles == nil {
		if err := f.feeder.Feed(bb, img); err != nil {
			return nil, err
		}
		t1 := time.Now()
		if err := bb.Invoke(); err != nil {
			return nil, err
		}
		t2 := time.Now()
		v, err := emb.Embed(bb)
		if err != nil {
			return nil, err
		}
		if keep != nil {
			emb.saveTaps(keep)
		}
		tm[StagePreprocess], tm[StageBackbone], tm[StageEmbed] = t1.Sub(t0), t2.Sub(t1), time.Since(t2)
		return v, nil
	}
	raw, err := f.feeder.Prepare(img)
	if err != nil {
		return nil, err
	}
	tm[StagePreprocess], tm[StageBackbone], tm[StageEmbed] = time.Since(t0), 0, 0
	row := f.inW * 3 * f.esize
	cw := f.tiles.CanvasW * 3 * f.esize
	per := len(f.vecs) / len(f.offs)
	for i, o := range f.offs {
		t1 := time.Now()
		for y := range f.inH {
			src := (o[1]+y)*cw + o[0]*3*f.esize
			copy(f.tile[y*row:(y+1)*row], raw[src:src+row])
		}
		if err := bb.SetInput(f.tile); err != nil {
			return nil, err
		}
		t2 := time.Now()
		if err := bb.Invoke(); err != nil {
			return nil, err
		}
		t3 := time.Now()
		v, err := emb.Embed(bb)
		if err != nil {
			return nil, err
		}
		copy(f.vecs[i*per:(i+1)*per], v)
		if keep != nil {
			emb.saveTaps(keep[i*emb.tapBytes():])
		}
		tm[StagePreprocess] += t2.Sub(t1)
		tm[StageBackbone] += t3.Sub(t2)
		tm[StageEmbed] += time.Since(t3)
	}
	return f.vecs, nil
}

// reembed returns the patch vectors of the frame whose taps embedKeep
// kept in keep: the vectors embed returned for it (valid until the next
// call).
func (f *framer) reembed(emb *Embedder, keep []byte) []float32 {
	if f.tiles == nil {
		return emb.reembed(keep)
	}
	per, tb := len(f.vecs)/len(f.offs), emb.tapBytes()
	for i := range f.offs {
		copy(f.vecs[i*per:(i+1)*per], emb.reembed(keep[i*tb:(i+1)*tb]))
	}
	return f.vecs
}

// TileGeometry chooses tiles for frames of fw×fh (after the crop) whose
// short side is more than tileAbove times the model's short side s: the
// frame is resized so that it shrinks by tileShrink (the scale of the
// published recipe on MVTec AD's 900-1024 pixel frames, about 4x), keeping
// its aspect, and cut into overlapping s×s tiles (at least 1/8 overlap).
// It returns nil when the frames are not that large.
func TileGeometry(s, cw, ch int) (*bank.Tiles, string) {
	short := min(cw, ch)
	if short <= tileAbove*s {
		return nil, ""
	}
	cs := max(s, (short/tileShrink+gridStep/2)/gridStep*gridStep)
	tw, th := KeepAspect(cs, cw, ch)
	tl := TilesFor(tw, th, s, s)
	why := fmt.Sprintf("the model's %d on the short side would shrink them %.1fx (more than %dx): resize to %dx%d (%dx) and score %dx%d overlapping %dx%d tiles",
		s, float64(short)/float64(s), tileAbove, tw, th, tileShrink, tl.Cols, tl.Rows, s, s)
	return tl, why
}

// TilesFor covers a cw×ch canvas with the fewest w×h tiles that overlap
// by at least 1/8 of a tile.
func TilesFor(cw, ch, w, h int) *bank.Tiles {
	n := func(canvas, size int) int {
		if canvas <= size {
			return 1
		}
		step := size - size/8
		return (canvas-size+step-1)/step + 1
	}
	return &bank.Tiles{Cols: n(cw, w), Rows: n(ch, h), CanvasW: max(cw, w), CanvasH: max(ch, h)}
}

// Tiling thresholds (see TileGeometry).
const (
	tileAbove  = 6
	tileShrink = 4
)
