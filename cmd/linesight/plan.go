package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/qgemm"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/tflite"
	"github.com/linesight/linesight/patchcore"
)

func init() {
	commands = append(commands,
		command{"plan", "before enrolment: bank size, build time and memory, MACs per frame and latency on known boards", planCmd})
}

// A plan is arithmetic on shapes: the backbone's operators at the chosen
// input size (the ones the engine runs up to the taps), the embedding the
// taps give, the coreset the image count and ratio give, and the search
// between them. Work is counted in int8 multiply-accumulates (MACs) and
// float operations; times are work divided by a rate, and the rates of the
// boards are estimates from their cores' documented issue rates (boards
// below), while this machine's are measured by a short calibration run.

// maxPlanActivations bounds the engine plan builds at another input size:
// the sum of the backbone's activations at that size (an upper bound of
// the arena).
const maxPlanActivations = 1 << 30

// planArgs is what `linesight plan` is asked.
type planArgs struct {
	Model string
	// FrameW×FrameH is the frames' size (0: not given): the geometry is
	// chosen for it by bank build's rule (patchcore.ChooseGeometry).
	FrameW, FrameH int
	// Geometry is bank build's --input, --resize and --tiles.
	Geometry   patchcore.GeometryFlags
	Images     int
	Ratio      float64
	Max        int
	Taps       []string
	Project    int
	Folds      int
	CoresetDim int
	Threads    int
	Calibrate  time.Duration // 0: no calibration run
}

// macGroup is the backbone work at one output resolution.
type macGroup struct {
	Grid string `json:"grid"` // output W x H and its stride
	Ops  int    `json:"ops"`
	MACs int64  `json:"macs"`
}

// boardEstimate is one board's estimated times.
type boardEstimate struct {
	Name       string  `json:"name"`
	Cores      int     `json:"cores"`
	GMACsCore  float64 `json:"gmacs_per_core"` // int8 rate assumed per core
	Measured   bool    `json:"measured"`
	BackboneMS float64 `json:"backbone_ms"`
	EmbedMS    float64 `json:"embed_ms"`
	SearchMS   float64 `json:"search_ms"`
	FrameMS    float64 `json:"frame_ms"`
	BuildS     float64 `json:"build_s"`
}

// planReport is everything `linesight plan` prints.
type planReport struct {
	Model         string      `json:"model"`
	InputW        int         `json:"input_w"`
	InputH        int         `json:"input_h"`
	Fit           string      `json:"fit"`
	Why           string      `json:"why"`
	Tiles         int         `json:"tiles"`                 // backbone passes per frame
	TileLayout    *bank.Tiles `json:"tile_layout,omitempty"` // as bank build stores it
	Cost          string      `json:"cost"`                  // bank build's cost line for this geometry
	Taps          []string    `json:"taps"`
	GridW         int         `json:"grid_w"`
	GridH         int         `json:"grid_h"`
	Dim           int         `json:"dim"`
	Patches       int         `json:"patches_per_frame"`
	Groups        []macGroup  `json:"backbone_groups"`
	BackboneMACs  int64       `json:"backbone_macs"` // per frame (all tiles)
	EmbedFlops    int64       `json:"embed_flops"`   // per frame: pooling, upsampling, projection
	SearchMACs    int64       `json:"search_macs"`   // per frame, brute force
	BankPatches   int64       `json:"bank_patches"`  // candidates: images x patches
	BankVectors   int         `json:"bank_vectors"`
	BankBytes     int64       `json:"bank_bytes"` // int8 vectors
	BuildMACs     planBuild   `json:"build_macs"`
	BuildPeak     int64       `json:"build_peak_bytes"`
	ModelBytes    int64       `json:"model_bytes"`
	ArenaBytes    int64       `json:"arena_bytes"`
	FrameMemory   int64       `json:"frame_memory_bytes"`
	Boards        []boardEstimate
	Calibration   string `json:"calibration,omitempty"`
	CoresetDim    int    `json:"coreset_dim"`
	Folds         int    `json:"folds"`
	Ratio         float64
	Images        int
	ElementsFrame planElements `json:"elements_per_frame"`
}

