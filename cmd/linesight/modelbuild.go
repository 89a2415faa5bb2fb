package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/linesight/linesight/internal/progress"
	"github.com/linesight/linesight/model/resnet"
	"github.com/linesight/linesight/model/tflite"
	"github.com/linesight/linesight/model/torchckpt"
	"github.com/linesight/linesight/patchcore"
)

func init() {
	commands = append(commands, command{"model build", "build an int8 ResNet backbone .tflite from a torchvision checkpoint, calibrated on your images", modelBuild})
}

func modelBuild(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("model build", flag.ContinueOnError)
	fs.SetOutput(out)
	from := fs.String("from", "", "torchvision checkpoint (torch.save: zip or legacy; a state_dict or a dict holding one)")
	calib := fs.String("calib", "", "folder of calibration images (good parts from the line)")
	outPath := fs.String("out", "", "output .tflite file (required)")
	var o resnet.Options
	fs.StringVar(&o.Arch, "arch", "resnet18", "architecture: resnet18 or resnet34")
	input := fs.String("input", "224", "input size in pixels: N (square) or WxH (e.g. 224x560 for elongated parts)")
	taps := fs.String("taps", "layer2,layer3", "layer outputs to hand out, comma-separated")
	fs.IntVar(&o.CalibCount, "calib-count", 100, "use at most this many calibration images (evenly spread)")
	fs.StringVar(&o.Method, "calib-method", "minmax", "activation ranges: minmax or percentile")
	fs.Float64Var(&o.Percentile, "percentile", 99.99, "percentile for --calib-method percentile")
	fs.BoolVar(&o.Float, "float", false, "write the float32 graph (reference, debugging)")
	random := fs.Bool("random-init", false, "no checkpoint: seeded He-initialised weights (NOT ImageNet features; demo and tests)")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed for --random-init")
	fs.IntVar(&o.Threads, "threads", runtime.NumCPU(), "threads")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *outPath == "" || (*from == "") == !*random {
		return errors.New("usage: linesight model build (--from CHECKPOINT | --random-init [--seed S]) --calib DIR --out FILE [--arch resnet18] [--input 224] [--taps layer2,layer3] [--calib-count N] [--calib-method minmax|percentile] [--float]")
	}
	o.Taps = strings.Split(*taps, ",")
	if w, h, ok := strings.Cut(strings.ToLower(*input), "x"); ok {
		var err1, err2 error
		o.Input, err1 = strconv.Atoi(w)
		o.InputH, err2 = strconv.Atoi(h)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("model build: --input %q: want N or WxH", *input)
		}
	} else if n, err := strconv.Atoi(w); err == nil {
		o.Input = n
	} else {
		return fmt.Errorf("model build: --input %q: want N or WxH", *input)
	}
	start := time.Now()
	var sd torchckpt.StateDict
	if *random {
		arch, ok := resnet.Archs[o.Arch]
		if !ok {
			return fmt.Errorf("unknown --arch %q (resnet18, resnet34)", o.Arch)
		}
		sd = resnet.RandomStateDict(arch, o.Seed)
		o.Source, o.Random = "random-init", true
		fmt.Fprintf(out, "WARNING: --random-init: seeded random weights (seed %d), NOT ImageNet features. For demos and tests only.\n", o.Seed)
	} else {
		raw, err := os.ReadFile(*from)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		o.Source, o.SourceSHA256 = *from, hex.EncodeToString(sum[:])
		if sd, err = torchckpt.Load(*from); err != nil {
			return err
		}
	}
	if !o.Float {
		if *calib == "" {
			return errors.New("--calib DIR is required for an int8 model (or use --float)")
		}
		files, err := patchcore.ImageFiles(*calib)
		if err != nil {
			return err
		}
		o.Calib = files
		bar := progress.New(os.Stderr, "calibrate")
		o.Progress = bar.Update
	}
	m, rep, err := resnet.Build(sd, o)
	if err != nil {
		return err
	}
	if err := tflite.WriteFile(*outPath, m); err != nil {
		return err
	}
	fi, err := os.Stat(*outPath)
	if err != nil {
		return err
	}
	kind := "int8"
	if o.Float {
		kind = "float32"
	}
	fmt.Fprintf(out, "wrote %s: %s %s to %s, %dx%d uint8 RGB input, %.1f MiB\n", *outPath, o.Arch, kind, o.Taps[len(o.Taps)-1], o.Input, cmp.Or(o.InputH, o.Input), float64(fi.Size())/(1<<20))
	if !o.Float {
		fmt.Fprintf(out, "  calibrated on %d images (%s) in %.1fs\n", rep.Images, o.Method, rep.CalibTime.Seconds())
		names := make([]string, 0, len(o.Taps))
		names = append(names, o.Taps...)
		sort.Strings(names)
		for _, t := range names {
			r := rep.Ranges[t]
			fmt.Fprintf(out, "  output %-8s range [%.4g, %.4g]\n", t, r.Min, r.Max)
		}
	}
	fmt.Fprintf(out, "  time %.1fs\n", time.Since(start).Seconds())
	if *random {
		fmt.Fprintln(out, "  (random weights: NOT ImageNet features)")
	}
	return nil
}
