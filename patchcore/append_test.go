package patchcore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAppendByHand: a bank of 6 tiny parts grows by a copy of one of its
// own images and by a part with a bright square. The copy adds nothing
// (every patch of it is within the recorded radius) and scores the same
// after; the new part adds patches, and afterwards no patch of it is
// farther than the radius from the bank. The threshold is the tail rule
// on the kept out-of-fold scores plus the leave-one-out scores: the copy's
// (it added nothing, so its score against the new bank) and the new
// part's (against the old bank plus the copy's additions, none: its score
// before).
func TestAppendByHand(t *testing.T) {
	mf := tinyModel(t)
	dir := t.TempDir()
	imgs := tinyParts(t, dir, 0, 6)
	ctx := context.Background()
	b, _, err := Build(ctx, mf, imgs, BuildOptions{Recipe: Recipe{Taps: tinyTaps}, Folds: 3, Ratio: 0.25, Seed: 2, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	oldSum, oldCount := b.Meta.SHA256, b.Meta.Count
	spot := filepath.Join(dir, "spot.png")
	tinyPart(t, spot, 100, 10)
	nb, rep, err := Append(ctx, mf, b, []string{imgs[3], spot}, AppendOptions{Threads: 2, Note: "grown"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("radius %.4f; added %d of %d patches; before %v after %v leave-one-out %v; threshold %.4f -> %.4f",
		rep.Radius, rep.Added, rep.Patches, rep.Before, rep.After, rep.LeaveOneOut, rep.OldThreshold, rep.NewThreshold)
	if b.Meta.SHA256 != oldSum || b.Meta.Count != oldCount {
		t.Fatal("Append changed the bank it was given")
	}
	if rep.Images != 2 || rep.Patches != 2*16*16 || rep.Added == 0 || nb.Meta.Count != oldCount+rep.Added || rep.RadiusFallback {
		t.Fatalf("report %+v, bank of %d vectors (was %d)", rep, nb.Meta.Count, oldCount)
	}
	if nb.Meta.Images.Train != 8 || nb.Meta.Note != "grown" || nb.Meta.Scale != b.Meta.Scale || nb.Meta.Coreset.Radius != b.Meta.Coreset.Radius {
		t.Errorf("new meta: %+v", nb.Meta)
	}
	if !slices.Equal(nb.Vectors[:len(b.Vectors)], b.Vectors) {
		t.Error("the old vectors are not kept in front")
	}
	// The copy: nothing added, same score.
	if rep.After[0] != rep.Before[0] || rep.LeaveOneOut[0] != rep.After[0] {
		t.Errorf("copy of a training image: before %v, after %v, leave-one-out %v", rep.Before[0], rep.After[0], rep.LeaveOneOut[0])
	}
	// The new part: above the old threshold before, covered after.
	if !(rep.Before[1] > b.Meta.Threshold.Value) || !(rep.After[1] <= rep.Radius*(1+1e-6)) || rep.LeaveOneOut[1] != rep.Before[1] {
		t.Errorf("new part: before %v (threshold %v), after %v (radius %v), leave-one-out %v", rep.Before[1], b.Meta.Threshold.Value, rep.After[1], rep.Radius, rep.LeaveOneOut[1])
	}
	d, err := Open(nb, mf, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r, err := d.Inspect(readImage(t, spot))
	if err != nil {
		t.Fatal(err)
	}
	if r.PatchMax > rep.Radius*(1+1e-6) || r.Score != rep.After[1] {
		t.Errorf("the new bank scores the new part %v (largest patch %v), the report says %v, radius %v", r.Score, r.PatchMax, rep.After[1], rep.Radius)
	}
	// The recalibration.
	scores := append(slices.Clone(b.Meta.Threshold.Scores), rep.LeaveOneOut...)
	want, _ := TailThreshold(scores, 0.01)
	th := nb.Meta.Threshold
	if !rep.Recalibrated || th.Value != want || rep.NewThreshold != want || len(th.Scores) != 8 || th.Rule != RuleTail || th.Folds != 3 || th.ExpectedFRR != 0.01 {
		t.Errorf("threshold %v (want %v), %d scores, rule %s, folds %d", th.Value, want, len(th.Scores), th.Rule, th.Folds)
	}

	// A bank without a recorded radius or kept scores (written before
	// they existed): the radius is the smallest spacing of its vectors,
	// and the threshold is kept.
	old := *b
	old.Meta = cloneMeta(&b.Meta)
	old.Meta.Coreset.Radius, old.Meta.Threshold.Scores, old.Meta.Threshold.MapMaxima = 0, nil, nil
	nb2, rep2, err := Append(ctx, mf, &old, []string{spot}, AppendOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !rep2.RadiusFallback || rep2.Recalibrated || nb2.Meta.Threshold.Value != b.Meta.Threshold.Value || !(rep2.Radius > 0) {
		t.Errorf("old bank: %+v", rep2)
	}
	var spacing = math.Inf(1)
	for i := range b.Meta.Count {
		for j := i + 1; j < b.Meta.Count; j++ {
			var s float64
			for k := range b.Meta.Dim {
				x := float64(b.Row(i)[k]) - float64(b.Row(j)[k])
				s += x * x
			}
			spacing = min(spacing, math.Sqrt(s)*float64(b.Meta.Scale))
		}
	}
	if math.Abs(rep2.Radius-spacing) > 1e-9*spacing {
		t.Errorf("fallback radius %v, smallest spacing %v", rep2.Radius, spacing)
	}
}

// TestAppendLeaveOneOut: each appended image's calibration score is its
// score against the bank that appending the other images alone gives,
// for two parts with the same new feature, which in a joint cover share
// the added patches (so the score against the joint cover without one's
// own additions would be too high).
func TestAppendLeaveOneOut(t *testing.T) {
	mf := tinyModel(t)
	dir := t.TempDir()
	imgs := tinyParts(t, dir, 0, 6)
	ctx := context.Background()
	b, _, err := Build(ctx, mf, imgs, BuildOptions{Recipe: Recipe{Taps: tinyTaps}, Folds: 3, Ratio: 0.25, Seed: 2, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	var spots []string
	for i, seed := range []uint64{100, 103, 60} {
		p := filepath.Join(dir, fmt.Sprintf("spot%d.png", i))
		tinyPart(t, p, seed, 10)
		spots = append(spots, p)
	}
	_, rep, err := Append(ctx, mf, b, spots, AppendOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range spots {
		others := slices.Delete(slices.Clone(spots), i, i+1)
		ob, _, err := Append(ctx, mf, b, others, AppendOptions{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		d, err := Open(ob, mf, Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		r, err := d.Inspect(readImage(t, spots[i]))
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r.Score != rep.LeaveOneOut[i] {
			t.Errorf("image %d: leave-one-out score %v, against the bank of the others %v (before %v, after %v)", i, rep.LeaveOneOut[i], r.Score, rep.Before[i], rep.After[i])
		}
	}
	t.Logf("before %v, leave-one-out %v, after %v", rep.Before, rep.LeaveOneOut, rep.After)
}

// TestBuildStopsInTheFolds: a build cancelled while scoring the folds
// stops there, with an error saying so (a station stopping while it
// teaches itself must not wait for the rest of the build).
func TestBuildStopsInTheFolds(t *testing.T) {
	mf := tinyModel(t)
	imgs := tinyParts(t, t.TempDir(), 0, 8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stages []string
	_, _, err := Build(ctx, mf, imgs, BuildOptions{Recipe: Recipe{Taps: tinyTaps}, Folds: 4, Ratio: 0.25, Threads: 1,
		Progress: func(stage string, done, total int) {
			stages = append(stages, fmt.Sprintf("%s %d/%d", stage, done, total))
			if stage == "fold" && done == 1 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("cancelled in the folds: %v", err)
	}
	if last := stages[len(stages)-1]; last != "fold 1/4" {
		t.Errorf("went on after the cancel, to %q (%v)", last, stages)
	}
}