// planBuild is the build's work: the backbone over every image, the
// coreset selections (the bank's and the calibration folds'), scoring the
// folds and the coverage radius (every candidate against the bank).
type planBuild struct {
	Backbone int64 `json:"backbone"`
	Coreset  int64 `json:"coreset"`
	Folds    int64 `json:"folds"`
	Radius   int64 `json:"radius"`
}

func (b planBuild) total() int64 { return b.Backbone + b.Coreset + b.Folds + b.Radius }

// planElements counts the element-wise work of a frame by kernel (values
// produced), for the vector cost model.
type planElements struct {
	Requant int64 `json:"requant"` // outputs of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED
	Add     int64 `json:"add"`
	Pool    int64 `json:"pool"`
	Other   int64 `json:"other"`
}

// board is a target whose rate is estimated, not measured here.
type board struct {
	name  string
	cores int
	ghz   float64
	// macsPerCycle is the int8 MACs per cycle per core that the inner
	// loop of the GEMM kernel this board would run can issue.
	macsPerCycle float64
}

// boards: the CPUs, clocks and issue rates the README cites. Pi 4: 4x
// Cortex-A72 at 1.5 GHz, no dotprod: the NEON kernel's SMULL runs on the
// one ASIMD pipe that multiplies (Cortex-A72 Software Optimization Guide,
// UAN 0016A: integer multiplies issue on F0 only), 8 MACs per cycle. Pi 5:
// 4x Cortex-A76 at 2.4 GHz, SDOT (16 MACs) on both ASIMD pipes (Cortex-A76
// Software Optimization Guide), 32 per cycle. Jetson Orin Nano: 6x
// Cortex-A78AE at 1.5 GHz (NVIDIA's module data sheet), SDOT as the A76.
var boards = []board{
	{"Raspberry Pi 4 (4x A72 1.5 GHz, NEON)", 4, 1.5, 8},
	{"Raspberry Pi 5 (4x A76 2.4 GHz, SDOT)", 4, 2.4, 32},
	{"Jetson Orin Nano CPU (6x A78AE 1.5 GHz, SDOT)", 6, 1.5, 32},
}

// Assumptions of the board estimates (estimates, not measurements):
const (
	// boardEfficiency is the share of the issue rate a whole forward pass
	// or search reaches: the Pi 4 figure (about 22 GMAC/s for the
	// best peer runtime on 4 cores) is 46% of 4 x 12; our kernels reach
	// 53-86% of peak on Zen 5.
	boardEfficiency = 0.5
	// floatOpsPerCycle: the embedding's float work (pooling, bilinear
	// upsampling, projection) at one 4-lane vector operation per cycle
	// per core, before boardEfficiency.
	floatOpsPerCycle = 4
)

func planCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(out)
	var a planArgs
	frame := fs.String("frame", "", "the frames' size WxH: the geometry is chosen for it as bank build chooses it for its good images (default: none, the model's own input)")
	fs.StringVar(&a.Geometry.Input, "input", "", "model input WxH or short side N, as bank build's --input")
	fs.StringVar(&a.Geometry.Resize, "resize", "", "squash or keep-aspect, as bank build's --resize")
	fs.StringVar(&a.Geometry.Tiles, "tiles", "", "the canvas WxH the frame is resized to and cut into overlapping tiles of the model input, or off, as bank build's --tiles")
	fs.IntVar(&a.Images, "images", 200, "good images to enrol")
	fs.Float64Var(&a.Ratio, "ratio", 0.1, "coreset share")
	fs.IntVar(&a.Max, "max", 0, "coreset cap (0 = none)")
	taps := fs.String("taps", "", "feature-map tensors, comma-separated (default: the model's default taps)")
	fs.IntVar(&a.Project, "project", 0, "embedding projection dimensions (0 = none)")
	fs.IntVar(&a.Folds, "folds", patchcore.DefaultFolds, "calibration folds (0 = a single hold-out)")
	fs.IntVar(&a.CoresetDim, "coreset-dim", 128, "coreset random projection dimensions")
	fs.IntVar(&a.Threads, "threads", runtime.NumCPU(), "threads on this machine (the calibration run)")
	fs.DurationVar(&a.Calibrate, "calibrate", 2*time.Second, "time for the calibration run on this machine (0 = none)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: linesight plan MODEL.tflite [--frame WxH] [--input WxH] [--resize squash|keep-aspect] [--tiles WxH|off] [--images N] [--ratio R] [--max N] [--taps A,B] [--project D] [--folds K] [--threads T] [--calibrate 2s] [--json]")
	}
	a.Model = pos[0]
	if *frame != "" {
		if a.FrameW, a.FrameH, err = patchcore.ParseSize(*frame); err != nil {
			return fmt.Errorf("plan: --frame: %w", err)
		}
	}
	if a.Geometry.Tiles != "" {
		if _, _, _, err := parseTiles(a.Geometry.Tiles); err != nil {
			return err
		}
	}
	if *taps != "" {
		a.Taps = strings.Split(*taps, ",")
	}
	rep, err := makePlan(a)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(out).Encode(rep)
	}
	return printPlan(out, rep)
}

// parseTiles reads --tiles as bank build does: "off" or the canvas "WxH".
func parseTiles(s string) (off bool, w, h int, err error) {
	off, w, h, err = patchcore.ParseTiles(s)
	if err != nil {
		return false, 0, 0, fmt.Errorf("plan: %w", err)
	}
	return off, w, h, nil
}

// planGeometry is the model input and tiles bank build would choose for
// frames of a.FrameW×a.FrameH (none: the model's own input) and the flags.
func planGeometry(m *tflite.Model, a planArgs) (patchcore.Choice, error) {
	sw, sh, err := patchcore.StoredInput(m)
	if err != nil {
		return patchcore.Choice{}, err
	}
	var sizes [][2]int
	if a.FrameW > 0 && a.FrameH > 0 {
		sizes = [][2]int{{a.FrameW, a.FrameH}}
	}
	c, err := patchcore.ChooseGeometry(sw, sh, sizes, 0, a.Geometry)
	if err != nil {
		return patchcore.Choice{}, fmt.Errorf("plan: %w", err)
	}
	return c, nil
}

