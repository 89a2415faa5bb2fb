// Package bench is the harness of `linesight bench`: it times every stage
// of a frame through a patchcore.Detector (median and p99), measures the
// machine's int8 peak, counts the backbone's and the search's work, and
// provides the synthetic model, bank and frame the command uses when it is
// given none.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/qgemm"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/sampleline"
	"github.com/linesight/linesight/internal/vec"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/resnet"
	"github.com/linesight/linesight/model/tflite"
	"github.com/linesight/linesight/patchcore"
)

// StageStats is one stage's time per frame over a benchmark run.
type StageStats struct {
	MedianMS float64 `json:"median_ms"`
	P99MS    float64 `json:"p99_ms"`
	// GMACs is the stage's int8 multiply-accumulate rate (backbone and
	// search), and PctPeak that rate against Threads × the measured peak.
	GMACs   float64 `json:"gmacs,omitempty"`
	PctPeak float64 `json:"pct_of_peak,omitempty"`
}

// Report is what `linesight bench` measures.
type Report struct {
	Threads          int                   `json:"threads"`
	PeakGMACsPerCore float64               `json:"peak_gmacs_per_core"`
	Kernels          map[string]string     `json:"kernels"`
	AllocsPerFrame   float64               `json:"allocs_per_frame"`
	Stages           map[string]StageStats `json:"stages"`

	Frames int    `json:"frames"`
	Model  string `json:"model"`
	// Bank says what kind of bank was searched (BankKind).
	Bank string `json:"bank"`
	// BackboneMACs is the backbone's work per frame up to the taps, every
	// tile's (patchcore.CostOf).
	BackboneMACs int64 `json:"backbone_macs"`
	BankVectors  int   `json:"bank_vectors"`
	Dim          int   `json:"dim"`
	// Patches is the patch vectors searched per frame: every tile's grid,
	// only the cells inside the region of interest (patchcore.CostOf).
	Patches int `json:"patches"`
	// Cost is the per-frame cost line bank build prints for this bank.
	Cost string `json:"cost"`
	// SearchMACs is the search's measured work per frame (median over the
	// timed frames: bank vectors and cluster centres met, times Dim);
	// SearchMACsBrute what brute force would do (Patches × BankVectors ×
	// Dim).
	SearchMACs      int64   `json:"search_macs"`
	SearchMACsBrute int64   `json:"search_macs_brute"`
	Frame           string  `json:"frame"`
	DecodeAllocs    float64 `json:"decode_allocs_per_frame"`
	GOARCH          string  `json:"goarch"`
	// BackboneAlone is the backbone's forward passes for one frame (every
	// tile's) run back to back on the input the last frame left, nothing
	// between them: how the speed peers time their models (ONNX Runtime's
	// session.run in a loop, TensorFlow Lite's Invoke), so the like for
	// like figure to set beside theirs. Stages["backbone"] is the same
	// passes inside the frame's pipeline, after preprocess and the previous
	// frame's search have filled the caches with other data; it is the
	// station's figure, slower by what the caches and the parked workers
	// cost.
	BackboneAlone StageStats `json:"backbone_alone"`
	// Ops is filled by Ops: the backbone's operators in run order.
	Ops []OpTime `json:"ops,omitempty"`
}

// OpTime is one backbone operator's median time over the benchmark frames.
type OpTime struct {
	Index    int     `json:"index"`
	Op       string  `json:"op"`
	Shape    []int   `json:"shape"`
	MedianMS float64 `json:"median_ms"`
	GMACs    float64 `json:"gmacs,omitempty"`
}

// Stages in report order: the detector's stages between "decode" and the
// totals. "total" is a frame's time from its decoded pixels to the result: what the
// daemon spends per camera frame, which GoCV hands over decoded. Decoding
// a file (the "decode" stage) comes on top of it in "total_with_decode".
var Stages = stages()

func stages() []string {
	s := []string{"decode"}
	for st := range patchcore.NumStages {
		s = append(s, st.String())
	}
	return append(s, "total", "total_with_decode")
}

// Frame is a synthetic 1280×720 camera frame as JPEG (quality 90): a
// lit part on a belt with texture, so the decoder has real work.
func Frame() []byte { return FrameSized(1280, 720) }

// FrameSized is Frame's scene drawn at w×h (the part scaled with it).
func FrameSized(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(7, 7))
	for y := range h {
		for x := range w {
			dx, dy := float64(x-w/2)/(300*float64(w)/1280), float64(y-h/2)/(220*float64(h)/720)
			v := 60 + 20*float64((x/16+y/16)%2)
			if dx*dx+dy*dy < 1 {
				v = 170 + 40*dx
			}
			n := rng.IntN(24)
			img.SetRGBA(x, y, color.RGBA{uint8(min(255, v+float64(n))), uint8(min(255, v*0.95+float64(n))), uint8(min(255, v*0.9+float64(n))), 255})
		}
	}
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	return buf.Bytes()
}

