package resnet

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/tflite"
	"github.com/linesight/linesight/model/torchckpt"
)

// Options configures Build. Zero values take the defaults noted.
type Options struct {
	Arch  string // "resnet18" (default) or "resnet34"
	Input int    // input side in pixels (the width when InputH is set), default 224
	// InputH, when set, makes the input Input wide and InputH high (a
	// non-square input for elongated parts); 0 is square.
	InputH int
	Taps   []string // layer outputs to hand out, default layer2, layer3
	// Calibration images (paths), preprocessed exactly as at inference (the
	// whole frame resized to the input). Needed unless Float.
	Calib      []string
	CalibCount int     // at most this many (evenly spread), default 100
	Method     string  // "minmax" (default) or "percentile"
	Percentile float64 // for "percentile": clip at this percentile, default 99.99
	Float      bool    // write the float32 graph instead
	Threads    int
	Progress   func(done, total int)
	// Provenance, recorded in the file.
	Source       string // checkpoint path, or "random-init"
	SourceSHA256 string
	Random       bool
	Seed         uint64
}

func (o *Options) defaults() {
	if o.Arch == "" {
		o.Arch = "resnet18"
	}
	if o.Input == 0 {
		o.Input = 224
	}
	if o.InputH == 0 {
		o.InputH = o.Input
	}
	if len(o.Taps) == 0 {
		o.Taps = []string{"layer2", "layer3"}
	}
	if o.CalibCount == 0 {
		o.CalibCount = 100
	}
	if o.Method == "" {
		o.Method = "minmax"
	}
	if o.Percentile == 0 {
		o.Percentile = 99.99
	}
	o.Threads = max(o.Threads, 1)
}

// Report tells what Build did.
type Report struct {
	Images    int              // calibration images used
	Ranges    map[string]Range // calibrated range of every activation
	CalibTime time.Duration
}

// Provenance is the JSON stored in the model's "linesight.build" metadata.
type Provenance struct {
	Builder       string    `json:"builder"`
	Arch          string    `json:"arch"`
	Input         int       `json:"input"`
	InputH        int       `json:"input_h,omitempty"` // height when it is not Input
	Taps          []string  `json:"taps"`
	Source        string    `json:"source"`
	SourceSHA256  string    `json:"source_sha256,omitempty"`
	RandomWeights bool      `json:"random_weights"`
	Seed          *uint64   `json:"seed,omitempty"`
	Type          string    `json:"type"` // "int8" or "float32"
	Calibration   *CalibRec `json:"calibration,omitempty"`
	BNEps         float64   `json:"bn_eps"`
	Mean          []float64 `json:"mean"`
	Std           []float64 `json:"std"`
}

// CalibRec records how activation ranges were calibrated.
type CalibRec struct {
	Method     string  `json:"method"`
	Percentile float64 `json:"percentile,omitempty"`
	Images     int     `json:"images"`
}

// MetadataName is the metadata entry holding the Provenance.
const MetadataName = "linesight.build"

// Build makes the backbone model from a state dict.
func Build(sd torchckpt.StateDict, opts Options) (*tflite.Model, *Report, error) {
	opts.defaults()
	arch, ok := Archs[opts.Arch]
	if !ok {
		return nil, nil, fmt.Errorf("resnet: unknown architecture %q (resnet18, resnet34)", opts.Arch)
	}
	if opts.Input < 32 || opts.Input > 1024 || opts.InputH < 32 || opts.InputH > 1024 {
		return nil, nil, fmt.Errorf("resnet: input size %dx%d outside 32..1024", opts.Input, opts.InputH)
	}
	depth := 0
	for _, t := range opts.Taps {
		l, err := strconv.Atoi(strings.TrimPrefix(t, "layer"))
		if !strings.HasPrefix(t, "layer") || err != nil || l < 1 || l > 4 {
			return nil, nil, fmt.Errorf("resnet: tap %q: taps are layer1..layer4", t)
		}
		depth = max(depth, l)
	}
	if opts.Method != "minmax" && opts.Method != "percentile" {
		return nil, nil, fmt.Errorf("resnet: calibration method %q (minmax or percentile)", opts.Method)
	}
	if !(opts.Percentile > 50 && opts.Percentile <= 100) {
		return nil, nil, fmt.Errorf("resnet: percentile %v outside (50, 100]", opts.Percentile)
	}
	net, err := FromStateDict(sd, arch, depth)
	if err != nil {
		return nil, nil, err
	}
	prov := Provenance{Builder: "linesight model build", Arch: arch.Name, Input: opts.Input, Taps: opts.Taps,
		Source: opts.Source, SourceSHA256: opts.SourceSHA256, RandomWeights: opts.Random, Type: "float32",
		BNEps: BNEps, Mean: Mean[:], Std: Std[:]}
	if opts.InputH != opts.Input {
		prov.InputH = opts.InputH
	}
	if opts.Random {
		s := opts.Seed
		prov.Seed = &s
	}
	fm, names, err := graph(net, opts.Input, opts.InputH, opts.Taps, nil, description(&prov))
	if err != nil {
		return nil, nil, err
	}
	if opts.Float {
		return finish(fm, &prov), &Report{}, nil
	}
	rep := &Report{}
	start := time.Now()
	ranges, n, err := calibrate(fm, names, opts)
	if err != nil {
		return nil, nil, err
	}
	rep.CalibTime, rep.Images, rep.Ranges = time.Since(start), n, ranges
	prov.Type = "int8"
	prov.Calibration = &CalibRec{Method: opts.Method, Images: n}
	if opts.Method == "percentile" {
		prov.Calibration.Percentile = opts.Percentile
	}
	qm, _, err := graph(net, opts.Input, opts.InputH, opts.Taps, ranges, description(&prov))
	if err != nil {
		return nil, nil, err
	}
	return finish(qm, &prov), rep, nil
}

