package bench

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/sampleline"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/patchcore"
)

// TestBenchSynthetic runs the benchmark path end to end on a tiny frame
// count: report complete, every stage timed, GMAC/s where they apply.
func TestBenchSynthetic(t *testing.T) {
	if testing.Short() || testenv.Race {
		t.Skip("skipping: builds a ResNet18 (slow under -race/-short)")
	}
	mf, err := RandomResNet18(2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SyntheticBank(mf, 200)
	if err != nil {
		t.Fatal(err)
	}
	if b.Meta.Count != 15680 || b.Meta.Dim != 384 {
		t.Errorf("synthetic bank %dx%d, want 15680x384 (200 images x 784 patches x 10%%, layer2+layer3)", b.Meta.Count, b.Meta.Dim)
	}
	d, err := patchcore.Open(b, mf, patchcore.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rep, err := Run(d, "test", KindRandom, 2, 3, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Stages {
		if st, ok := rep.Stages[s]; !ok || st.MedianMS <= 0 || st.P99MS < st.MedianMS {
			t.Errorf("stage %s: %+v", s, st)
		}
	}
	// total is the frame after decoding; total_with_decode adds the decode.
	if tot, all := rep.Stages["total"].MedianMS, rep.Stages["total_with_decode"].MedianMS; tot >= all {
		t.Errorf("total %.2f ms is not below total_with_decode %.2f ms", tot, all)
	}
	if a := rep.BackboneAlone; a.MedianMS <= 0 || a.P99MS < a.MedianMS || a.GMACs <= 0 {
		t.Errorf("backbone alone: %+v", a)
	}
	if err := Ops(d, rep, 2); err != nil {
		t.Fatal(err)
	}
	var convs int
	for _, o := range rep.Ops {
		if o.Op == "CONV_2D" {
			convs++
			if o.GMACs <= 0 || o.MedianMS <= 0 {
				t.Errorf("op %+v has no rate", o)
			}
		}
	}
	if convs != 15 { // stem, layer1 4, layer2 and layer3 4 each plus a downsample
		t.Errorf("%d CONV_2D operators timed, want 15", convs)
	}
	// ResNet18 to layer3 at 224x224: 1.40 GMAC in convolutions (stem
	// 118M, layer1 462M, layer2 411M incl. downsample, layer3 411M) plus the
	// 3x3 normalisation depthwise (0.45M).
	if rep.BackboneMACs < 1.3e9 || rep.BackboneMACs > 1.45e9 {
		t.Errorf("backbone MACs %d", rep.BackboneMACs)
	}
	if rep.Stages["backbone"].GMACs <= 0 || rep.Stages["search"].GMACs <= 0 || rep.PeakGMACsPerCore <= 0 {
		t.Errorf("rates missing: %+v", rep)
	}
}

// TestInspectAllocatesNothing: after the first frames, scoring a frame
// (preprocess to regions) allocates nothing, also when the frame fails and
// has regions.
func TestInspectAllocatesNothing(t *testing.T) {
	if testing.Short() || testenv.Race {
		t.Skip("skipping: builds a ResNet18 (slow under -race/-short)")
	}
	mf, err := RandomResNet18(2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SyntheticBank(mf, 20)
	if err != nil {
		t.Fatal(err)
	}
	b.Meta.Threshold.Value, b.Meta.Threshold.Pixel = 1e-3, 1e-3 // everything fails, one big region
	d, err := patchcore.Open(b, mf, patchcore.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	img, err := rgb.Decode(bytes.NewReader(Frame()))
	if err != nil {
		t.Fatal(err)
	}
	var r patchcore.Result
	for range 2 {
		if err := d.InspectInto(img, &r); err != nil {
			t.Fatal(err)
		}
	}
	if !r.Fail || len(r.Regions) == 0 {
		t.Fatalf("want a failing frame with regions, got fail=%v, %d regions", r.Fail, len(r.Regions))
	}
	if n := testing.AllocsPerRun(5, func() { _ = d.InspectInto(img, &r) }); n != 0 {
		t.Errorf("%.1f allocations per frame", n)
	}
}

// TestBuiltBankSearchWork: the default bench bank (200 good washers of
// the sample line through the random ResNet18, built as bank build does)
// on a held-out good washer: the report counts 784 patches, brute force's
// work as patches x bank x 384, and the clustered search measures at
// least 4x less than that (issue 22's target for good frames); the iid
// random bank of the same size gets no such cut.
func TestBuiltBankSearchWork(t *testing.T) {
	if testing.Short() || testenv.Race {
		t.Skip("skipping: builds a ResNet18 and a 200-image bank (slow under -race/-short)")
	}
	mf, err := RandomResNet18(2)
	if err != nil {
		t.Fatal(err)
	}
	train, _, err := SampleLine(t.TempDir(), sampleline.KindWasher, 200)
	if err != nil {
		t.Fatal(err)
	}
	b, holdout, err := BuiltBank(context.Background(), mf, nil, train, patchcore.Choice{W: 224, H: 224, Fit: patchcore.FitSquash}, 2)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := os.ReadFile(holdout[0])
	if err != nil {
		t.Fatal(err)
	}
	rnd, err := SyntheticBank(mf, 200)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind  string
		b     *bank.Bank
		frame []byte
	}{{KindBuilt, b, frame}, {KindRandom, rnd, nil}} {
		d, err := patchcore.Open(c.b, mf, patchcore.Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(d, "test", c.kind, 2, 3, c.frame, "frame")
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		brute := int64(784) * int64(c.b.Meta.Count) * 384
		if rep.Patches != 784 || rep.SearchMACsBrute != brute || rep.Bank != c.kind {
			t.Fatalf("%s: %d patches, brute force %d MACs (want %d), bank %q", c.kind, rep.Patches, rep.SearchMACsBrute, brute, rep.Bank)
		}
		t.Logf("%s bank of %d: search %.3g MACs per frame measured, brute force %.3g (%.2fx)", c.kind, c.b.Meta.Count, float64(rep.SearchMACs), float64(brute), float64(brute)/float64(rep.SearchMACs))
		switch {
		case c.kind == KindBuilt && rep.SearchMACs*4 > brute:
			t.Errorf("built bank: %d MACs measured, not 4x below brute force's %d", rep.SearchMACs, brute)
		case c.kind == KindRandom && rep.SearchMACs*2 < brute:
			t.Errorf("random bank: %d MACs measured, under half of brute force's %d: iid vectors should leave nothing to skip", rep.SearchMACs, brute)
		}
	}
}
