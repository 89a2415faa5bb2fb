package patchcore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/linesight/linesight/bank"
)

// TestROIWithTiles: a region of interest drawn in frame pixels on frames
// cut into tiles (64x32 frames, a 56x32 canvas, two 32x32 tiles at x = 0
// and 24). The rectangle x in (21, 64), y in (6, 27) holds, by hand, the
// cells whose centre (canvas x0+2cx+1, 2cy+1; frame x = (canvas x + 0.5)
// · 64/56, y = canvas y + 0.5) is inside: rows 3..12, columns 9..15 of
// tile 0 and all 16 of tile 1: 230 of 512. The bank learns only those,
// the detector searches only those, and their scores equal those of the
// same bank's detector without the region; cells outside score 0 and the
// map is 0 outside the region on the canvas.
func TestROIWithTiles(t *testing.T) {
	mf := tinyModel(t)
	dir := t.TempDir()
	var good []string
	for i := range 10 {
		p := filepath.Join(dir, fmt.Sprintf("g%02d.png", i))
		tinyWide(t, p, uint64(i), -1)
		good = append(good, p)
	}
	polys, err := ParsePolygons("21,6 64,6 64,27 21,27")
	if err != nil {
		t.Fatal(err)
	}
	tl := &bank.Tiles{Cols: 2, Rows: 1, CanvasW: 56, CanvasH: 32}
	rw, rh := ROISize(32, 32, tl)
	roi, err := ROIFromPolygons(polys, 64, 32, 0, rw, rh)
	if err != nil {
		t.Fatal(err)
	}
	// The cells inside, from the frame geometry alone.
	inside := map[int]bool{}
	for tile, x0 := range []int{0, 24} {
		for cy := range 16 {
			for cx := range 16 {
				fx := (float64(x0+2*cx+1) + 0.5) * 64 / 56
				fy := float64(2*cy+1) + 0.5
				if fx > 21 && fx < 64 && fy > 6 && fy < 27 {
					inside[tile*256+cy*16+cx] = true
				}
			}
		}
	}
	if len(inside) != 230 {
		t.Fatalf("%d cells inside by the frame geometry, by hand 230", len(inside))
	}

	b, _, err := Build(context.Background(), mf, good, BuildOptions{Threads: 2, Recipe: Recipe{Taps: tinyTaps, Tiles: tl, ROI: roi}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Meta.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := 10 * 230; b.Meta.Coreset.Patches != want {
		t.Fatalf("%d candidate patches, want %d (10 images x 230 cells inside)", b.Meta.Coreset.Patches, want)
	}
	d, err := Open(b, mf, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	all := *b
	all.Meta.Preprocess.ROI = nil
	ref, err := Open(&all, mf, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if d.SearchedPatches() != 230 || d.Patches() != 512 || ref.SearchedPatches() != 512 {
		t.Fatalf("searched %d of %d patches (without the region %d)", d.SearchedPatches(), d.Patches(), ref.SearchedPatches())
	}
	c, err := CostOf(mf.Model, &b.Meta)
	if err != nil {
		t.Fatal(err)
	}
	if c.Patches != 230 || c.Tiles != 2 {
		t.Errorf("cost %+v, want 230 patches over 2 tiles", c)
	}

	p := filepath.Join(dir, "test.png")
	tinyWide(t, p, 77, 44)
	img := readImage(t, p)
	r, err := d.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ref.Inspect(img); err != nil {
		t.Fatal(err)
	}
	for cell := range 512 {
		switch got, want := d.patch[cell], ref.patch[cell]; {
		case inside[cell] && got != want:
			t.Fatalf("cell %d inside: score %v, without the region %v", cell, got, want)
		case !inside[cell] && got != 0:
			t.Fatalf("cell %d outside: score %v, want 0", cell, got)
		}
	}
	pix, err := roi.Inside(56, 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Map) != 56*32 {
		t.Fatalf("map of %d values, want the 56x32 canvas", len(r.Map))
	}
	for i, in := range pix {
		if !in && r.Map[i] != 0 {
			t.Fatalf("map pixel (%d, %d) outside the region is %v", i%56, i/56, r.Map[i])
		}
	}
	if r.Score <= 0 {
		t.Errorf("score %v", r.Score)
	}
	var rr Result
	d.InspectInto(img, &rr)
	if a := testing.AllocsPerRun(5, func() { d.InspectInto(img, &rr) }); a != 0 {
		t.Errorf("InspectInto with tiles and a region allocates %v times per frame", a)
	}

	// A region rasterised on the model input instead of the canvas does
	// not fit a tiled bank.
	onInput, err := ROIFromPolygons(polys, 64, 32, 0, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	wrong := b.Meta
	wrong.Preprocess.ROI = onInput
	if err := wrong.Validate(); err == nil {
		t.Error("a region of the model input's size was accepted on a tiled bank")
	}
}
