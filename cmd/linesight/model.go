package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/runner"
	"github.com/linesight/linesight/model/tflite"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// parseInterleaved parses flags that may come before or after positional
// arguments (`model run FILE IMAGE --top 3`).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func modelInfo(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("model info", flag.ContinueOnError)
	fs.SetOutput(out)
	tensors := fs.Bool("tensors", false, "list every tensor (index, name, shape, type, quantization, producer)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: linesight model info FILE [--tensors]")
	}
	m, err := tflite.ReadFile(pos[0])
	if err != nil {
		return err
	}
	return model.Describe(out, m, *tensors, engine.SupportedOps())
}

func modelRun(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("model run", flag.ContinueOnError)
	fs.SetOutput(out)
	var cfg runner.Config
	var taps stringList
	fs.IntVar(&cfg.TopK, "top", 5, "number of classes to print")
	fs.BoolVar(&cfg.JSON, "json", false, "print one JSON object per image")
	fs.Var(&taps, "tap", "tensor to hand out and dump (repeatable)")
	fs.StringVar(&cfg.DumpDir, "dump", "", "write input, taps and outputs as .npy (+ .json) into this folder")
	fs.IntVar(&cfg.Threads, "threads", 0, "threads (0 = all cores)")
	fs.StringVar(&cfg.Backend, "backend", "go", "go (pure-Go engine) or tflite (TensorFlow Lite C library)")
	fs.Float64Var(&cfg.Crop, "crop", 0, "centre-crop fraction of the shorter side before resizing (0 = none)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return fmt.Errorf("usage: linesight model run FILE IMAGE... [--top K] [--json] [--tap NAME]... [--dump DIR] [--threads N] [--backend go|tflite]")
	}
	cfg.Model, cfg.Images, cfg.Taps = pos[0], pos[1:], taps
	return runner.Run(cfg, out)
}
