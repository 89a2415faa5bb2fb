package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/linesight/linesight/internal/bench"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
	"github.com/linesight/linesight/patchcore"
)

// geometryCase is a frame size and the geometry worked out by hand from
// bank build's rule (patchcore.AutoGeometry, TileGeometry, TilesFor).
type geometryCase struct {
	name         string
	fw, fh       int
	w, h         int    // model input
	tiles        string // "CxR over WxH" or ""
	patches      int    // searched per frame
	gridW, gridH int
}

// TestGeometryAgreesTiny: plan, bench and bank build choose the same
// geometry for the same good frames and print the same cost line (bench's
// bank is built with a hold-out share, so only its size may differ), on
// the tiny 32x32 backbone at a square frame, a 2.5:1 strip and a frame
// large enough to tile (short side over 6 x 32).
func TestGeometryAgreesTiny(t *testing.T) {
	path := tinyBackbone(t)
	geometryAgrees(t, path, []string{"c1", "c2"}, []geometryCase{
		{"square", 40, 40, 32, 32, "", 16 * 16, 16, 16},
		// 32 x 2.5 = 80 on the long side, a 16x40 grid.
		{"strip", 100, 250, 32, 80, "", 16 * 40, 16, 40},
		// Short side 300 > 6 x 32: shrunk 4x to 75, rounded to 80; the
		// long side 80 x 4/3 = 106.7 -> 112: a 112x80 canvas in 32x32
		// tiles with steps of at most 28: 4 x 3.
		{"large", 400, 300, 32, 32, "4x3 over 112x80", 12 * 16 * 16, 16, 16},
	})
}

// TestGeometryAgreesResNet18 is TestGeometryAgreesTiny with the
// random-weight ResNet18 of bench: 256x256 frames (the stored 224x224),
// the 500x1250 strips of the sample line (224x560: a 28x70 grid at
// layer2's 1/8) and 1600x1400 frames (short side over 6 x 224: shrunk 4x to
// 350 -> 352, long side 402 -> 400, 224 tiles with steps of at most 196: 2
// x 2 over a 400x352 canvas).
func TestGeometryAgreesResNet18(t *testing.T) {
	if testing.Short() || testenv.Race {
		t.Skip("builds the random ResNet18 and three banks; not in -short or under -race")
	}
	mf, err := bench.RandomResNet18(2)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tflite.Write(mf.Model)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "resnet18.tflite")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	geometryAgrees(t, path, nil, []geometryCase{
		{"square", 256, 256, 224, 224, "", 28 * 28, 28, 28},
		{"strip", 500, 1250, 224, 560, "", 28 * 70, 28, 70},
		{"large", 1600, 1400, 224, 224, "2x2 over 400x352", 4 * 28 * 28, 28, 28},
	})
}

// countRE matches the bank's size and the search's work in a cost line:
// the only parts that depend on how many images the bank learnt.
var countRE = regexp.MustCompile(`x \d+ bank vectors x (\d+) dims = [0-9.]+ GMAC search`)

