package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/bench"
	"github.com/linesight/linesight/internal/qgemm"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/sampleline"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/patchcore"
)

func init() {
	commands = append(commands,
		command{"bench", "measure this machine: int8 peak, then every stage of a frame (median, p99, GMAC/s)", benchCmd})
}

func benchCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	modelPath := fs.String("model", "", "backbone .tflite (default: a random-weight ResNet18 built on the spot)")
	db := fs.String("db", "", "bank database: search its active bank (default: see --bank)")
	threads := fs.Int("threads", runtime.NumCPU(), "threads for backbone and search")
	frames := fs.Int("frames", 50, "frames to time (after a warm-up)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	image := fs.String("image", "", "encoded frame to time (JPEG, PNG or BMP; default: a held-out good image of the bank's, or with --bank random a synthetic 1280x720 JPEG)")
	ops := fs.Bool("ops", false, "also time every backbone operator (median per operator)")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the timed frames to `FILE` (go tool pprof)")
	bankKind := fs.String("bank", sampleline.KindWasher, "without --db or --images: the bank to search, built as bank build does from the sample line's good parts of this kind (washer, strip, small), or random (iid random vectors sized like a bank: quick, but the clustered search can skip nothing on them)")
	images := fs.String("images", "", "folder of good images: build the bank from them as bank build does (instead of --bank)")
	nImages := fs.Int("bank-images", 200, "with --bank: good parts to build the bank from (random: the images the bank's size stands for)")
	tapsFlag := fs.String("taps", "", "without --db: feature-map tensors, comma-separated, as bank build's (default: the model's default taps)")
	var g patchcore.GeometryFlags
	fs.StringVar(&g.Input, "input", "", "model input WxH or short side N, as bank build's (default: chosen from the good images; with --bank random, the model's own)")
	fs.StringVar(&g.Resize, "resize", "", "squash or keep-aspect, as bank build's")
	fs.StringVar(&g.Tiles, "tiles", "", "the canvas WxH to cut into tiles of the model input, or off, as bank build's")
	frameSize := fs.String("frame", "", "with --bank random: the frame size WxH the geometry is chosen for (bank build's rule) and the synthetic frame is drawn at (default 1280x720, geometry the model's own)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *frames < 1 || *threads < 1 {
		return fmt.Errorf("bench: --frames and --threads must be at least 1")
	}
	if *nImages < 2 || *nImages > 10000 {
		return fmt.Errorf("bench: --bank-images %d outside 2..10000", *nImages)
	}
	var (
		d              *patchcore.Detector
		name, kind     string
		frame          []byte
		frameName      string
		err            error
		bankGeometryOK = *db == ""
	)
	if !bankGeometryOK && (g != patchcore.GeometryFlags{} || *frameSize != "" || *tapsFlag != "" || *images != "") {
		return fmt.Errorf("bench: --input, --resize, --tiles, --frame, --taps and --images shape a bank bench builds; --db's bank has its own")
	}
	switch {
	case *db != "":
		d, err = openDetector(*db, 0, *modelPath, *threads)
		if err != nil {
			return err
		}
		name, kind = *db, bench.KindStore+" (the active bank of "+*db+")"
	default:
		var mf *model.File
		if *modelPath != "" {
			if mf, err = model.Load(*modelPath); err != nil {
				return err
			}
			name = *modelPath
		} else {
			if !*asJSON {
				fmt.Fprintln(out, "building a random-weight ResNet18 (layer2+layer3, int8) for the benchmark...")
			}
			if mf, err = bench.RandomResNet18(*threads); err != nil {
				return err
			}
			name = "resnet18 (random weights, int8, to layer3)"
		}
		b, k, good, goodName, err := benchBank(mf, splitTaps(*tapsFlag), *images, *bankKind, *nImages, *frameSize, g, *threads, *asJSON, out)
		if err != nil {
			return err
		}
		kind = k
		if *image == "" {
			frame, frameName = good, goodName
		}
		if *image == "" && *bankKind == bench.KindRandom && *images == "" && *frameSize != "" {
			w, h, _ := patchcore.ParseSize(*frameSize) // checked by benchBank
			frame, frameName = bench.FrameSized(w, h), fmt.Sprintf("%dx%d JPEG (synthetic)", w, h)
		}
		if d, err = patchcore.Open(b, mf, patchcore.Options{Threads: *threads}); err != nil {
			return err
		}
	}
	defer d.Close()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if file := *image; file != "" {
		if frame, err = os.ReadFile(file); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		img, err := rgb.Decode(bytes.NewReader(frame))
		if err != nil {
			return fmt.Errorf("bench: %s: %w", file, err)
		}
		frameName = fmt.Sprintf("%s (%dx%d)", filepath.Base(file), img.W, img.H)
	}
	rep, err := bench.Run(d, name, kind, *threads, *frames, frame, frameName)
	if err != nil {
		return err
	}
	if *ops {
		if err := bench.Ops(d, rep, *frames); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		return enc.Encode(rep)
	}
	avail, _ := qgemm.Kernels()
	fmt.Fprintf(out, "model      %s\n", rep.Model)
	fmt.Fprintf(out, "bank       %s: %d vectors x %d dims, %d patches searched per frame\n", rep.Bank, rep.BankVectors, rep.Dim, rep.Patches)
	printBenchGeometry(out, d, rep)
	fmt.Fprintf(out, "machine    %s, %d threads; int8 kernels here: %v\n", rep.GOARCH, rep.Threads, avail)
	fmt.Fprintf(out, "peak       %.1f GMAC/s per core (%s; element-wise ops: %s)\n", rep.PeakGMACsPerCore, rep.Kernels["backbone"], rep.Kernels["elementwise"])
	fmt.Fprintf(out, "frames     %d (%s), median and p99 per stage:\n", rep.Frames, rep.Frame)
	for _, s := range bench.Stages {
		st := rep.Stages[s]
		line := fmt.Sprintf("  %-10s %8.2f ms  p99 %8.2f ms", s, st.MedianMS, st.P99MS)
		if st.GMACs > 0 {
			line += fmt.Sprintf("  %7.1f GMAC/s  %3.0f%% of %d x peak", st.GMACs, st.PctPeak, rep.Threads)
		}
		if k := rep.Kernels[s]; k != "" {
			line += "  [" + k + "]"
		}
		fmt.Fprintln(out, line)
	}
	// The backbone's passes back to back, as the speed peers time theirs.
	if st := rep.BackboneAlone; st.MedianMS > 0 {
		fmt.Fprintf(out, "  %-10s %8.2f ms  p99 %8.2f ms  %7.1f GMAC/s  %3.0f%% of %d x peak  (the backbone's passes back to back, nothing between: as the peers are timed)\n",
			"bb alone", st.MedianMS, st.P99MS, st.GMACs, st.PctPeak, rep.Threads)
	}
	if len(rep.Ops) > 0 {
		fmt.Fprintln(out, "backbone operators, median:")
		var sum float64
		for _, o := range rep.Ops {
			sum += o.MedianMS
		}
		for _, o := range rep.Ops {
			line := fmt.Sprintf("  %4d %-18s %-18v %7.3f ms %5.1f%%", o.Index, o.Op, o.Shape, o.MedianMS, 100*o.MedianMS/sum)
			if o.GMACs > 0 {
				line += fmt.Sprintf("  %6.1f GMAC/s", o.GMACs)
			}
			fmt.Fprintln(out, line)
		}
	}
	fmt.Fprintf(out, "allocs     %.1f per frame from preprocess to map (decode: %.1f, Go's %s)\n", rep.AllocsPerFrame, rep.DecodeAllocs, rep.Kernels["decode"])
	return nil
}

// benchBank makes the bank bench searches without --db: built from the
// good images of dir, or of the sample line of kind, at the geometry bank
// build would choose for them (and the flags), or iid random vectors
// sized like a bank of images images at the geometry chosen for frames of
// frameSize. It returns the bank, what kind it is, and a good frame the
// bank has not learnt, encoded, with its name (none for a random bank).
func benchBank(mf *model.File, taps []string, dir, kind string, images int, frameSize string, g patchcore.GeometryFlags, threads int, quiet bool, out io.Writer) (b *bank.Bank, what string, good []byte, goodName string, err error) {
	sw, sh, err := patchcore.StoredInput(mf.Model)
	if err != nil {
		return nil, "", nil, "", err
	}
	if dir == "" && kind == bench.KindRandom {
		var sizes [][2]int
		if frameSize != "" {
			w, h, err := patchcore.ParseSize(frameSize)
			if err != nil {
				return nil, "", nil, "", fmt.Errorf("bench: --frame: %w", err)
			}
			sizes = [][2]int{{w, h}}
		}
		c, err := patchcore.ChooseGeometry(sw, sh, sizes, 0, g)
		if err != nil {
			return nil, "", nil, "", fmt.Errorf("bench: %w", err)
		}
		b, err = bench.SyntheticBankAt(mf, taps, images, c)
		if err != nil {
			return nil, "", nil, "", err
		}
		return b, fmt.Sprintf("%s (iid random vectors sized like %d images at 10%%: brute force's cost, but no structure for the clustered search to use)", bench.KindRandom, images), nil, "", nil
	}
	if frameSize != "" {
		return nil, "", nil, "", fmt.Errorf("bench: --frame is for --bank random; a built bank's frames are its images")
	}
	var files []string
	source := dir
	if dir != "" {
		if files, err = patchcore.ImageFiles(dir); err != nil {
			return nil, "", nil, "", err
		}
	} else {
		if _, err := sampleline.DefectsOf(kind); err != nil {
			return nil, "", nil, "", fmt.Errorf("bench: --bank %q: want washer, strip, small or random", kind)
		}
		tmp, err := os.MkdirTemp("", "linesight-bench-line")
		if err != nil {
			return nil, "", nil, "", err
		}
		defer os.RemoveAll(tmp)
		if !quiet {
			fmt.Fprintf(out, "drawing %d good %s parts of the sample line and building a bank from them...\n", images, kind)
		}
		if files, _, err = bench.SampleLine(tmp, kind, images); err != nil {
			return nil, "", nil, "", err
		}
		source = fmt.Sprintf("the sample line's %s (%d good parts)", kind, images)
	}
	sizes := make([][2]int, len(files))
	for i, p := range files {
		w, h, err := rgb.ReadSize(p)
		if err != nil {
			return nil, "", nil, "", err
		}
		sizes[i] = [2]int{w, h}
	}
	c, err := patchcore.ChooseGeometry(sw, sh, sizes, 0, g)
	if err != nil {
		return nil, "", nil, "", fmt.Errorf("bench: %w", err)
	}
	ctx, cancel := signalContext()
	defer cancel()
	var holdout []string
	b, holdout, err = bench.BuiltBank(ctx, mf, taps, files, c, threads)
	if err != nil {
		return nil, "", nil, "", err
	}
	good, err = os.ReadFile(holdout[0]) // the temporary folder goes when benchBank returns
	if err != nil {
		return nil, "", nil, "", err
	}
	img, err := rgb.Decode(bytes.NewReader(good))
	if err != nil {
		return nil, "", nil, "", fmt.Errorf("bench: %s: %w", holdout[0], err)
	}
	goodName = fmt.Sprintf("%s (%dx%d), a good part the bank has not learnt", filepath.Base(holdout[0]), img.W, img.H)
	return b, fmt.Sprintf("%s (from %s through the backbone, as bank build makes it)", bench.KindBuilt, source), good, goodName, nil
}

// splitTaps reads a --taps list ("": nil, the default taps).
func splitTaps(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// printBenchGeometry prints the bank's model input, the per-frame cost
// line bank build prints for it, and the search's measured work beside
// brute force's.
func printBenchGeometry(out io.Writer, d *patchcore.Detector, rep *bench.Report) {
	pp := &d.Bank().Meta.Preprocess
	fit := cmp.Or(pp.Fit, patchcore.FitSquash)
	tiles := ""
	if tl := pp.Tiles; tl != nil {
		tiles = fmt.Sprintf(", %dx%d tiles over a %dx%d canvas", tl.Cols, tl.Rows, tl.CanvasW, tl.CanvasH)
	}
	fmt.Fprintf(out, "geometry   %dx%d model input (%s)%s; %s\n", pp.Width, pp.Height, fit, tiles, pp.Why)
	if rep.Cost != "" {
		fmt.Fprintf(out, "cost       %s\n", rep.Cost)
	}
	ratio := 0.0
	if rep.SearchMACs > 0 {
		ratio = float64(rep.SearchMACsBrute) / float64(rep.SearchMACs)
	}
	fmt.Fprintf(out, "search     %.3f GMAC per frame measured (median of the timed frames), %.3f GMAC by brute force: brute/measured %.2fx\n",
		float64(rep.SearchMACs)/1e9, float64(rep.SearchMACsBrute)/1e9, ratio)
}