func makePlan(a planArgs) (*planReport, error) {
	if a.Images < 2 {
		return nil, fmt.Errorf("plan: %d images; a bank needs at least 2", a.Images)
	}
	if !(a.Ratio > 0 && a.Ratio <= 1) {
		return nil, fmt.Errorf("plan: coreset ratio %v outside (0, 1]", a.Ratio)
	}
	if a.Folds == 1 || a.Folds < 0 {
		return nil, fmt.Errorf("plan: %d folds; use at least 2, or 0 for a single hold-out", a.Folds)
	}
	a.Threads = max(a.Threads, 1)
	mf, err := model.Load(a.Model)
	if err != nil {
		return nil, err
	}
	m := mf.Model
	if len(a.Taps) == 0 {
		if a.Taps, err = patchcore.DefaultTaps(m); err != nil {
			return nil, err
		}
	}
	sw, sh, err := patchcore.StoredInput(m)
	if err != nil {
		return nil, err
	}
	geo, err := planGeometry(m, a)
	if err != nil {
		return nil, err
	}
	inW, inH := geo.W, geo.H
	opt := engine.Options{Threads: a.Threads, Taps: a.Taps}
	if inW != sw || inH != sh {
		opt.InputW, opt.InputH = inW, inH
		// The engine allocates its arena for the new size: refuse sizes
		// whose activations would not fit before it tries (their sum
		// bounds the arena, which shares memory by liveness).
		rm, err := model.AtInputSize(m, a.Taps, inH, inW)
		if err != nil {
			return nil, err
		}
		var act int64
		sg := &rm.Subgraphs[0]
		for i := range sg.Tensors {
			if b := sg.Tensors[i].Buffer; b == 0 || int(b) >= len(rm.Buffers) || len(rm.Buffers[b]) == 0 {
				act += int64(model.InfoOf(rm, i).Bytes())
			}
		}
		if act > maxPlanActivations {
			return nil, fmt.Errorf("plan: at %dx%d the backbone's activations take up to %d MiB; plan builds the engine only up to %d MiB (choose a smaller --input, or --tiles)",
				inW, inH, act>>20, maxPlanActivations>>20)
		}
	}
	// The engine at this geometry: its steps are the work of a frame.
	ip, err := engine.NewInterpreter(m, opt)
	if err != nil {
		return nil, err
	}
	defer ip.Close()
	emb, err := patchcore.NewEmbedder(ip.Outputs(), a.Project, 0)
	if err != nil {
		return nil, err
	}
	tiles := 1
	if geo.Tiles != nil {
		tiles = geo.Tiles.Cols * geo.Tiles.Rows
	}
	gw, gh := emb.Grid()
	rep := &planReport{
		Model: mf.Path, InputW: inW, InputH: inH, Fit: geo.Fit, Why: geo.Why, Tiles: tiles, TileLayout: geo.Tiles, Taps: a.Taps,
		GridW: gw, GridH: gh, Dim: emb.Dim(), Patches: tiles * gw * gh,
		ModelBytes: int64(mf.Size), ArenaBytes: int64(ip.ArenaBytes()),
		CoresetDim: a.CoresetDim, Folds: a.Folds, Ratio: a.Ratio, Images: a.Images,
	}
	perTile, groups, elems := backboneWork(ip, inH)
	rep.BackboneMACs = perTile * int64(tiles)
	for _, g := range groups {
		g.MACs *= int64(tiles)
		rep.Groups = append(rep.Groups, g)
	}
	rep.ElementsFrame = planElements{Requant: elems.Requant * int64(tiles), Add: elems.Add * int64(tiles),
		Pool: elems.Pool * int64(tiles), Other: elems.Other * int64(tiles)}
	rep.EmbedFlops = embedFlops(ip.Outputs(), gw, gh, emb.Dim(), a.Project) * int64(tiles)

	// The bank: every patch of every image is a candidate; the coreset
	// keeps bank.CoresetSize of them.
	dim := int64(rep.Dim)
	n := int64(a.Images) * int64(rep.Patches)
	rep.BankPatches = n
	k := int64(bank.CoresetSize(int(n), a.Ratio, a.Max))
	rep.BankVectors = int(k)
	rep.BankBytes = k * dim
	// bank build's cost line for a bank of this geometry and size: the same
	// function (patchcore.CostOf on the bank's metadata), so the two agree.
	meta := &bank.Meta{Model: bank.ModelRef{Taps: a.Taps}, Dim: rep.Dim, Count: rep.BankVectors}
	meta.Preprocess = bank.Preprocess{Width: inW, Height: inH, Tiles: geo.Tiles}
	meta.Embed.GridW, meta.Embed.GridH = gw, gh
	cost, err := patchcore.CostOf(m, meta)
	if err != nil {
		return nil, err
	}
	rep.Cost = cost.Line(rep.BankVectors, rep.Dim)
	rep.SearchMACs = cost.SearchMACs(rep.BankVectors, rep.Dim)

	pd := int64(a.CoresetDim)
	if pd >= dim {
		pd = 0 // no projection: the coreset works on the vectors themselves
	}
	// selection on n candidates: one projection (n·dim·pd) and k rounds
	// of distances from the newest centre to every candidate.
	selection := func(n int64) int64 {
		c := int64(bank.CoresetSize(int(n), a.Ratio, a.Max))
		d := dim
		proj := int64(0)
		if pd > 0 {
			d, proj = pd, n*dim*pd
		}
		return proj + c*n*d
	}
	rep.BuildMACs = planBuild{
		Backbone: int64(a.Images) * rep.BackboneMACs,
		Coreset:  selection(n),
		Radius:   n * k * dim,
	}
	if a.Folds >= 2 {
		folds := int64(min(a.Folds, a.Images))
		for f := range folds {
			// fold f holds images f, f+folds, ... (sizes differ by one at most)
			in := (int64(a.Images) - f + folds - 1) / folds
			rest := (int64(a.Images) - in) * int64(rep.Patches)
			kf := int64(bank.CoresetSize(int(rest), a.Ratio, a.Max))
			rep.BuildMACs.Folds += selection(rest) + in*int64(rep.Patches)*kf*dim
		}
	}
	rep.BuildPeak = buildPeak(a.Images, a.Folds, rep.Patches, tapBytes(ip.Outputs())*int64(tiles), dim, pd, rep.ModelBytes, rep.ArenaBytes,
		func(n int64) int64 { return int64(bank.CoresetSize(int(n), a.Ratio, a.Max)) })
	// Serving: the model file, the arena, the bank twice (its vectors and
	// the search's packed copy) with its norms, and a frame's embedding.
	rep.FrameMemory = rep.ModelBytes + rep.ArenaBytes + 2*k*dim + 4*k + int64(rep.Patches)*dim*5

	for _, b := range boards {
		rate := b.ghz * b.macsPerCycle * boardEfficiency * float64(b.cores) // GMAC/s
		frate := b.ghz * floatOpsPerCycle * boardEfficiency * float64(b.cores)
		rep.Boards = append(rep.Boards, estimate(b.name, b.cores, b.ghz*b.macsPerCycle*boardEfficiency, rate, rate, frate, rep))
	}
	if a.Calibrate > 0 {
		bb, search, note, err := calibrate(ip, perTile, rep, a)
		if err != nil {
			return nil, err
		}
		e := estimate(fmt.Sprintf("this machine (%s, %d threads, measured)", runtime.GOARCH, a.Threads), a.Threads, bb/float64(a.Threads), bb, search, measureFloat(a.Threads), rep)
		e.Measured = true
		rep.Boards = append(rep.Boards, e)
		rep.Calibration = note
	}
	return rep, nil
}

