package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/bench"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
	"github.com/linesight/linesight/patchcore"
)

// tinyBackbone writes a two-convolution int8 backbone: a 32x32x3 input,
// c1 = 3x3 stride 2 SAME to 8 channels (16x16), c2 = 3x3 stride 2 SAME to
// 16 channels (8x8), taps c1 and c2. Its path.
func tinyBackbone(t *testing.T) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(22, 2))
	weights := func(n int) []byte {
		w := make([]byte, n)
		for i := range w {
			w[i] = byte(int8(rng.IntN(61) - 30))
		}
		return w
	}
	b := tflite.NewBuilder("plan test backbone")
	in := b.Tensor("image", tflite.Int8, []int32{1, 32, 32, 3}, tflite.PerTensor(1.0/64, 0), nil)
	w1 := b.Tensor("w1", tflite.Int8, []int32{8, 3, 3, 3}, tflite.PerTensor(0.01, 0), weights(8*27))
	c1 := b.Tensor("c1", tflite.Int8, []int32{1, 16, 16, 8}, tflite.PerTensor(0.02, 0), nil)
	w2 := b.Tensor("w2", tflite.Int8, []int32{16, 3, 3, 8}, tflite.PerTensor(0.01, 0), weights(16*72))
	c2 := b.Tensor("c2", tflite.Int8, []int32{1, 8, 8, 16}, tflite.PerTensor(0.02, 0), nil)
	opt := tflite.Conv2DOptions{Padding: tflite.PaddingSame, StrideW: 2, StrideH: 2, DilationW: 1, DilationH: 1, Activation: tflite.ActRelu}
	b.Op(tflite.OpConv2D, 3, []int32{in, w1, -1}, []int32{c1}, opt)
	b.Op(tflite.OpConv2D, 3, []int32{c1, w2, -1}, []int32{c2}, opt)
	b.IO([]int32{in}, []int32{c2})
	path := filepath.Join(t.TempDir(), "tiny.tflite")
	if err := tflite.WriteFile(path, b.Model()); err != nil {
		t.Fatal(err)
	}
	return path
}

