package patchcore

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
)

// tinyModel is a two-convolution int8 backbone written here: a 32×32×3
// input, tap "a" (3×3 stride 2, 16×16×8) and tap "b" (3×3 stride 2 on a,
// 8×8×8), seeded weights. It runs in well under a millisecond, so tests
// can build many banks.
func tinyModel(t testing.TB) *model.File {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	weights := func(n int) []byte {
		w := make([]byte, n)
		for i := range w {
			w[i] = byte(int8(rng.IntN(101) - 50))
		}
		return w
	}
	b := tflite.NewBuilder("tiny")
	in := b.Tensor("in", tflite.Int8, []int32{1, 32, 32, 3}, tflite.PerTensor(1.0/255, -128), nil)
	w1 := b.Tensor("w1", tflite.Int8, []int32{8, 3, 3, 3}, tflite.PerTensor(0.01, 0), weights(8*27))
	a := b.Tensor("a", tflite.Int8, []int32{1, 16, 16, 8}, tflite.PerTensor(0.02, 0), nil)
	w2 := b.Tensor("w2", tflite.Int8, []int32{8, 3, 3, 8}, tflite.PerTensor(0.01, 0), weights(8*72))
	bt := b.Tensor("b", tflite.Int8, []int32{1, 8, 8, 8}, tflite.PerTensor(0.02, 0), nil)
	conv := tflite.Conv2DOptions{Padding: tflite.PaddingSame, StrideW: 2, StrideH: 2, DilationW: 1, DilationH: 1}
	b.Op(tflite.OpConv2D, 3, []int32{in, w1, -1}, []int32{a}, conv)
	b.Op(tflite.OpConv2D, 3, []int32{a, w2, -1}, []int32{bt}, conv)
	b.IO([]int32{in}, []int32{bt})
	raw, err := tflite.Write(b.Model())
	if err != nil {
		t.Fatal(err)
	}
	mf, err := model.Parse("tiny.tflite", raw)
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

var tinyTaps = []string{"a", "b"}

// tinyPart writes a 32×32 "good part" PNG: a seeded smooth gradient with
// mild noise, so that parts differ a little; spot > 0 paints a bright
// square of that side (a "defect").
func tinyPart(t testing.TB, path string, seed uint64, spot int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	phase := rng.Float64()
	for y := range 32 {
		for x := range 32 {
			v := 100 + 60*math.Sin(float64(x)/5+phase) + 40*math.Cos(float64(y)/7) + 6*rng.NormFloat64()
			c := uint8(max(0, min(255, v)))
			img.Set(x, y, color.RGBA{c, uint8(255 - int(c)/2), 90, 255})
		}
	}
	for y := 12; y < 12+spot; y++ {
		for x := 12; x < 12+spot; x++ {
			img.Set(x, y, color.RGBA{255, 255, 255, 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// tinyParts writes n good parts (seeds from..from+n-1) into dir.
func tinyParts(t testing.TB, dir string, from, n int) []string {
	t.Helper()
	var paths []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("good%03d.png", from+i))
		tinyPart(t, p, uint64(from+i), 0)
		paths = append(paths, p)
	}
	return paths
}

// TestOutOfFoldScoresEqualFoldBanks: the out-of-fold score of every image
// is exactly the score a bank built by Build from the other folds' images
// alone gives it; the bank itself learns from every image and covers each
// of its patches within the recorded radius.
func TestOutOfFoldScoresEqualFoldBanks(t *testing.T) {
	mf := tinyModel(t)
	imgs := tinyParts(t, t.TempDir(), 0, 11)
	ctx := context.Background()
	opts := BuildOptions{Recipe: Recipe{Taps: tinyTaps}, Folds: 4, Ratio: 0.25, Seed: 5, Threads: 2}
	b, rep, err := Build(ctx, mf, imgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	th := b.Meta.Threshold
	if rep.Folds != 4 || th.Folds != 4 || len(rep.Train) != 11 || len(rep.Holdout) != 0 || b.Meta.Images.Train != 11 {
		t.Fatalf("folds %d/%d, %d train, %d held out, bank of %d images", rep.Folds, th.Folds, len(rep.Train), len(rep.Holdout), b.Meta.Images.Train)
	}
	if len(th.Scores) != 11 || len(th.MapMaxima) != 11 || th.Rule != RuleTail || th.Target != 0.01 || th.ExpectedFRR != 0.01 {
		t.Fatalf("threshold %+v", th)
	}
	if want, _ := TailThreshold(th.Scores, 0.01); th.Value != want {
		t.Errorf("threshold %v, the tail rule on the stored scores gives %v", th.Value, want)
	}
	fold := assignFolds(len(imgs), 4, opts.Seed)
	var r Result
	for k := range 4 {
		var others, mine []int
		for i := range imgs {
			if fold[i] == k {
				mine = append(mine, i)
			} else {
				others = append(others, i)
			}
		}
		var paths []string
		for _, i := range others {
			paths = append(paths, imgs[i])
		}
		fb, _, err := Build(ctx, mf, paths, opts)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Open(fb, mf, Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range mine {
			img := readImage(t, imgs[i])
			if err := d.InspectInto(img, &r); err != nil {
				t.Fatal(err)
			}
			if r.Score != th.Scores[i] || float64(slices.Max(r.Map)) != th.MapMaxima[i] {
				t.Errorf("fold %d, image %d: out-of-fold score %v (map max %v), a bank of the other %d images gives %v (%v)",
					k, i, th.Scores[i], th.MapMaxima[i], len(others), r.Score, slices.Max(r.Map))
			}
		}
		d.Close()
	}

	// The bank covers its own images within the radius.
	if !(b.Meta.Coreset.Radius > 0) {
		t.Fatalf("coverage radius %v", b.Meta.Coreset.Radius)
	}
	d, err := Open(b, mf, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	worst := 0.0
	for _, p := range imgs {
		if err := d.InspectInto(readImage(t, p), &r); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, r.PatchMax)
	}
	if math.Abs(worst-b.Meta.Coreset.Radius) > 1e-5*b.Meta.Coreset.Radius {
		t.Errorf("largest patch score of the training images %v, recorded radius %v", worst, b.Meta.Coreset.Radius)
	}
}

func readImage(t testing.TB, path string) *rgb.Image {
	t.Helper()
	img, err := rgb.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestSingleHoldoutStillWorks: Folds = SingleHoldout is today's calibration:
// a seeded share held out, the bank learns from the rest, the threshold
// comes from the held-out scores alone.
func TestSingleHoldoutStillWorks(t *testing.T) {
	mf := tinyModel(t)
	imgs := tinyParts(t, t.TempDir(), 0, 10)
	b, rep, err := Build(context.Background(), mf, imgs, BuildOptions{Recipe: Recipe{Taps: tinyTaps}, Folds: SingleHoldout, Holdout: 0.3, Ratio: 0.25, Threads: 2,
		Rule: RuleMaxMargin})
	if err != nil {
		t.Fatal(err)
	}
	th := b.Meta.Threshold
	if len(rep.Holdout) != 3 || len(rep.Train) != 7 || rep.Folds != 0 || th.Folds != 0 || b.Meta.Images.Train != 7 || b.Meta.Images.Holdout != 3 || len(th.Scores) != 3 {
		t.Fatalf("%d held out, %d train, folds %d/%d, %d scores", len(rep.Holdout), len(rep.Train), rep.Folds, th.Folds, len(th.Scores))
	}
	if th.Value != 1.1*slices.Max(th.Scores) || th.Target != 0 || th.ExpectedFRR != ExpectedFRR(th.Scores, th.Value) {
		t.Errorf("max-margin threshold %+v", th)
	}
	if _, _, err := Build(context.Background(), mf, imgs, BuildOptions{Recipe: Recipe{Taps: tinyTaps}, Folds: 1}); err == nil {
		t.Error("1 fold accepted")
	}
}