// buildRuntimeBytes is what a build's process holds besides the Go heap
// (the runtime, stacks, the binary, freed pages not yet returned): about
// 16 MiB in the pure-Go binary on bottle's builds. The station binary
// (GoCV) also maps about 80 MiB of OpenCV's shared libraries.
const buildRuntimeBytes = 16 << 20

// buildPeak estimates the peak memory of patchcore.Build (the streaming
// build: see its Memory note) of images frames of patches dim-d candidates,
// tap bytes of taps each, with a coreset projection to pd (0: none) and
// folds calibration folds (< 2: one hold-out). Live throughout: the int8
// candidates (n·dim) and the engine (the model file, its packed weights
// and tensors, about 3 times the file more, the arena, and the
// embedders' float frames, 16·patches·dim). In the first fold the taps
// are live too (images·tap), with the fold's selection (its projection,
// which goes to the fold's unused rows of the candidates if it fits
// there, or its gathered copy; 20 bytes a candidate of bookkeeping), then
// its bank's search (two copies of its vectors); the other folds and the
// bank's coreset run without the taps. The heap grows by the collector's
// 5% (patchcore's foldGCPercent) before each collection; then the
// runtime's share. Bottle's 209 images (163,856 candidates), measured
// against this: see TestBuildPeakMeasured.
func buildPeak(images, folds, patches int, tap, dim, pd, modelBytes, arenaBytes int64, coreset func(n int64) int64) int64 {
	n := int64(images) * int64(patches)
	q := n * dim
	engine := 4*modelBytes + arenaBytes + 16*int64(patches)*dim
	d := dim // the values a selection works on per candidate
	if pd > 0 {
		d = pd
	}
	// The bank's coreset, then its search (the coverage radius).
	k := coreset(n)
	live := q + engine + max(n*d+20*n, 3*k*dim)
	if folds >= 2 && images >= 2 {
		folds = min(folds, images)
		in := int64(images / folds) // the smallest fold: the most to select from
		rest := (int64(images) - in) * int64(patches)
		kf := coreset(rest)
		// The first fold (its own scale, taps live).
		sel := rest * d
		if pd > 0 {
			sel = max(0, rest*pd-in*int64(patches)*dim)
		}
		first := int64(images)*tap + q + engine + max(sel+20*rest, 2*kf*dim)
		// The other folds, the taps gone.
		other := q + engine + max(rest*d+20*rest, 3*kf*dim)
		live = max(live, first, other)
	} else {
		live += int64(images) * tap
	}
	return live + live/20 + buildRuntimeBytes
}