// noisyImages writes n PNGs of seeded noise, w x h.
func noisyImages(t *testing.T, n, w, h int) []string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	var paths []string
	for i := range n {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.Set(x, y, color.NRGBA{uint8(rng.IntN(256)), uint8(x * 4), uint8(y * 4), 255})
			}
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("%03d.png", i))
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// TestPlanMACsByHand: the tiny backbone's MACs counted by hand (output
// pixels x output channels x filter taps), at its stored 32x32 and at a
// non-square 64x32, per output resolution, with tiles multiplying them;
// the patch grid and dimension; and the engine's whole forward pass is
// what patchcore.CostOf counts for a bank of that geometry.
func TestPlanMACsByHand(t *testing.T) {
	path := tinyBackbone(t)
	for _, c := range []struct {
		w, h, tx, ty   int
		canvas         string // --tiles
		c1, c2         int64
		gridW, gridH   int
		groupA, groupB string
	}{
		// c1: 16x16 outputs x 8 channels x 27 taps; c2: 8x8 x 16 x 72.
		{32, 32, 1, 1, "", 16 * 16 * 8 * 27, 8 * 8 * 16 * 72, 16, 16, "16x16 (1/2)", "8x8 (1/4)"},
		{64, 32, 1, 1, "", 32 * 16 * 8 * 27, 16 * 8 * 16 * 72, 32, 16, "32x16 (1/2)", "16x8 (1/4)"},
		// An 80x56 canvas in 32x32 tiles overlapping by at least 4: 3 x 2
		// (steps of at most 28).
		{32, 32, 3, 2, "80x56", 16 * 16 * 8 * 27, 8 * 8 * 16 * 72, 16, 16, "16x16 (1/2)", "8x8 (1/4)"},
	} {
		a := planArgs{Model: path, Taps: []string{"c1", "c2"}, Geometry: patchcore.GeometryFlags{Input: fmt.Sprintf("%dx%d", c.w, c.h), Tiles: c.canvas},
			Images: 10, Ratio: 0.1, Folds: 5, CoresetDim: 128, Threads: 1}
		r, err := makePlan(a)
		if err != nil {
			t.Fatal(err)
		}
		tiles := int64(c.tx * c.ty)
		if r.BackboneMACs != tiles*(c.c1+c.c2) {
			t.Errorf("%dx%d, %d tiles: backbone %d MACs, by hand %d", c.w, c.h, tiles, r.BackboneMACs, tiles*(c.c1+c.c2))
		}
		want := []macGroup{{c.groupA, 1, tiles * c.c1}, {c.groupB, 1, tiles * c.c2}}
		if fmt.Sprint(r.Groups) != fmt.Sprint(want) {
			t.Errorf("%dx%d: groups %v, want %v", c.w, c.h, r.Groups, want)
		}
		if r.GridW != c.gridW || r.GridH != c.gridH || r.Dim != 24 || r.Patches != int(tiles)*c.gridW*c.gridH {
			t.Errorf("%dx%d: grid %dx%d, dim %d, %d patches", c.w, c.h, r.GridW, r.GridH, r.Dim, r.Patches)
		}
		// ceil(0.1 x 10 images x patches), 24 bytes each, searched by
		// every patch of a frame.
		k := (10*r.Patches + 9) / 10
		if r.BankVectors != k || r.BankBytes != int64(k*24) || r.SearchMACs != int64(r.Patches*k*24) {
			t.Errorf("%dx%d: bank %d vectors (%d bytes), search %d MACs; want %d vectors", c.w, c.h, r.BankVectors, r.BankBytes, r.SearchMACs, k)
		}
		// The requantized outputs are the two convolutions' outputs.
		if r.ElementsFrame.Requant != tiles*int64(c.gridW*c.gridH*8+c.gridW*c.gridH/4*16) {
			t.Errorf("%dx%d: %d requantized values", c.w, c.h, r.ElementsFrame.Requant)
		}
		// patchcore's own count for a bank of this geometry (its operator
		// walk, not the engine's steps) agrees for one tile.
		mf, err := model.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		meta := &bank.Meta{Model: bank.ModelRef{Taps: []string{"c1", "c2"}}}
		meta.Preprocess.Width, meta.Preprocess.Height = c.w, c.h
		meta.Embed.GridW, meta.Embed.GridH = c.gridW, c.gridH
		cost, err := patchcore.CostOf(mf.Model, meta)
		if err != nil {
			t.Fatal(err)
		}
		if cost.MACs*tiles != r.BackboneMACs {
			t.Errorf("%dx%d: patchcore.CostOf counts %d MACs per tile, plan %d", c.w, c.h, cost.MACs, r.BackboneMACs/tiles)
		}
	}
}

