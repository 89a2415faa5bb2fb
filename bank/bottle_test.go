package bank_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/bench"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/patchcore"
)

// TestBottleSearchWork runs the real pipeline on MVTec AD bottle: a bank
// built from train/good with the tf2 MobileNetV2 and the defaults (one
// held-out share instead of folds, to build faster), then every test image
// through two detectors on that bank, one searching by brute force and one
// by clusters, alternately. Scores and anomaly maps must be identical; it
// logs the search MACs per frame, and the median search and whole-frame
// times with their paired ratios.
func TestBottleSearchWork(t *testing.T) {
	if testenv.Race || testing.Short() {
		t.Skip("runs the backbone over MVTec bottle; not under -race or -short")
	}
	bottle := testenv.SharedFile(t, "data/mvtec_ad/bottle")
	mf, err := model.Load(testenv.SharedFile(t, "models/mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	bottleSearchWork(t, bottle, mf)
}

// TestBottleSearchWorkResNet18 is TestBottleSearchWork with ResNet18's
// geometry and work (layer2 + layer3, 784 patches of 384 against a bank of
// 10% of bottle's patches): the seeded random-weight ResNet18 that
// `linesight bench` runs, since no trained ResNet18 is in the shared
// folder. Random convolutions keep the images' structure (features of
// nearby, similar patches stay near), so the bank and frames are real
// data for the search, if not for anomaly detection.
func TestBottleSearchWorkResNet18(t *testing.T) {
	if testenv.Race || testing.Short() {
		t.Skip("runs the backbone over MVTec bottle; not under -race or -short")
	}
	bottle := testenv.SharedFile(t, "data/mvtec_ad/bottle")
	mf, err := bench.RandomResNet18(2)
	if err != nil {
		t.Fatal(err)
	}
	bottleSearchWork(t, bottle, mf)
}

func bottleSearchWork(t *testing.T, bottle string, mf *model.File) {
	train, err := patchcore.ImageFiles(filepath.Join(bottle, "train/good"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, _, err := patchcore.Build(ctx, mf, train, patchcore.BuildOptions{Threads: 2, Folds: patchcore.SingleHoldout})
	if err != nil {
		t.Fatal(err)
	}
	var made []*bank.Searcher
	bank.SetSearcherHook(func(s *bank.Searcher) { made = append(made, s) })
	defer bank.SetSearcherHook(nil)
	open := func() (*patchcore.Detector, *bank.Searcher) {
		n := len(made)
		d, err := patchcore.Open(b, mf, patchcore.Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(made) != n+1 {
			t.Fatalf("opening a detector made %d searchers", len(made)-n)
		}
		return d, made[n]
	}
	dc, sc := open()
	defer dc.Close()
	db, sb := open()
	defer db.Close()
	sb.SetExhaustive(true)
	if !sc.Clustered() {
		t.Fatalf("a bank of %d vectors was not clustered", b.Meta.Count)
	}
	t.Logf("bank: %d vectors of %d", b.Meta.Count, b.Meta.Dim)

	dirs, _ := os.ReadDir(filepath.Join(bottle, "test"))
	type stat struct{ macsC, macsB, searchC, searchB, totalC, totalB, rs, rt []float64 }
	stats := map[bool]*stat{true: {}, false: {}}
	var rc, rb patchcore.Result
	for _, dir := range dirs {
		files, err := patchcore.ImageFiles(filepath.Join(bottle, "test", dir.Name()))
		if err != nil {
			t.Fatal(err)
		}
		good := dir.Name() == "good"
		st := stats[good]
		for _, f := range files {
			img, err := rgb.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m0c, m0b := sc.MACs(), sb.MACs()
			t0 := time.Now()
			if err := db.InspectInto(img, &rb); err != nil {
				t.Fatal(err)
			}
			t1 := time.Now()
			if err := dc.InspectInto(img, &rc); err != nil {
				t.Fatal(err)
			}
			t2 := time.Now()
			if math.Float64bits(rc.Score) != math.Float64bits(rb.Score) || !slices.Equal(rc.Map, rb.Map) {
				t.Fatalf("%s: clustered search scores %v, brute force %v (or the maps differ)", f, rc.Score, rb.Score)
			}
			st.macsC = append(st.macsC, float64(sc.MACs()-m0c))
			st.macsB = append(st.macsB, float64(sb.MACs()-m0b))
			cs, bs := rc.Timing[patchcore.StageSearch].Seconds(), rb.Timing[patchcore.StageSearch].Seconds()
			st.searchC, st.searchB = append(st.searchC, cs), append(st.searchB, bs)
			st.totalC, st.totalB = append(st.totalC, t2.Sub(t1).Seconds()), append(st.totalB, t1.Sub(t0).Seconds())
			st.rs = append(st.rs, cs/bs)
			st.rt = append(st.rt, t2.Sub(t1).Seconds()/t1.Sub(t0).Seconds())
		}
	}
	med := func(v []float64) float64 {
		s := slices.Clone(v)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	for _, good := range []bool{true, false} {
		st := stats[good]
		kind := map[bool]string{true: "good", false: "defective"}[good]
		t.Logf("%s frames (%d): search MACs per frame median %.3g clustered vs %.3g brute (%.2fx fewer); search %.2f ms vs %.2f ms (paired ratio clustered/brute %.2f); whole frame %.2f ms vs %.2f ms (paired ratio %.2f)",
			kind, len(st.macsC), med(st.macsC), med(st.macsB), med(st.macsB)/med(st.macsC),
			1e3*med(st.searchC), 1e3*med(st.searchB), med(st.rs), 1e3*med(st.totalC), 1e3*med(st.totalB), med(st.rt))
	}
}
