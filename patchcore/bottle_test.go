package patchcore

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model"
)

// heavy skips tests that run the backbone over a whole dataset where they
// would take too long: under the race detector (make test-accept runs them
// without it) and in -short mode. It returns MVTec AD bottle's folder, and
// skips when the shared folder does not have it.
func heavy(t *testing.T) string {
	t.Helper()
	if testenv.Race {
		t.Skip("skipping the MVTec bottle run under -race; `make test-accept` runs it without")
	}
	if testing.Short() {
		t.Skip("skipping the MVTec bottle run in -short mode")
	}
	return testenv.SharedFile(t, "data/mvtec_ad/bottle")
}

func loadTF2(t *testing.T) *model.File {
	mf, err := model.Load(testenv.SharedFile(t, "models/mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

// TestBottleAcceptance is the acceptance run: build a bank from
// bottle/train/good with the tf2 MobileNetV2 and the defaults, evaluate on
// bottle/test, and compare the int8 bank with float vectors.
func TestBottleAcceptance(t *testing.T) {
	bottle := heavy(t)
	mf := loadTF2(t)
	imgs, err := ImageFiles(filepath.Join(bottle, "train/good"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, rep, err := Build(ctx, mf, imgs, BuildOptions{Threads: 2, keepFloat: true})
	if err != nil {
		t.Fatal(err)
	}
	// The vectors the float build path made (before builds streamed); a
	// change that moves them changes every station's scores and must say so.
	if b.Meta.SHA256 != bottleBankSHA256 {
		t.Errorf("bank vectors %s, want %s", b.Meta.SHA256, bottleBankSHA256)
	}
	th := b.Meta.Threshold
	t.Logf("bank: %d patches -> %d vectors of %d; embed %.1fs, folds %.1fs, coreset %.1fs, calibrate %.1fs; threshold %.4f (%s %g, expected false-reject rate %.4f; %d calibration scores %.4f..%.4f), pixel %.4f",
		rep.Patches, rep.Selected, b.Meta.Dim, rep.EmbedTime.Seconds(), rep.FoldTime.Seconds(), rep.CoresetTime.Seconds(), rep.CalibrateTime.Seconds(),
		th.Value, th.Rule, th.Param, th.ExpectedFRR, th.Stats.N, th.Stats.Min, th.Stats.Max, th.Pixel)
	d, err := Open(b, mf, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res, err := Evaluate(ctx, d, bottle, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Confusion
	t.Logf("int8 bank:  image AUROC %.4f  pixel AUROC %.4f  AUPRO %.4f  F1 %.4f  confusion %+v", res.ImageAUROC, res.PixelAUROC, res.AUPRO, res.F1, c)
	if res.ImageAUROC < 0.995 || res.PixelAUROC < 0.975 || res.AUPRO < 0.90 {
		t.Errorf("below the acceptance line (image >= 0.995, pixel >= 0.975, AUPRO >= 0.90)")
	}
	// The tail rule targets 1% of good parts failing: of bottle's 20 good
	// test parts at most 1 may.
	if c.FP > 1 || c.FN > 3 {
		t.Errorf("at the calibrated threshold %d good parts fail (want <= 1) and %d defective parts pass (want <= 3)", c.FP, c.FN)
	}

	fres, err := Evaluate(ctx, &floatScorer{d: d, vecs: rep.floatVectors}, bottle, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("float bank: image AUROC %.4f  pixel AUROC %.4f  AUPRO %.4f", fres.ImageAUROC, fres.PixelAUROC, fres.AUPRO)
	di, dp := fres.ImageAUROC-res.ImageAUROC, fres.PixelAUROC-res.PixelAUROC
	t.Logf("float minus int8: image AUROC %+.5f, pixel AUROC %+.5f, AUPRO %+.5f", di, dp, fres.AUPRO-res.AUPRO)
	if math.Abs(di) > 0.002 || math.Abs(dp) > 0.002 {
		t.Errorf("int8 bank differs from float vectors by more than 0.002 AUROC")
	}

	// Same seed, same bank, same threshold.
	b2, _, err := Build(ctx, mf, imgs, BuildOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if b2.Meta.SHA256 != b.Meta.SHA256 || !sameJSON(b2.Meta.Threshold, b.Meta.Threshold) {
		t.Errorf("rebuild with the same seed (1 thread instead of 2) differs: vectors %s vs %s, threshold %v vs %v",
			b2.Meta.SHA256[:12], b.Meta.SHA256[:12], b2.Meta.Threshold.Value, b.Meta.Threshold.Value)
	}
}

// bottleBankSHA256 is the checksum of the vectors of the bank Build makes
// from bottle/train/good with the tf2 MobileNetV2 and the defaults (16,386
// vectors of 96; README's bank build example).
const bottleBankSHA256 = "439b2e19a4e5fd19aa9471272ef1f7d2bea8609ea1606ca5fabf390a1838099c"

// sameJSON says whether a and b encode to the same JSON.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// TestBottleThresholdTable: banks from the first 10, 20, 50 and all 209
// good training images of bottle with the defaults (tail rule, 1% target,
// 5 out-of-fold folds): of the 20 good test parts at most 1 may fail, and
// none of the 63 defective ones may pass.
func TestBottleThresholdTable(t *testing.T) {
	bottle := heavy(t)
	mf := loadTF2(t)
	train, err := ImageFiles(filepath.Join(bottle, "train/good"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := ImageFiles(filepath.Join(bottle, "test/good"))
	if err != nil {
		t.Fatal(err)
	}
	var defects []string
	for _, kind := range []string{"broken_large", "broken_small", "contamination"} {
		d, err := ImageFiles(filepath.Join(bottle, "test", kind))
		if err != nil {
			t.Fatal(err)
		}
		defects = append(defects, d...)
	}
	ctx := context.Background()
	t.Logf("%-6s %-10s %-14s %-10s %-12s %s", "bank", "good fail", "defects pass", "threshold", "expected FRR", "out-of-fold scores")
	for _, n := range []int{10, 20, 50, len(train)} {
		b, rep, err := Build(ctx, mf, train[:n], BuildOptions{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		d, err := Open(b, mf, Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		var rejected []string // good test parts that fail
		// count scores paths: how many get verdict fail, and the score
		// nearest the wrong side (the largest when fail, else the smallest).
		count := func(paths []string, fail bool) (k int, worst float64) {
			rejected = nil
			var r Result
			for _, p := range paths {
				img, err := rgb.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := d.InspectInto(img, &r); err != nil {
					t.Fatal(err)
				}
				if r.Fail == fail {
					k++
				}
				if r.Fail {
					rejected = append(rejected, p)
				}
				if worst == 0 || (fail && r.Score > worst) || (!fail && r.Score < worst) {
					worst = r.Score
				}
			}
			return k, worst
		}
		gf, gmax := count(good, true)
		falseRejects := rejected
		dp, dmin := count(defects, false)
		d.Close()
		th := b.Meta.Threshold
		t.Logf("%-6d %2d of %-4d %2d of %-8d %-10.4f %-12.4f %d in %.4f..%.4f (good test max %.4f, defect min %.4f; build %.1fs)",
			n, gf, len(good), dp, len(defects), th.Value, th.ExpectedFRR, th.Stats.N, th.Stats.Min, th.Stats.Max, gmax, dmin,
			(rep.EmbedTime + rep.FoldTime + rep.CoresetTime + rep.CalibrateTime).Seconds())
		if gf > 1 || dp > 0 {
			t.Errorf("bank of %d: %d good parts fail (want <= 1), %d defective parts pass (want 0)", n, gf, dp)
		}
		if n != 20 || len(falseRejects) == 0 {
			continue
		}
		// An operator appends the 20-part bank's false rejects: they pass
		// afterwards, and no defect passes.
		nb, arep, err := Append(ctx, mf, b, falseRejects, AppendOptions{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		if d, err = Open(nb, mf, Options{Threads: 2}); err != nil {
			t.Fatal(err)
		}
		af, _ := count(falseRejects, true)
		gf2, _ := count(good, true)
		dp2, dmin2 := count(defects, false)
		d.Close()
		t.Logf("bank of 20 + its %d false rejects appended: %d patches added, scores %.4f -> %.4f, threshold %.4f -> %.4f; "+
			"they fail %d, good parts fail %d of %d, defects pass %d of %d (defect min %.4f)",
			len(falseRejects), arep.Added, arep.Before, arep.After, arep.OldThreshold, arep.NewThreshold, af, gf2, len(good), dp2, len(defects), dmin2)
		if af > 0 || dp2 > 0 {
			t.Errorf("after appending the false rejects: %d of them still fail, %d defects pass", af, dp2)
		}
	}
}
