package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/bench"
	"github.com/linesight/linesight/internal/qgemm"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
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
	db := fs.String("db", "", "bank database: its active bank (default: a synthetic bank sized like 200 images at 10%)")
	threads := fs.Int("threads", runtime.NumCPU(), "threads for backbone and search")
	frames := fs.Int("frames", 50, "frames to time (after a warm-up)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	image := fs.String("image", "", "encoded frame to time (JPEG, PNG or BMP; default: a synthetic 1280x720 JPEG)")
	ops := fs.Bool("ops", false, "also time every backbone operator (median per operator)")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the timed frames to `FILE` (go tool pprof)")
	input := fs.String("input", "", "without --db: the synthetic bank's model input WxH (e.g. 224x560), to see what a geometry costs (default: the model's own)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *frames < 1 || *threads < 1 {
		return fmt.Errorf("bench: --frames and --threads must be at least 1")
	}
	var (
		d    *patchcore.Detector
		name string
		err  error
	)
	switch {
	case *db != "":
		d, err = openDetector(*db, 0, *modelPath, *threads)
		name = *db
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
		b, err := bench.SyntheticBank(mf, 200)
		if err != nil {
			return err
		}
		if *input != "" {
			if b, err = syntheticAt(b, mf, *input, 200); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
		}
		if d, err = patchcore.Open(b, mf, patchcore.Options{Threads: *threads}); err != nil {
			return err
		}
		name += ", synthetic bank"
	}
	if err != nil {
		return err
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
	var frame []byte
	frameName := ""
	if *image != "" {
		if frame, err = os.ReadFile(*image); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		img, err := rgb.Decode(bytes.NewReader(frame))
		if err != nil {
			return fmt.Errorf("bench: %s: %w", *image, err)
		}
		frameName = fmt.Sprintf("%s (%dx%d)", filepath.Base(*image), img.W, img.H)
	}
	rep, err := bench.Run(d, name, *threads, *frames, frame, frameName)
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
	fmt.Fprintf(out, "bank       %d vectors x %d dims, %d patches per frame\n", rep.BankVectors, rep.Dim, rep.Patches)
	if err := benchGeometry(out, d, rep); err != nil {
		return err
	}
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

// syntheticAt re-sizes a synthetic bank to the model input size ("WxH"):
// the grid the taps give there, and as many vectors as the same number of
// images would leave at 10% (the stored vectors repeated).
func syntheticAt(b *bank.Bank, mf *model.File, size string, images int) (*bank.Bank, error) {
	w, h, err := patchcore.ParseSize(size)
	if err != nil {
		return nil, err
	}
	m := b.Meta
	rm, err := model.AtInputSize(mf.Model, m.Model.Taps, h, w)
	if err != nil {
		return nil, err
	}
	ti, err := model.FindTensor(rm, m.Model.Taps[0])
	if err != nil {
		return nil, err
	}
	sh := model.InfoOf(rm, ti).Shape
	m.Preprocess.Width, m.Preprocess.Height = w, h
	m.Preprocess.Fit, m.Preprocess.Why = patchcore.FitKeepAspect, "bench --input "+size
	m.Embed.GridW, m.Embed.GridH = sh[2], sh[1]
	n := max(1, images*sh[1]*sh[2]/10)
	vecs := make([]int8, n*m.Dim)
	for i := range vecs {
		vecs[i] = b.Vectors[i%len(b.Vectors)]
	}
	m.Count, m.SHA256 = n, ""
	m.Coreset.Patches = images * sh[1] * sh[2]
	return bank.New(m, vecs)
}

// benchGeometry prints the bank's model input and what a frame costs
// there: the backbone's multiply-accumulates up to the taps (operators
// after them do not run) and the search's.
func benchGeometry(out io.Writer, d *patchcore.Detector, rep *bench.Report) error {
	meta := &d.Bank().Meta
	fit := meta.Preprocess.Fit
	if fit == "" {
		fit = patchcore.FitSquash
	}
	macs := "?"
	if mb, ok := d.Backbone().(interface{ Model() *tflite.Model }); ok {
		c, err := patchcore.CostOf(mb.Model(), meta)
		if err != nil {
			return err
		}
		macs = fmt.Sprintf("%.2f", float64(c.MACs)/1e9)
	}
	fmt.Fprintf(out, "geometry   %dx%d model input (%s): per frame %s GMAC backbone to the taps, %d patches x %d vectors x %d dims = %.2f GMAC search\n",
		meta.Preprocess.Width, meta.Preprocess.Height, fit, macs, rep.Patches, rep.BankVectors, rep.Dim, float64(rep.SearchMACs)/1e9)
	return nil
}