// tapBytes is the size of a frame's taps as the backbone hands them out
// (one tile's): one byte a value of an int8 map, four of a float one.
func tapBytes(taps []model.TensorInfo) int64 {
	var b int64
	for _, t := range taps {
		size := int64(4)
		if t.Type == tflite.Int8 || t.Type == tflite.Uint8 {
			size = 1
		}
		b += int64(t.Elements()) * size
	}
	return b
}

// estimate turns the report's work into times at the given rates (GMAC/s
// for the backbone and the search, Gflop/s for the embedding).
func estimate(name string, cores int, perCore, backbone, search, float float64, rep *planReport) boardEstimate {
	e := boardEstimate{Name: name, Cores: cores, GMACsCore: perCore}
	e.BackboneMS = float64(rep.BackboneMACs) / backbone / 1e6
	e.SearchMS = float64(rep.SearchMACs) / search / 1e6
	if float > 0 {
		e.EmbedMS = float64(rep.EmbedFlops) / float / 1e6
	}
	e.FrameMS = e.BackboneMS + e.EmbedMS + e.SearchMS
	b := rep.BuildMACs
	e.BuildS = float64(b.Backbone)/backbone/1e9 + float64(b.Coreset+b.Folds+b.Radius)/search/1e9 +
		float64(rep.Images)*e.EmbedMS/1e3
	return e
}

// backboneWork is the work of one backbone run: the MACs of every step
// the engine runs (model.OpMACs on the engine's model at this geometry),
// grouped by output resolution, and the element-wise outputs by kind.
func backboneWork(ip *engine.Interpreter, inputH int) (int64, []macGroup, planElements) {
	m := ip.Model()
	var total int64
	var groups []macGroup
	var el planElements
	for i := range ip.StepCount() {
		idx, op, shape := ip.StepInfo(i)
		macs := model.OpMACs(m, idx)
		total += macs
		elems := int64(1)
		for _, d := range shape {
			elems *= int64(d)
		}
		switch op {
		case "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED":
			el.Requant += elems
		case "ADD":
			el.Add += elems
		case "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN":
			el.Pool += elems
		default:
			el.Other += elems
		}
		if macs == 0 || len(shape) != 4 {
			continue
		}
		name := fmt.Sprintf("%dx%d", shape[2], shape[1])
		if shape[1] > 0 && inputH%shape[1] == 0 {
			name += fmt.Sprintf(" (1/%d)", inputH/shape[1])
		}
		if len(groups) == 0 || groups[len(groups)-1].Grid != name {
			groups = append(groups, macGroup{Grid: name})
		}
		g := &groups[len(groups)-1]
		g.Ops++
		g.MACs += macs
	}
	return total, groups, el
}

// embedFlops is the float work of embedding one run's taps: the 3x3
// average (two passes of two adds and a scale per value: 5), the bilinear
// upsampling of every tap coarser than the grid (Lerp2x2: 6 products and
// 3 sums per value) and the projection (a multiply and an add per input
// value and output dimension).
func embedFlops(taps []model.TensorInfo, gw, gh, dim, project int) int64 {
	var f, concat int64
	cells := int64(gw * gh)
	for _, t := range taps {
		h, w, c := int64(t.Shape[1]), int64(t.Shape[2]), int64(t.Shape[3])
		f += 5 * h * w * c
		if int(h) != gh || int(w) != gw {
			f += 9 * cells * c
		}
		concat += c
	}
	if project > 0 {
		f += 2 * cells * concat * int64(dim)
	}
	return f
}

