// Package bench is the harness of `linesight bench`: it times every stage
// of a frame through a patchcore.Detector (median and p99), measures the
// machine's int8 peak, counts the backbone's and the search's work, and
// provides the synthetic model, bank and frame the command uses when it is
// given none.
package bench

import (
	"bytes"
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

	Frames       int     `json:"frames"`
	Model        string  `json:"model"`
	BackboneMACs int64   `json:"backbone_macs"`
	BankVectors  int     `json:"bank_vectors"`
	Dim          int     `json:"dim"`
	Patches      int     `json:"patches"`
	SearchMACs   int64   `json:"search_macs"`
	Frame        string  `json:"frame"`
	DecodeAllocs float64 `json:"decode_allocs_per_frame"`
	GOARCH       string  `json:"goarch"`
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
func Frame() []byte {
	const w, h = 1280, 720
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(7, 7))
	for y := range h {
		for x := range w {
			dx, dy := float64(x-w/2)/300, float64(y-h/2)/220
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

// SyntheticBank is a bank for mf (its default taps) sized like a 10%
// coreset of images×patches, with seeded random vectors: searching it costs
// what a real bank of that size costs.
func SyntheticBank(mf *model.File, images int) (*bank.Bank, error) {
	taps, err := patchcore.DefaultTaps(mf.Model)
	if err != nil {
		return nil, err
	}
	ip, err := engine.NewInterpreter(mf.Model, engine.Options{Threads: 1, Taps: taps})
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
	n := images * gw * gh / 10
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
			Patches: images * gw * gh},
		Images:    bank.Images{Train: images},
		Count:     n,
		Scale:     0.05,
		Threshold: bank.Threshold{Rule: "max-margin", Param: 1.1, Value: 1e9, Pixel: 1e9, Width: 1},
	}
	patchcore.Recipe{Taps: taps}.Stamp(&meta, ip.Input(), emb, 0)
	return bank.New(meta, vecs)
}

// Run runs frames frames (after a warm-up) through decode and
// d.InspectInto, timing every stage.
//
// frame is an encoded image (JPEG, PNG, BMP) described by frameName; nil
// uses Frame.
func Run(d *patchcore.Detector, modelName string, threads, frames int, frame []byte, frameName string) (*Report, error) {
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
		BankVectors: meta.Count, Dim: meta.Dim,
	}
	gw, gh := d.Grid()
	rep.Patches = gw * gh
	rep.SearchMACs = int64(rep.Patches) * int64(meta.Count) * int64(meta.Dim)
	if rep.BackboneMACs, err = backboneMACs(d); err != nil {
		return nil, err
	}

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
		if err := d.InspectInto(img, &r); err != nil {
			return nil, err
		}
		t2 := time.Now()
		runtime.ReadMemStats(&ms)
		if i < 0 {
			continue
		}
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
	rep.AllocsPerFrame = float64(inspectAllocs) / float64(frames)
	rep.DecodeAllocs = float64(decodeAllocs) / float64(frames)
	for _, s := range Stages {
		v := times[s]
		slices.Sort(v)
		st := StageStats{MedianMS: quantileSorted(v, 0.5), P99MS: quantileSorted(v, 0.99)}
		var macs int64
		switch s {
		case "backbone":
			macs = rep.BackboneMACs
		case "search":
			macs = rep.SearchMACs
		}
		if macs > 0 && st.MedianMS > 0 {
			st.GMACs = float64(macs) / (st.MedianMS / 1e3) / 1e9
			if peak > 0 {
				st.PctPeak = 100 * st.GMACs / (peak * float64(threads))
			}
		}
		rep.Stages[s] = st
	}
	return rep, nil
}

func quantileSorted(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	i := int(q * float64(len(v)-1))
	return v[min(i, len(v)-1)]
}

// backboneMACs counts the detector's backbone work from its model when it
// is the Go interpreter.
func backboneMACs(d *patchcore.Detector) (int64, error) {
	if ip, ok := d.Backbone().(*engine.Interpreter); ok {
		return model.MACs(ip.Model()), nil
	}
	return 0, nil
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
