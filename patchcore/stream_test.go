package patchcore

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/model"
)

// TestStreamingBuildEqualsReference: Build, which keeps only its images'
// taps and quantizes each bank's patches from them, gives the bank, the
// threshold and the calibration scores of buildReference (every float
// vector kept, as Build did before), bit for bit: with folds (the fold of
// the largest value has its own scale) and without, with the scale's image
// repeated in two folds (every fold at the bank's scale), with the coreset
// on a projection and on the vectors themselves, with an embedding
// projection, tiles, a region of interest (with and without tiles) and a
// non-square input.
func TestStreamingBuildEqualsReference(t *testing.T) {
	mf := tinyModel(t)
	dir := t.TempDir()
	parts := tinyParts(t, dir, 0, 13)
	var wide []string
	for i := range 9 {
		p := filepath.Join(dir, fmt.Sprintf("w%02d.png", i))
		tinyWide(t, p, uint64(i), -1)
		wide = append(wide, p)
	}
	polys, _ := ParsePolygons("0,0 40,0 40,32 0,20")
	roi, err := ROIFromPolygons(polys, 64, 32, 0, 64, 32)
	if err != nil {
		t.Fatal(err)
	}
	tiles := &bank.Tiles{Cols: 2, Rows: 1, CanvasW: 56, CanvasH: 32}
	tiledROI, err := ROIFromPolygons(polys, 64, 32, 0, tiles.CanvasW, tiles.CanvasH)
	if err != nil {
		t.Fatal(err)
	}
	// The image holding the largest value, and the parts with it twice.
	// With an embedding projection one image holds the largest value (the
	// tiny model's pooled maps reach their largest value in many): the
	// fold holding it has a scale of its own. With that image twice, in
	// two folds, every fold has the bank's scale.
	projected := Recipe{Taps: tinyTaps, Project: 12}
	largestImage(t, mf, projected, 3, parts) // the "folds" case's premise
	var twice []string
	twiceSeed := uint64(3) // the first seed that puts the copies in two folds
	for ; ; twiceSeed++ {
		li := largestImage(t, mf, projected, twiceSeed, parts)
		twice = append(slices.Clone(parts), parts[li])
		if fold := assignFolds(len(twice), 3, twiceSeed); fold[li] != fold[len(parts)] {
			break
		}
	}

	base := BuildOptions{Recipe: Recipe{Taps: tinyTaps}, Ratio: 0.2, Seed: 3, Threads: 2}
	with := func(f func(o *BuildOptions)) BuildOptions {
		o := base
		f(&o)
		return o
	}
	for _, c := range []struct {
		name   string
		images []string
		opts   BuildOptions
	}{
		{"folds", parts, with(func(o *BuildOptions) { o.Recipe = projected })},
		{"largest value in two folds", twice, with(func(o *BuildOptions) { o.Recipe, o.Folds, o.Seed = projected, 3, twiceSeed })},
		{"largest value in many images", parts, with(func(o *BuildOptions) {})},
		{"one thread, coreset on a projection", parts, with(func(o *BuildOptions) { o.Threads, o.CoresetDim = 1, 6 })},
		{"single holdout", parts, with(func(o *BuildOptions) { o.Folds, o.Holdout = SingleHoldout, 0.25 })},
		{"embedding projection, coreset on a projection", parts, with(func(o *BuildOptions) { o.Project, o.CoresetDim = 12, 5 })},
		{"tiles", wide, with(func(o *BuildOptions) { o.Tiles = tiles })},
		{"tiles and a region of interest", wide, with(func(o *BuildOptions) { o.Tiles, o.ROI = tiles, tiledROI })},
		{"region of interest", wide, with(func(o *BuildOptions) {
			o.InputW, o.InputH, o.Fit, o.Why, o.ROI, o.Folds = 64, 32, FitKeepAspect, "test", roi, 4
		})},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			opts := c.opts
			opts.keepFloat = true
			want, wrep, err := buildReference(ctx, mf, c.images, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, grep, err := Build(ctx, mf, c.images, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got.Meta.SHA256 != want.Meta.SHA256 || got.Meta.Count != want.Meta.Count || got.Meta.Scale != want.Meta.Scale {
				t.Fatalf("bank %s (%d vectors, scale %v), reference %s (%d, %v)",
					got.Meta.SHA256[:12], got.Meta.Count, got.Meta.Scale, want.Meta.SHA256[:12], want.Meta.Count, want.Meta.Scale)
			}
			gm, wm := got.Meta, want.Meta
			gm.Created = wm.Created
			gm.Coreset.Seconds, wm.Coreset.Seconds = 0, 0
			if !sameJSON(gm, wm) {
				t.Errorf("metadata differs:\n got %+v\nwant %+v", gm, wm)
			}
			if !slices.Equal(grep.HoldoutScores, wrep.HoldoutScores) || grep.Patches != wrep.Patches || grep.Selected != wrep.Selected {
				t.Errorf("calibration scores or counts differ:\n got %v (%d, %d)\nwant %v (%d, %d)",
					grep.HoldoutScores, grep.Patches, grep.Selected, wrep.HoldoutScores, wrep.Patches, wrep.Selected)
			}
			if !slices.Equal(grep.floatVectors, wrep.floatVectors) {
				t.Errorf("the selected float vectors differ")
			}
		})
	}
}

// largestImage returns the index of the image whose patch vectors under
// recipe r and seed hold the largest |value| (the one that sets a bank's
// scale); it fails the test unless that image is the only one holding it.
func largestImage(t *testing.T, mf *model.File, r Recipe, seed uint64, images []string) int {
	t.Helper()
	b, _, err := Build(context.Background(), mf, images[:2], BuildOptions{Recipe: r, Folds: 2, Seed: seed, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(b, mf, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var maxima []float32
	var res Result
	for _, p := range images {
		if err := d.embedFrame(readImage(t, p), &res); err != nil {
			t.Fatal(err)
		}
		maxima = append(maxima, bank.MaxAbs(d.vecs))
	}
	top := slices.Max(maxima)
	arg := slices.Index(maxima, top)
	if slices.Index(maxima[arg+1:], top) >= 0 {
		t.Fatalf("the largest value %v is in more than one image: %v", top, maxima)
	}
	return arg
}

// TestLowerGCPercent: the lowest GOGC asked by running builds is in force,
// a build can change its own, the last restore brings back the value from
// before, and a collector that was off stays off.
func TestLowerGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	gc := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }
	setA, restoreA := lowerGCPercent(20)
	if got := gc(); got != 20 {
		t.Errorf("one build asking 20: GOGC %d", got)
	}
	_, restoreB := lowerGCPercent(10)
	if got := gc(); got != 10 {
		t.Errorf("builds asking 20 and 10: GOGC %d", got)
	}
	setA(5)
	if got := gc(); got != 5 {
		t.Errorf("builds asking 5 and 10: GOGC %d", got)
	}
	restoreA()
	if got := gc(); got != 10 {
		t.Errorf("the build asking 10 left: GOGC %d", got)
	}
	restoreB()
	if got := gc(); got != 100 {
		t.Errorf("no build left: GOGC %d, was 100", got)
	}
	debug.SetGCPercent(-1)
	set, restore := lowerGCPercent(10)
	set(5)
	if got := gc(); got != -1 {
		t.Errorf("collector off, a build asking 5: GOGC %d", got)
	}
	restore()
	if got := gc(); got != -1 {
		t.Errorf("collector off, restored: GOGC %d", got)
	}
}