// calibrate runs the backbone at the plan's geometry and an int8 search
// block of the plan's dimension on this machine for about a.Calibrate,
// and returns the measured rates (GMAC/s on a.Threads threads): the
// backbone's median over its runs, and the search's from single-thread
// GEMM-and-argmin blocks times a.Threads (the searcher splits the bank
// across workers with no shared state).
func calibrate(ip *engine.Interpreter, perTile int64, rep *planReport, a planArgs) (bb, search float64, note string, err error) {
	in := ip.Input()
	raw := make([]byte, in.Bytes())
	rng := rand.New(rand.NewPCG(7, 22))
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	if err := ip.SetInput(raw); err != nil {
		return 0, 0, "", err
	}
	if err := ip.Invoke(); err != nil { // warm-up
		return 0, 0, "", err
	}
	cpu0, wall0 := cpuSeconds(), time.Now()
	half := a.Calibrate / 2
	var times []float64
	for start := time.Now(); len(times) < 3 || (time.Since(start) < half && len(times) < 50); {
		t0 := time.Now()
		if err := ip.Invoke(); err != nil {
			return 0, 0, "", err
		}
		times = append(times, time.Since(t0).Seconds())
	}
	slices.Sort(times)
	bbMed := times[len(times)/2]
	bb = float64(perTile) / bbMed / 1e9

	// The search: a block of the bank (at most 16384 vectors) against one
	// frame's patches (at most 1024), the brute-force GEMM and argmin.
	dim := rep.Dim
	nb := min(rep.BankVectors, 16384)
	nb = max(nb-nb%qgemm.BlockCols, min(rep.BankVectors, qgemm.BlockCols))
	mq := min(rep.Patches, 1024)
	vecs, q := make([]int8, nb*dim), make([]int8, mq*dim)
	for i := range vecs {
		vecs[i] = int8(rng.Uint32())
	}
	for i := range q {
		q[i] = int8(rng.Uint32())
	}
	pk, err := qgemm.Pack(nb, dim, vecs, dim)
	if err != nil {
		return 0, 0, "", fmt.Errorf("plan: calibration: %w", err)
	}
	bn := make([]int32, nb)
	for j := range bn {
		bn[j] = qgemm.Dot(vecs[j*dim:(j+1)*dim], vecs[j*dim:(j+1)*dim])
	}
	const rows = 16
	c := make([]int32, rows*nb)
	var stimes []float64
	var sink int
	for start := time.Now(); len(stimes) < 2 || (time.Since(start) < half && len(stimes) < 20); {
		t0 := time.Now()
		for r0 := 0; r0 < mq; r0 += rows {
			m := min(rows, mq-r0)
			if err := pk.GemmCols(m, q[r0*dim:], dim, 0, nb, c, nb); err != nil {
				return 0, 0, "", fmt.Errorf("plan: calibration: %w", err)
			}
			for r := range m {
				_, j := qgemm.ArgminBiased(c[r*nb:(r+1)*nb], bn)
				sink += j
			}
		}
		stimes = append(stimes, time.Since(t0).Seconds())
	}
	_ = sink
	slices.Sort(stimes)
	search = float64(int64(mq)*int64(nb)*int64(dim)) / stimes[len(stimes)/2] / 1e9 * float64(a.Threads)
	_, kernel := qgemm.Kernels()
	note = fmt.Sprintf("backbone %.2f ms per run (median of %d, %d threads, %.1f GMAC/s); search block %d x %d x %d on 1 thread, %.1f GMAC/s (kernel %s), scaled to %d threads",
		bbMed*1e3, len(times), a.Threads, bb, mq, nb, dim, search/float64(a.Threads), kernel, a.Threads)
	// On a shared machine the run may get a fraction of its threads' time,
	// and measures that fraction: say how much it got.
	if wall := time.Since(wall0).Seconds(); wall > 0 {
		if c := cpuSeconds() - cpu0; c > 0 {
			note += fmt.Sprintf("; the run got %.0f%% of %d thread(s)' time (a busy machine measures slower)", 100*c/wall/float64(a.Threads), a.Threads)
		}
	}
	return bb, search, note, nil
}