func description(p *Provenance) string {
	h := p.Input
	if p.InputH > 0 {
		h = p.InputH
	}
	s := fmt.Sprintf("Linesight %s to %s, %s, %dx%d uint8 RGB input", p.Arch, p.Taps[len(p.Taps)-1], p.Type, p.Input, h)
	if p.RandomWeights {
		s += "; RANDOM WEIGHTS: NOT ImageNet features (demo and tests only)"
	} else {
		s += "; from " + p.Source
	}
	return s
}

func finish(m *tflite.Model, p *Provenance) *tflite.Model {
	m.Description = description(p)
	js, _ := json.Marshal(p)
	m.Metadata = append(m.Metadata, tflite.Metadata{Name: MetadataName, Buffer: uint32(len(m.Buffers))})
	m.Buffers = append(m.Buffers, js)
	return m
}

// ReadProvenance returns the build record of a model made by Build, or nil.
func ReadProvenance(m *tflite.Model) *Provenance {
	for _, md := range m.Metadata {
		if md.Name == MetadataName && int(md.Buffer) < len(m.Buffers) {
			var p Provenance
			if json.Unmarshal(m.Buffers[md.Buffer], &p) == nil {
				return &p
			}
		}
	}
	return nil
}

// calibrate runs the float graph over the calibration images and returns
// the range of every activation tensor.
func calibrate(fm *tflite.Model, names []string, opts Options) (map[string]Range, int, error) {
	imgs := spread(opts.Calib, opts.CalibCount)
	if len(imgs) == 0 {
		return nil, 0, fmt.Errorf("resnet: calibration needs images (--calib DIR) unless --float")
	}
	ip, err := engine.NewInterpreter(fm, engine.Options{Threads: opts.Threads, Taps: names})
	if err != nil {
		return nil, 0, err
	}
	defer ip.Close()
	feeder, err := model.NewFeeder(ip.Input(), 0)
	if err != nil {
		return nil, 0, err
	}
	outs := ip.Outputs()
	raw := make([][]byte, len(outs))
	vals := make([][]float32, len(outs))
	for i, o := range outs {
		raw[i] = make([]byte, o.Bytes())
		vals[i] = make([]float32, o.Elements())
	}
	lo := make([]float64, len(outs))
	hi := make([]float64, len(outs))
	for i := range lo {
		lo[i], hi[i] = math.Inf(1), math.Inf(-1)
	}
	q := opts.Percentile / 100
	for k, path := range imgs {
		img, err := rgb.ReadFile(path)
		if err != nil {
			return nil, 0, err
		}
		if err := feeder.Feed(ip, img); err != nil {
			return nil, 0, fmt.Errorf("resnet: %s: %w", path, err)
		}
		if err := ip.Invoke(); err != nil {
			return nil, 0, err
		}
		for i := range outs {
			if err := ip.ReadOutput(i, raw[i]); err != nil {
				return nil, 0, err
			}
			v := vals[i]
			for j := range v {
				v[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[i][4*j:]))
			}
			if opts.Method == "minmax" {
				lo[i] = math.Min(lo[i], float64(slices.Min(v)))
				hi[i] = math.Max(hi[i], float64(slices.Max(v)))
				continue
			}
			// percentile: average the per-image percentiles (clips rare outliers).
			slices.Sort(v)
			l, h := quantile(v, 1-q), quantile(v, q)
			if k == 0 {
				lo[i], hi[i] = 0, 0
			}
			lo[i] += l / float64(len(imgs))
			hi[i] += h / float64(len(imgs))
		}
		if opts.Progress != nil {
			opts.Progress(k+1, len(imgs))
		}
	}
	ranges := map[string]Range{}
	for i, o := range outs {
		ranges[o.Name] = Range{lo[i], hi[i]}
	}
	return ranges, len(imgs), nil
}

func quantile(sorted []float32, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i >= len(sorted)-1 {
		return float64(sorted[len(sorted)-1])
	}
	f := pos - float64(i)
	return float64(sorted[i])*(1-f) + float64(sorted[i+1])*f
}

// spread picks at most n of paths, evenly spaced, in order.
func spread(paths []string, n int) []string {
	if len(paths) <= n {
		return paths
	}
	out := make([]string, n)
	for i := range out {
		out[i] = paths[i*len(paths)/n]
	}
	return out
}