// RandomResNet18 builds the seeded random-weight ResNet18 (layer2 and
// layer3 out, int8) that `linesight bench` runs without --model, calibrated
// on two synthetic frames. Its features are meaningless; its work is real.
func RandomResNet18(threads int) (*model.File, error) {
	dir, err := os.MkdirTemp("", "linesight-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var calib []string
	for i := range 2 {
		p := filepath.Join(dir, fmt.Sprintf("calib%d.jpg", i))
		if err := os.WriteFile(p, Frame(), 0o644); err != nil {
			return nil, err
		}
		calib = append(calib, p)
	}
	m, _, err := resnet.Build(resnet.RandomStateDict(resnet.Archs["resnet18"], 0), resnet.Options{
		Calib: calib, Threads: threads, Source: "random-init", Random: true})
	if err != nil {
		return nil, fmt.Errorf("bench: building the random ResNet18: %w", err)
	}
	raw, err := tflite.Write(m)
	if err != nil {
		return nil, err
	}
	return model.Parse("random-init", raw)
}

// Kinds of bank `linesight bench` searches (Report.Bank begins with one).
const (
	// KindRandom: iid random vectors. Its size costs what a real bank of
	// that size costs by brute force, but it has none of real features'
	// structure: the clustered search cannot skip anything on it, so the
	// measured search work is not what real banks see.
	KindRandom = "random"
	// KindBuilt: built by patchcore.Build from good frames through the
	// backbone (a folder, or the sample line), as bank build makes it:
	// the measured search work is what a station sees on good parts.
	KindBuilt = "built"
	// KindStore: a bank database's active bank.
	KindStore = "database"
)

// SyntheticBank is a bank of iid random vectors for mf (its default taps,
// its own input size) sized like a 10% coreset of images×patches: see
// SyntheticBankAt.
func SyntheticBank(mf *model.File, images int) (*bank.Bank, error) {
	sw, sh, err := patchcore.StoredInput(mf.Model)
	if err != nil {
		return nil, err
	}
	return SyntheticBankAt(mf, nil, images, patchcore.Choice{W: sw, H: sh, Fit: patchcore.FitSquash})
}

// SyntheticBankAt is a bank for mf and taps (nil: the default) at geometry c
// (model input and tiles), sized like a 10% coreset of images × the
// patches a frame gives there, with seeded iid random vectors: searching
// it by brute force costs what a real bank of that size costs, but it has
// no cluster structure (KindRandom).
func SyntheticBankAt(mf *model.File, taps []string, images int, c patchcore.Choice) (*bank.Bank, error) {
	if len(taps) == 0 {
		var err error
		if taps, err = patchcore.DefaultTaps(mf.Model); err != nil {
			return nil, err
		}
	}
	m := mf.Model
	if sw, sh, err := patchcore.StoredInput(m); err != nil {
		return nil, err
	} else if c.W != sw || c.H != sh {
		if m, err = model.AtInputSize(m, taps, c.H, c.W); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	ip, err := engine.NewInterpreter(m, engine.Options{Threads: 1, Taps: taps})
	if err != nil {
		return nil, err
	}
	defer ip.Close()
	emb, err := patchcore.NewEmbedder(ip.Outputs(), 0, 0)
	if err != nil {
		return nil, err
	}
	gw, gh := emb.Grid()
	dim := emb.Dim()
	patches := gw * gh
	if c.Tiles != nil {
		patches *= c.Tiles.Cols * c.Tiles.Rows
	}
	n := max(1, images*patches/10)
	vecs := make([]int8, n*dim)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range vecs {
		// Post-ReLU features pooled: mostly small and positive.
		vecs[i] = int8(min(127, rng.ExpFloat64()*20))
	}
	meta := bank.Meta{
		Created: time.Now().UTC().Truncate(time.Second),
		Note:    "synthetic (linesight bench)",
		Model:   bank.ModelRef{Path: mf.Path, SHA256: mf.SHA256},
		Coreset: bank.Coreset{Method: "greedy-k-center", Ratio: 0.1, Seed: 1, ProjectDim: 128,
			Patches: images * patches},
		Images:    bank.Images{Train: images},
		Count:     n,
		Scale:     0.05,
		Threshold: bank.Threshold{Rule: "max-margin", Param: 1.1, Value: 1e9, Pixel: 1e9, Width: 1},
	}
	why := c.Why
	if why == "" {
		why = "bench"
	}
	patchcore.Recipe{Taps: taps, Fit: c.Fit, Why: why, Tiles: c.Tiles}.Stamp(&meta, ip.Input(), emb, 0)
	return bank.New(meta, vecs)
}

// BuiltBank builds a bank for mf and taps (nil: the default) from good
// images files at geometry c as bank build does (patchcore.Build, default recipe, coreset ratio 0.1),
// with a single hold-out share for the threshold instead of folds (KindBuilt):
// the threshold and the images learnt differ from bank build's, the kind
// of vectors does not. It returns
// the held-out images too: frames the bank has not learnt.
func BuiltBank(ctx context.Context, mf *model.File, taps []string, files []string, c patchcore.Choice, threads int) (*bank.Bank, []string, error) {
	b, rep, err := patchcore.Build(ctx, mf, files, patchcore.BuildOptions{
		Recipe: patchcore.Recipe{Taps: taps, InputW: c.W, InputH: c.H, Fit: c.Fit, Why: c.Why, Tiles: c.Tiles},
		// max-margin: the tail rule needs more held-out scores than a
		// small folder gives, and bench does not use the threshold.
		Folds: patchcore.SingleHoldout, Rule: patchcore.RuleMaxMargin, Threads: threads, Note: "linesight bench"})
	if err != nil {
		return nil, nil, fmt.Errorf("bench: building the bank: %w", err)
	}
	return b, rep.Holdout, nil
}

// SampleLine writes n good training parts of the sample line of the given
// kind (sampleline.KindWasher, KindStrip, KindSmall) and one good test
// part into dir, and returns their paths.
func SampleLine(dir, kind string, n int) (train []string, good string, err error) {
	if err := sampleline.WriteKind(dir, kind, sampleline.Counts{Train: n, TestGood: 1}, 1); err != nil {
		return nil, "", fmt.Errorf("bench: sample line: %w", err)
	}
	if train, err = patchcore.ImageFiles(filepath.Join(dir, "train", "good")); err != nil {
		return nil, "", err
	}
	return train, filepath.Join(dir, "test", "good", "000.png"), nil
}

// Run runs frames frames (after a warm-up) through decode and
// d.InspectInto, timing every stage and counting the search's work.
//
// frame is an encoded image (JPEG, PNG, BMP) described by frameName; nil
// uses Frame. bankKind says what the detector's bank is (BankKind).
func Run(d *patchcore.Detector, modelName, bankKind string, threads, frames int, frame []byte, frameName string) (*Report, error) {
	if frame == nil {
		frame, frameName = Frame(), "1280x720 JPEG (synthetic)"
	}
	meta := &d.Bank().Meta
	peak := qgemm.PeakGMACs(200 * time.Millisecond)
	_, kern := qgemm.Kernels()
	_, format, err := image.DecodeConfig(bytes.NewReader(frame))
	if err != nil {
		return nil, fmt.Errorf("bench: frame: %w", err)
	}
	rep := &Report{
		Threads: threads, PeakGMACsPerCore: peak, Frames: frames, Model: modelName, GOARCH: runtime.GOARCH,
		// The GEMM serves backbone and search; requantization, ADD,
		// depthwise and pooling use the element-wise kernels.
		Kernels: map[string]string{
			"decode": "image/" + format, "preprocess": "go", "backbone": kern, "elementwise": vec.Kernel(),
			"embed": "go", "search": kern, "map": "go",
		},
		Stages:      map[string]StageStats{},
		Frame:       frameName,
		Bank:        bankKind,
		BankVectors: meta.Count, Dim: meta.Dim,
		Patches: d.SearchedPatches(),
	}
	rep.SearchMACsBrute = int64(rep.Patches) * int64(meta.Count) * int64(meta.Dim)
	if c, ok, err := costOf(d); err != nil {
		return nil, err
	} else if ok {
		rep.BackboneMACs, rep.Cost = c.MACs, c.Line(meta.Count, meta.Dim)
		if c.Patches != rep.Patches {
			return nil, fmt.Errorf("bench: the detector searches %d patches per frame, patchcore.CostOf counts %d", rep.Patches, c.Patches)
		}
	}
	var searchMACs []float64

	times := map[string][]float64{}
	var r patchcore.Result
	var decodeAllocs, inspectAllocs uint64
	var ms runtime.MemStats
	warm := max(3, frames/10)
	for i := -warm; i < frames; i++ {
		runtime.ReadMemStats(&ms)
		a0 := ms.Mallocs
		t0 := time.Now()
		img, err := rgb.Decode(bytes.NewReader(frame))
		if err != nil {
			return nil, err
		}
		t1 := time.Now()
		runtime.ReadMemStats(&ms)
		a1 := ms.Mallocs
		m0 := d.SearchMACs()
		if err := d.InspectInto(img, &r); err != nil {
			return nil, err
		}
		t2 := time.Now()
		runtime.ReadMemStats(&ms)
		if i < 0 {
			continue
		}
		searchMACs = append(searchMACs, float64(d.SearchMACs()-m0))
		decodeAllocs += a1 - a0
		inspectAllocs += ms.Mallocs - a1
		msOf := func(d time.Duration) float64 { return float64(d) / 1e6 }
		times["decode"] = append(times["decode"], msOf(t1.Sub(t0)))
		for st, d := range r.Timing {
			name := patchcore.Stage(st).String()
			times[name] = append(times[name], msOf(d))
		}
		times["total"] = append(times["total"], msOf(t2.Sub(t1)))
		times["total_with_decode"] = append(times["total_with_decode"], msOf(t2.Sub(t0)))
	}
	alone, err := backboneAlone(d, warm, frames)
	if err != nil {
		return nil, err
	}
	slices.Sort(searchMACs)
	rep.SearchMACs = int64(quantileSorted(searchMACs, 0.5))
	rep.AllocsPerFrame = float64(inspectAllocs) / float64(frames)
	rep.DecodeAllocs = float64(decodeAllocs) / float64(frames)
	for _, s := range Stages {
		var macs int64
		switch s {
		case "backbone":
			macs = rep.BackboneMACs
		case "search":
			macs = rep.SearchMACs
		}
		rep.Stages[s] = stageStats(times[s], macs, peak*float64(threads))
	}
	rep.BackboneAlone = stageStats(alone, rep.BackboneMACs, peak*float64(threads))
	return rep, nil
}

// stageStats is the median and p99 of v (ms per frame, sorted here) and,
// when the stage does macs multiply-accumulates a frame, its rate and its
// share of peak (GMAC/s of every thread together; 0: unknown).
func stageStats(v []float64, macs int64, peak float64) StageStats {
	slices.Sort(v)
	st := StageStats{MedianMS: quantileSorted(v, 0.5), P99MS: quantileSorted(v, 0.99)}
	if macs > 0 && st.MedianMS > 0 {
		st.GMACs = float64(macs) / (st.MedianMS / 1e3) / 1e9
		if peak > 0 {
			st.PctPeak = 100 * st.GMACs / peak
		}
	}
	return st
}

// backboneAlone times d's backbone passes for one frame (one per tile) run
// back to back, frames times after warm untimed, on the input the last
// frame left: per frame, in milliseconds.
func backboneAlone(d *patchcore.Detector, warm, frames int) ([]float64, error) {
	passes := 1
	if tl := d.Bank().Meta.Preprocess.Tiles; tl != nil {
		passes = tl.Cols * tl.Rows
	}
	bb := d.Backbone()
	v := make([]float64, 0, frames)
	for i := -warm; i < frames; i++ {
		t0 := time.Now()
		for range passes {
			if err := bb.Invoke(); err != nil {
				return nil, fmt.Errorf("bench: backbone alone: %w", err)
			}
		}
		if i >= 0 {
			v = append(v, float64(time.Since(t0))/1e6)
		}
	}
	return v, nil
}

func quantileSorted(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	i := int(q * float64(len(v)-1))
	return v[min(i, len(v)-1)]
}

// costOf is the per-frame cost of the detector's bank (patchcore.CostOf,
// as bank build prints it) when its backbone exposes its model (the Go
// interpreter does): the backbone's work to the taps, every tile's.
func costOf(d *patchcore.Detector) (patchcore.Cost, bool, error) {
	mb, ok := d.Backbone().(interface{ Model() *tflite.Model })
	if !ok {
		return patchcore.Cost{}, false, nil
	}
	c, err := patchcore.CostOf(mb.Model(), &d.Bank().Meta)
	return c, err == nil, err
}

// Ops times every backbone operator over frames forward passes of the
// input the last frame left in the interpreter, so the report shows where
// the backbone's time goes. It needs the Go interpreter.
func Ops(d *patchcore.Detector, rep *Report, frames int) error {
	ip, ok := d.Backbone().(*engine.Interpreter)
	if !ok {
		return fmt.Errorf("bench: per-operator times need the Go interpreter")
	}
	n := ip.StepCount()
	per := make([][]float64, n)
	times := make([]time.Duration, n)
	for f := -max(3, frames/10); f < frames; f++ {
		clear(times)
		if err := ip.InvokeTimed(times); err != nil {
			return err
		}
		if f < 0 {
			continue
		}
		for i, t := range times {
			per[i] = append(per[i], float64(t)/1e6)
		}
	}
	rep.Ops = rep.Ops[:0]
	for i := range n {
		idx, op, shape := ip.StepInfo(i)
		slices.Sort(per[i])
		ot := OpTime{Index: idx, Op: op, Shape: shape, MedianMS: quantileSorted(per[i], 0.5)}
		if macs := model.OpMACs(ip.Model(), idx); macs > 0 && ot.MedianMS > 0 {
			ot.GMACs = float64(macs) / (ot.MedianMS / 1e3) / 1e9
		}
		rep.Ops = append(rep.Ops, ot)
	}
	return nil
}