// cpuSeconds is the process's user and system CPU time so far (0 where
// the OS does not say).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// measureFloat is this machine's float rate for the embedding, in Gflop/s
// on threads cores, from a short run of separate multiplies and adds (as
// the embedding's kernels round them) over a cache-sized buffer.
func measureFloat(threads int) float64 {
	const n = 1 << 14
	acc, x := make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = float32(i%7) * 0.25
	}
	var best float64
	for range 3 {
		t0 := time.Now()
		for range 200 {
			for i := range acc {
				acc[i] += float32(0.5 * x[i])
			}
		}
		if s := time.Since(t0).Seconds(); s > 0 {
			best = max(best, 2*n*200/s/1e9)
		}
	}
	return best * float64(threads)
}

func printPlan(out io.Writer, r *planReport) error {
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	g := func(x int64) string { return fmt.Sprintf("%.3f G", float64(x)/1e9) }
	fmt.Fprintf(out, "model      %s\n", r.Model)
	tiles := ""
	if tl := r.TileLayout; tl != nil {
		tiles = fmt.Sprintf(", %dx%d tiles over a %dx%d canvas", tl.Cols, tl.Rows, tl.CanvasW, tl.CanvasH)
	}
	fmt.Fprintf(out, "geometry   %dx%d model input (%s)%s; %s\n", r.InputW, r.InputH, r.Fit, tiles, r.Why)
	fmt.Fprintf(out, "patches    %d tile(s), taps %s -> grid %dx%d, %d-d patches, %d per frame\n",
		r.Tiles, strings.Join(r.Taps, ","), r.GridW, r.GridH, r.Dim, r.Patches)
	fmt.Fprintf(out, "bank       %d images x %d patches = %d candidates; coreset %g -> %d vectors x %d = %s int8\n",
		r.Images, r.Patches, r.BankPatches, r.Ratio, r.BankVectors, r.Dim, mib(r.BankBytes))
	b := r.BuildMACs
	fmt.Fprintf(out, "build      %s MAC: backbone %s, coreset %s (projection to %d), folds %s (%d), coverage radius %s; peak memory about %s\n",
		g(b.total()), g(b.Backbone), g(b.Coreset), r.CoresetDim, g(b.Folds), r.Folds, g(b.Radius), mib(r.BuildPeak))
	fmt.Fprintf(out, "cost       %s\n", r.Cost)
	fmt.Fprintf(out, "frame      backbone %s MAC, embedding %s flop, search %s MAC (brute force; the clustered search does less: linesight bench measures it)\n",
		g(r.BackboneMACs), g(r.EmbedFlops), g(r.SearchMACs))
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  output grid\tops\tMACs\t")
	for _, gr := range r.Groups {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t\n", gr.Grid, gr.Ops, gr.MACs)
	}
	tw.Flush()
	e := r.ElementsFrame
	fmt.Fprintf(out, "elements   requantized %d, added %d, pooled %d, other %d per frame\n", e.Requant, e.Add, e.Pool, e.Other)
	fmt.Fprintf(out, "memory     serving about %s (model %s, arena %s, bank and its packed copy %s)\n",
		mib(r.FrameMemory), mib(r.ModelBytes), mib(r.ArenaBytes), mib(2*r.BankBytes))
	fmt.Fprintln(out, "latency    (boards: estimated from documented issue rates at 50% efficiency; see the README)")
	tw = tabwriter.NewWriter(out, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  \tGMAC/s/core\tbackbone ms\tembed ms\tsearch ms\tframe ms\tbuild s\t")
	for _, be := range r.Boards {
		fmt.Fprintf(tw, "  %s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t\n", be.Name, be.GMACsCore, be.BackboneMS, be.EmbedMS, be.SearchMS, be.FrameMS, be.BuildS)
	}
	tw.Flush()
	if r.Calibration != "" {
		fmt.Fprintf(out, "measured   %s\n", r.Calibration)
	}
	return nil
}
