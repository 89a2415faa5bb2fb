// Package runner runs a model over image files for `linesight model run`:
// top-K classes as text or JSON, and tensor dumps as NumPy files.
package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/linesight/linesight/internal/npy"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/tflite"
	"github.com/linesight/linesight/model/tflitec"
)

// Config is what `linesight model run` asks for.
type Config struct {
	Model   string
	Images  []string
	TopK    int
	JSON    bool
	Taps    []string
	DumpDir string
	Threads int
	Backend string // "go" (default) or "tflite"
	Crop    float64
}

// Result is the JSON line printed per image.
type Result struct {
	Image string        `json:"image"`
	Top   []model.Class `json:"top"`
}

// Open loads a backbone of the named kind.
func Open(m *tflite.Model, backend string, taps []string, threads int) (model.Backbone, error) {
	switch backend {
	case "", "go":
		return engine.NewInterpreter(m, engine.Options{Threads: threads, Taps: taps})
	case "tflite":
		return tflitec.New(m, taps, threads)
	}
	return nil, fmt.Errorf("unknown backend %q (go or tflite)", backend)
}

// Run classifies each image and writes results to w.
func Run(cfg Config, w io.Writer) error {
	m, err := tflite.ReadFile(cfg.Model)
	if err != nil {
		return err
	}
	labels, err := model.LabelsBeside(cfg.Model)
	if err != nil {
		return err
	}
	// Taps plus the model's outputs, so the classifier output is always there.
	var names []string
	names = append(names, cfg.Taps...)
	for _, o := range m.Subgraphs[0].Outputs {
		names = append(names, m.Subgraphs[0].Tensors[o].Name)
	}
	names = dedupe(names)
	bb, err := Open(m, cfg.Backend, names, cfg.Threads)
	if err != nil {
		return err
	}
	defer bb.Close()
	feeder, err := model.NewFeeder(bb.Input(), cfg.Crop)
	if err != nil {
		return err
	}
	outs := bb.Outputs()
	bufs := make([][]byte, len(outs))
	for i, o := range outs {
		bufs[i] = make([]byte, o.Bytes())
	}
	if cfg.DumpDir != "" {
		if err := os.MkdirAll(cfg.DumpDir, 0o755); err != nil {
			return err
		}
	}
	k := cfg.TopK
	if k <= 0 {
		k = 5
	}
	for _, path := range cfg.Images {
		img, err := rgb.ReadFile(path)
		if err != nil {
			return err
		}
		raw, err := feeder.Prepare(img)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := bb.SetInput(raw); err != nil {
			return err
		}
		if err := bb.Invoke(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for i := range outs {
			if err := bb.ReadOutput(i, bufs[i]); err != nil {
				return err
			}
		}
		if cfg.DumpDir != "" {
			base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
			if err := Dump(cfg.DumpDir, base, bb.Input(), raw); err != nil {
				return err
			}
			for i, o := range outs {
				if err := Dump(cfg.DumpDir, base, o, bufs[i]); err != nil {
					return err
				}
			}
		}
		// The classifier output is the model's first output, always among outs.
		cls := 0
		for i, o := range outs {
			if o.Index == int(m.Subgraphs[0].Outputs[0]) {
				cls = i
			}
		}
		top, err := model.TopK(outs[cls], bufs[cls], k, labels)
		if err != nil {
			return err
		}
		if cfg.JSON {
			b, _ := json.Marshal(Result{Image: path, Top: top})
			fmt.Fprintf(w, "%s\n", b)
			continue
		}
		fmt.Fprintf(w, "%s\n", path)
		for _, c := range top {
			fmt.Fprintf(w, "  %4d  %-30s %.6f\n", c.Index, c.Label, c.Score)
		}
	}
	return nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9]`)

// FileBase is the dump file name stem of a tensor of an image.
func FileBase(imageBase, tensor string) string {
	return imageBase + "." + unsafeChars.ReplaceAllString(tensor, "_")
}

// Dump writes a tensor as <image>.<tensor>.npy plus a .json with its shape,
// type, scale and zero point.
func Dump(dir, imageBase string, info model.TensorInfo, raw []byte) error {
	descr := map[tflite.TensorType]string{tflite.Uint8: "|u1", tflite.Int8: "|i1", tflite.Float32: "<f4",
		tflite.Int32: "<i4", tflite.Int64: "<i8"}[info.Type]
	if descr == "" {
		return fmt.Errorf("runner: cannot dump %v tensor %q", info.Type, info.Name)
	}
	stem := filepath.Join(dir, FileBase(imageBase, info.Name))
	if err := npy.WriteFile(stem+".npy", descr, info.Shape, raw); err != nil {
		return err
	}
	meta := map[string]any{"name": info.Name, "shape": info.Shape, "type": info.Type.String(),
		"scale": info.Scale, "zero_point": info.ZeroPoint}
	if len(info.Scale) > 1 {
		meta["quantized_dimension"] = info.QuantDim
	}
	b, _ := json.MarshalIndent(meta, "", "  ")
	return os.WriteFile(stem+".json", append(b, '\n'), 0o644)
}