// TestPlanBankMatchesBuild: the bank a real build makes (patchcore.Build
// on 6 noise images, ratio 0.25, 2 folds) has the size the plan printed,
// at the stored input size and at a non-square one.
func TestPlanBankMatchesBuild(t *testing.T) {
	path := tinyBackbone(t)
	images := noisyImages(t, 6, 40, 30)
	mf, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range [][2]int{{32, 32}, {48, 32}} {
		r, err := makePlan(planArgs{Model: path, Taps: []string{"c1", "c2"}, Geometry: patchcore.GeometryFlags{Input: fmt.Sprintf("%dx%d", size[0], size[1])},
			Images: len(images), Ratio: 0.25, Folds: 2, CoresetDim: 128, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		b, rep, err := patchcore.Build(context.Background(), mf, images, patchcore.BuildOptions{
			Recipe: patchcore.Recipe{Taps: []string{"c1", "c2"}, InputW: size[0], InputH: size[1]},
			Ratio:  0.25, Folds: 2, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if int64(rep.Patches) != r.BankPatches || b.Meta.Count != r.BankVectors || int64(len(b.Vectors)) != r.BankBytes || b.Meta.Dim != r.Dim {
			t.Fatalf("%v: build: %d candidates -> %d vectors of %d (%d bytes); plan: %d -> %d of %d (%d bytes)",
				size, rep.Patches, b.Meta.Count, b.Meta.Dim, len(b.Vectors), r.BankPatches, r.BankVectors, r.Dim, r.BankBytes)
		}
		if b.Meta.Embed.GridW != r.GridW || b.Meta.Embed.GridH != r.GridH {
			t.Fatalf("%v: build grid %dx%d, plan %dx%d", size, b.Meta.Embed.GridW, b.Meta.Embed.GridH, r.GridW, r.GridH)
		}
	}
}

// TestPlanResNet18ByHand: the random-weight ResNet18 of `linesight bench`
// to layer3 at 224x224: the input normalization (a 1x1 depthwise
// convolution, 224·224·3), conv1 112·112·64·147; layer1 4 x 56·56·64·576;
// layer2 28·28·128·576 + 3 x 28·28·128·1152 + 28·28·128·64 (downsample);
// layer3 likewise at 14x14 with 256 channels: 1.4027 GMAC (torchvision's
// published 1.82 GMAC for the whole network less layer4 and fc, plus the
// normalization).
func TestPlanResNet18ByHand(t *testing.T) {
	if testing.Short() || testenv.Race {
		t.Skip("building the random ResNet18 takes a while; not in -short or under -race")
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
	r, err := makePlan(planArgs{Model: path, Images: 200, Ratio: 0.1, Folds: 5, CoresetDim: 128, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	norm := int64(224 * 224 * 3)
	stem := int64(112 * 112 * 64 * 147)
	l1 := 4 * int64(56*56*64*576)
	l2 := int64(28*28*128*576) + 3*int64(28*28*128*1152) + int64(28*28*128*64)
	l3 := int64(14*14*256*1152) + 3*int64(14*14*256*2304) + int64(14*14*256*128)
	if r.BackboneMACs != norm+stem+l1+l2+l3 || r.BackboneMACs != 1_402_670_080 {
		t.Fatalf("backbone %d MACs, by hand %d", r.BackboneMACs, norm+stem+l1+l2+l3)
	}
	want := []int64{norm, stem, l1, l2, l3}
	if len(r.Groups) != len(want) {
		t.Fatalf("groups %v", r.Groups)
	}
	for i, g := range r.Groups {
		if g.MACs != want[i] {
			t.Errorf("group %s: %d MACs, by hand %d", g.Grid, g.MACs, want[i])
		}
	}
	// The figures: 784 patches of 384 dims, a 15,680-vector bank,
	// 4.8 GMAC of brute-force search per frame.
	if r.Patches != 784 || r.Dim != 384 || r.BankVectors != 15680 || r.SearchMACs != 784*15680*384 {
		t.Fatalf("patches %d, dim %d, bank %d, search %d", r.Patches, r.Dim, r.BankVectors, r.SearchMACs)
	}
}

// TestPlanCommand: the command prints every section and a JSON object;
// bad flags are refused with a message.
func TestPlanCommand(t *testing.T) {
	path := tinyBackbone(t)
	// A 120x32 canvas in 64x32 tiles: 2 columns (steps of at most 56).
	out := runOK(t, "plan", path, "--taps", "c1,c2", "--images", "20", "--input", "64x32", "--tiles", "120x32", "--calibrate", "200ms", "--threads", "1")
	for _, want := range []string{"geometry   64x32 model input (squash), 2x1 tiles over a 120x32 canvas; flags: --input 64x32",
		"patches    2 tile(s), taps c1,c2 -> grid 32x16, 24-d patches, 1024 per frame",
		"cost       per frame: backbone 0.00 GMAC at 64x32 x 2 tiles, 1024 patches (32x16 grid x 2 tiles) x 2048 bank vectors x 24 dims",
		"bank       20 images x 1024 patches = 20480 candidates; coreset 0.1 -> 2048 vectors", "32x16 (1/2)",
		"Raspberry Pi 4", "Raspberry Pi 5", "Jetson Orin Nano", "this machine", "measured   backbone"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var r planReport
	if err := json.Unmarshal([]byte(runOK(t, "plan", path, "--taps", "c1,c2", "--json", "--calibrate", "0")), &r); err != nil {
		t.Fatal(err)
	}
	if r.BackboneMACs != 16*16*8*27+8*8*16*72 || len(r.Boards) != len(boards) {
		t.Fatalf("json: %+v", r)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plan"}, "usage: linesight plan MODEL.tflite"},
		{[]string{"plan", path, "--taps", "c1,c2", "--tiles", "0"}, `tiles "0"`},
		{[]string{"plan", path, "--taps", "c1,c2", "--tiles", "3xq"}, `tiles "3xq"`},
		{[]string{"plan", path, "--taps", "c1,c2", "--input", "10x10"}, `input size "10x10"`},
		{[]string{"plan", path, "--taps", "c1,c2", "--frame", "10"}, `--frame`},
		{[]string{"plan", path, "--taps", "c1,c2", "--resize", "crop"}, `--resize "crop"`},
		{[]string{"plan", path, "--taps", "c1,c2", "--tiles", "4000x40"}, "tiles, at most 16 a side"},
		{[]string{"plan", path, "--taps", "c1,c2", "--images", "1"}, "1 images"},
		{[]string{"plan", path, "--taps", "c1,c2", "--ratio", "1.5"}, "ratio 1.5"},
		{[]string{"plan", path, "--taps", "c1,c2", "--folds", "1"}, "1 folds"},
		{[]string{"plan", path, "--taps", "c1,nope"}, "nope"},
		{[]string{"plan", path, "--taps", "c1,c2", "--input", "16384x16384"}, "activations take up to"},
		{[]string{"plan", filepath.Join(t.TempDir(), "missing.tflite")}, "missing.tflite"},
	} {
		var buf bytes.Buffer
		if err := run(c.args, &buf); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want one naming %q", c.args, err, c.want)
		}
	}
}

// FuzzParseTiles: --tiles (bank build's, plan's, bench's) never panics;
// what it accepts is off or a canvas of sides 16..16384, and its canonical
// form reads back the same.
func FuzzParseTiles(f *testing.F) {
	for _, s := range []string{"off", "OFF", " off ", "1", "4", "3x2", "1200x800", "16x16", "15x16", "0", "x", "2x", "-1x3", "16384x1", " 2000X2000 ", "9999999999999999999x2", "4611686018427387904x4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		off, w, h, err := parseTiles(s)
		if err != nil {
			return
		}
		if off {
			if w != 0 || h != 0 {
				t.Fatalf("%q: off with a canvas %dx%d", s, w, h)
			}
			return
		}
		if w < 16 || h < 16 || w > 1<<14 || h > 1<<14 {
			t.Fatalf("%q: accepted %dx%d", s, w, h)
		}
		if off2, w2, h2, err := parseTiles(fmt.Sprintf("%dx%d", w, h)); err != nil || off2 || w2 != w || h2 != h {
			t.Fatalf("%q: %dx%d does not read back (%dx%d, %v)", s, w, h, w2, h2, err)
		}
	})
}

// TestBuildPeakMeasured: plan's build memory estimate against the peaks
// bank build measured (maxrss of the pure-Go binary, CGO_ENABLED=0 -tags
// nogocv; 2 threads, three to five runs each, load 1.5-5.4) on bottle's 209 good images,
// 784 patches each, for the three backbones of the README: within 20%.
// The inputs are those plan reads from the models (tap bytes from the
// tensors, the file's size, the engine's arena).
func TestBuildPeakMeasured(t *testing.T) {
	const mib = 1 << 20
	coreset := func(n int64) int64 { return int64(bank.CoresetSize(int(n), 0.1, 0)) }
	for _, c := range []struct {
		name                   string
		dim, tap, model, arena int64
		measuredLo, measuredHi int64 // MiB
	}{
		// tf2 MobileNetV2, taps 28x28x32 + 14x14x64.
		{"96-d", 96, 28*28*32 + 14*14*64, 4070174, 1505344, 71, 76},
		// ResNet18 layer2 + layer3 at 224: 28x28x128 + 14x14x256.
		{"384-d", 384, 28*28*128 + 14*14*256, 2850648, 1634624, 151, 158},
		// ResNet18 layer3 + layer4 at 448: 28x28x256 + 14x14x512.
		{"768-d", 768, 28*28*256 + 14*14*512, 11313456, 6480192, 288, 292},
	} {
		pd := int64(128)
		if pd >= c.dim {
			pd = 0 // as plan: no projection to more dimensions than the vectors'
		}
		got := buildPeak(209, 5, 784, c.tap, c.dim, pd, c.model, c.arena, coreset)
		lo, hi := float64(c.measuredLo*mib)/1.2, float64(c.measuredHi*mib)*1.2
		t.Logf("%s: estimate %.1f MiB, measured %d-%d MiB", c.name, float64(got)/mib, c.measuredLo, c.measuredHi)
		if float64(got) < lo || float64(got) > hi {
			t.Errorf("%s: estimate %.1f MiB, measured %d-%d MiB: off by more than 20%%", c.name, float64(got)/mib, c.measuredLo, c.measuredHi)
		}
	}
}