func geometryAgrees(t *testing.T, path string, taps []string, cases []geometryCase) {
	t.Helper()
	mf, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tapFlag := []string{}
	if taps != nil {
		tapFlag = []string{"--taps", strings.Join(taps, ",")}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			images := noisyImages(t, 4, c.fw, c.fh)
			dir := filepath.Dir(images[0])
			// plan, for frames of that size and as many images.
			pr, err := makePlan(planArgs{Model: path, Taps: taps, FrameW: c.fw, FrameH: c.fh, Images: len(images),
				Ratio: 0.1, Folds: patchcore.DefaultFolds, CoresetDim: 128, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			planTiles := ""
			if tl := pr.TileLayout; tl != nil {
				planTiles = fmt.Sprintf("%dx%d over %dx%d", tl.Cols, tl.Rows, tl.CanvasW, tl.CanvasH)
			}
			if pr.InputW != c.w || pr.InputH != c.h || planTiles != c.tiles || pr.Patches != c.patches || pr.GridW != c.gridW || pr.GridH != c.gridH {
				t.Errorf("plan: %dx%d, tiles %q, %d patches (%dx%d grid); by hand %dx%d, %q, %d (%dx%d)",
					pr.InputW, pr.InputH, planTiles, pr.Patches, pr.GridW, pr.GridH, c.w, c.h, c.tiles, c.patches, c.gridW, c.gridH)
			}

			// bank build on the images.
			db := filepath.Join(t.TempDir(), "banks.db")
			out := runOK(t, append([]string{"bank", "build", "--model", path, "--images", dir, "--db", db, "--threads", "1"}, tapFlag...)...)
			buildCost := lineAfter(t, out, "  cost       ")
			if buildCost != pr.Cost {
				t.Errorf("bank build's cost line\n  %s\nplan's\n  %s", buildCost, pr.Cost)
			}

			// bench on a bank built from the same folder.
			b, kind, frame, frameName, err := benchBank(mf, taps, dir, "", 0, "", patchcore.GeometryFlags{}, 1, true, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(kind, bench.KindBuilt) {
				t.Errorf("bank kind %q", kind)
			}
			d, err := patchcore.Open(b, mf, patchcore.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			rep, err := bench.Run(d, "test", kind, 1, 2, frame, frameName)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Patches != c.patches {
				t.Errorf("bench searches %d patches per frame, by hand %d", rep.Patches, c.patches)
			}
			if a, b := countRE.ReplaceAllString(rep.Cost, "x N bank vectors x $1 dims"), countRE.ReplaceAllString(buildCost, "x N bank vectors x $1 dims"); a != b || !countRE.MatchString(rep.Cost) {
				t.Errorf("bench's cost line\n  %s\nbank build's\n  %s", rep.Cost, buildCost)
			}
			if rep.SearchMACs <= 0 || rep.SearchMACs > rep.SearchMACsBrute+int64(rep.Patches)*int64(rep.Dim)*int64(rep.BankVectors/256+1) ||
				rep.SearchMACsBrute != int64(c.patches)*int64(rep.BankVectors)*int64(rep.Dim) {
				t.Errorf("search work %d measured, %d brute force (%d patches x %d x %d)", rep.SearchMACs, rep.SearchMACsBrute, c.patches, rep.BankVectors, rep.Dim)
			}
		})
	}
}

// lineAfter is the rest of the first line of out that starts with prefix.
func lineAfter(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(l, prefix); ok {
			return s
		}
	}
	t.Fatalf("no line %q in\n%s", prefix, out)
	return ""
}

// TestGeometryROIWithTiles: bank build takes --roi with tiles (the region
// drawn on the canvas), and bench on that bank (--db) searches the
// patches bank build's cost line counts: the cells inside the region, of
// every tile.
func TestGeometryROIWithTiles(t *testing.T) {
	path := tinyBackbone(t)
	images := noisyImages(t, 4, 400, 300)
	dir := filepath.Dir(images[0])
	roi := filepath.Join(t.TempDir(), "roi.txt")
	if err := os.WriteFile(roi, []byte("# the right half\n200,0 400,0 400,300 200,300\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "banks.db")
	out := runOK(t, "bank", "build", "--model", path, "--images", dir, "--db", db, "--taps", "c1,c2", "--threads", "1", "--roi", roi)
	cost := lineAfter(t, out, "  cost       ")
	// 12 tiles of 16x16 cells (TestGeometryAgreesTiny's large case); the
	// region keeps about half of them.
	var patches int
	if _, err := fmt.Sscanf(cost[strings.Index(cost, "x 12 tiles, ")+len("x 12 tiles, "):], "%d patches", &patches); err != nil {
		t.Fatalf("cost line %q: %v", cost, err)
	}
	if patches < 1200 || patches > 1800 {
		t.Fatalf("cost line %q: %d patches inside the right half of 3072", cost, patches)
	}
	bout := runOK(t, "bench", "--db", db, "--model", path, "--frames", "1", "--threads", "1", "--image", images[0])
	if got := lineAfter(t, bout, "cost       "); got != cost {
		t.Errorf("bench's cost line\n  %s\nbank build's\n  %s", got, cost)
	}
	if !strings.Contains(bout, fmt.Sprintf(", %d patches searched per frame", patches)) {
		t.Errorf("bench does not search %d patches:\n%s", patches, bout)
	}
}

// TestBenchCommandRandomBank: bench --bank random at the geometry chosen
// for --frame prints plan's cost line for 200 images (the random bank is
// sized like 200 images at 10%), says the bank is random, and measures
// its search against brute force; flags that do not fit are refused.
func TestBenchCommandRandomBank(t *testing.T) {
	path := tinyBackbone(t)
	out := runOK(t, "bench", "--model", path, "--taps", "c1,c2", "--bank", "random", "--frame", "400x300", "--frames", "1", "--threads", "1")
	pr, err := makePlan(planArgs{Model: path, Taps: []string{"c1", "c2"}, FrameW: 400, FrameH: 300, Images: 200,
		Ratio: 0.1, Folds: patchcore.DefaultFolds, CoresetDim: 128, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := lineAfter(t, out, "cost       "); got != pr.Cost {
		t.Errorf("bench's cost line\n  %s\nplan's\n  %s", got, pr.Cost)
	}
	for _, want := range []string{"bank       random (iid random vectors", "3072 patches searched per frame",
		"4x3 tiles over a 112x80 canvas", "frames     1 (400x300 JPEG (synthetic))", "GMAC by brute force: brute/measured"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--db", "x.db", "--input", "64x64"}, "--db's bank has its own"},
		{[]string{"bench", "--model", path, "--taps", "c1,c2", "--bank", "nope"}, `--bank "nope"`},
		{[]string{"bench", "--model", path, "--taps", "c1,c2", "--frame", "400x300"}, "--frame is for --bank random"},
		{[]string{"bench", "--model", path, "--taps", "c1,c2", "--bank", "random", "--tiles", "7"}, "--tiles"},
		{[]string{"bench", "--model", path, "--bank-images", "1"}, "--bank-images 1"},
	} {
		var buf bytes.Buffer
		if err := run(c.args, &buf); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want one naming %q", c.args, err, c.want)
		}
	}
}
