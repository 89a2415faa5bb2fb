// Package resnet turns a torchvision ResNet checkpoint into a TensorFlow Lite
// backbone for PatchCore: BatchNorm folded into the convolutions, ImageNet
// normalisation in a first 1x1 layer (callers feed plain pixels), the graph
// cut after the deepest tap with the taps ("layer2", "layer3") as outputs,
// and int8 post-training quantization calibrated on the line's own images.
//
// PyTorch's geometry is reproduced exactly: every strided convolution and the
// max-pool get an explicit PAD and VALID padding (TFLite's SAME pads stride-2
// layers on the bottom/right only, which would shift the grid); stride-1 3x3
// convolutions use SAME, which pads 1 on each side as PyTorch does.
package resnet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/linesight/linesight/model/torchckpt"
)

// Arch is a ResNet made of BasicBlocks.
type Arch struct {
	Name   string
	Blocks [4]int
}

// Archs are the architectures the builder knows.
var Archs = map[string]Arch{
	"resnet18": {"resnet18", [4]int{2, 2, 2, 2}},
	"resnet34": {"resnet34", [4]int{3, 4, 6, 3}},
}

var widths = [4]int{64, 128, 256, 512}

// BNEps is torchvision's BatchNorm epsilon (it is not stored in checkpoints).
const BNEps = 1e-5

// ImageNet normalisation of torchvision's models.
var (
	Mean = [3]float64{0.485, 0.456, 0.406}
	Std  = [3]float64{0.229, 0.224, 0.225}
)

// Conv is a convolution with BatchNorm folded in: weights in PyTorch's
// OIHW layout and a bias.
type Conv struct {
	Name        string
	Out, In, K  int
	Stride, Pad int
	W           []float32
	B           []float32
}

// Block is a BasicBlock: conv1 (ReLU), conv2, the optional 1x1 downsample,
// then ReLU(conv2 + shortcut).
type Block struct {
	Name         string
	Conv1, Conv2 Conv
	Down         *Conv
}

// Net is a folded network up to Layers layers.
type Net struct {
	Arch   Arch
	Stem   Conv
	Layers [][]Block // Layers[i] is layer{i+1}
}

// FromStateDict checks a state dict against the architecture up to layer
// `depth` (1..4) and folds its BatchNorms. The error names the first key
// that is missing or has the wrong shape.
func FromStateDict(sd torchckpt.StateDict, arch Arch, depth int) (*Net, error) {
	if depth < 1 || depth > 4 {
		return nil, fmt.Errorf("resnet: depth %d outside 1..4", depth)
	}
	n := &Net{Arch: arch}
	var err error
	if n.Stem, err = foldConv(sd, "conv1", "bn1", 3, 64, 7, 2, 3); err != nil {
		return nil, err
	}
	in := 64
	for l := 0; l < depth; l++ {
		var blocks []Block
		for b := 0; b < arch.Blocks[l]; b++ {
			p := fmt.Sprintf("layer%d.%d", l+1, b)
			stride := 1
			if l > 0 && b == 0 {
				stride = 2
			}
			out := widths[l]
			blk := Block{Name: p}
			if blk.Conv1, err = foldConv(sd, p+".conv1", p+".bn1", in, out, 3, stride, 1); err != nil {
				return nil, err
			}
			if blk.Conv2, err = foldConv(sd, p+".conv2", p+".bn2", out, out, 3, 1, 1); err != nil {
				return nil, err
			}
			if stride != 1 || in != out {
				d, err := foldConv(sd, p+".downsample.0", p+".downsample.1", in, out, 1, stride, 0)
				if err != nil {
					return nil, err
				}
				blk.Down = &d
			}
			blocks = append(blocks, blk)
			in = out
		}
		n.Layers = append(n.Layers, blocks)
	}
	return n, nil
}

func tensor(sd torchckpt.StateDict, key string, shape ...int) (*torchckpt.Tensor, error) {
	t, ok := sd[key]
	if !ok {
		return nil, fmt.Errorf("resnet: checkpoint has no %q (is it a torchvision ResNet state_dict of this depth?)", key)
	}
	if !slices.Equal(t.Shape, shape) {
		return nil, fmt.Errorf("resnet: %q has shape %v, the architecture needs %v", key, t.Shape, shape)
	}
	for _, v := range t.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("resnet: %q holds NaN or Inf", key)
		}
	}
	return t, nil
}

// foldConv reads conv.weight and the BatchNorm bn, and returns the conv with
// w' = w·γ/√(σ²+ε) per output channel and bias β − γ·μ/√(σ²+ε).
func foldConv(sd torchckpt.StateDict, conv, bn string, in, out, k, stride, pad int) (Conv, error) {
	w, err := tensor(sd, conv+".weight", out, in, k, k)
	if err != nil {
		return Conv{}, err
	}
	var p [4]*torchckpt.Tensor
	for i, s := range []string{"weight", "bias", "running_mean", "running_var"} {
		if p[i], err = tensor(sd, bn+"."+s, out); err != nil {
			return Conv{}, err
		}
	}
	c := Conv{Name: conv, Out: out, In: in, K: k, Stride: stride, Pad: pad, W: make([]float32, len(w.Data)), B: make([]float32, out)}
	per := in * k * k
	for o := 0; o < out; o++ {
		v := float64(p[3].Data[o])
		if v < 0 {
			return Conv{}, fmt.Errorf("resnet: %q has a negative running variance %v", bn+".running_var", v)
		}
		g := float64(p[0].Data[o]) / math.Sqrt(v+BNEps)
		for i := 0; i < per; i++ {
			c.W[o*per+i] = float32(float64(w.Data[o*per+i]) * g)
		}
		c.B[o] = float32(float64(p[1].Data[o]) - g*float64(p[2].Data[o]))
	}
	return c, nil
}

// RandomStateDict returns a seeded, He-initialised state dict (torchvision's
// initialisation: conv weights N(0, 2/fan_out), BatchNorm γ=1, β=0, μ=0,
// σ²=1). Its features are NOT ImageNet features: for demos and tests only.
func RandomStateDict(arch Arch, seed uint64) torchckpt.StateDict {
	rng := rand.New(rand.NewPCG(seed, 0x7265736e6574)) // "resnet"
	sd := torchckpt.StateDict{}
	conv := func(name string, out, in, k int) {
		std := math.Sqrt(2 / float64(out*k*k))
		t := &torchckpt.Tensor{Shape: []int{out, in, k, k}, Data: make([]float32, out*in*k*k)}
		for i := range t.Data {
			t.Data[i] = float32(normal(rng) * std)
		}
		sd[name+".weight"] = t
	}
	bn := func(name string, c int) {
		for _, s := range []struct {
			key string
			v   float32
		}{{"weight", 1}, {"bias", 0}, {"running_mean", 0}, {"running_var", 1}} {
			t := &torchckpt.Tensor{Shape: []int{c}, Data: make([]float32, c)}
			for i := range t.Data {
				t.Data[i] = s.v
			}
			sd[name+"."+s.key] = t
		}
	}
	conv("conv1", 64, 3, 7)
	bn("bn1", 64)
	in := 64
	for l := 0; l < 4; l++ {
		for b := 0; b < arch.Blocks[l]; b++ {
			p := fmt.Sprintf("layer%d.%d", l+1, b)
			out := widths[l]
			conv(p+".conv1", out, in, 3)
			bn(p+".bn1", out)
			conv(p+".conv2", out, out, 3)
			bn(p+".bn2", out)
			if l > 0 && b == 0 {
				conv(p+".downsample.0", out, in, 1)
				bn(p+".downsample.1", out)
			}
			in = out
		}
	}
	return sd
}

// normal is a standard normal variate by Box-Muller over pure-Go math, so a
// seed gives the same weights on every architecture.
func normal(rng *rand.Rand) float64 {
	u1 := 1 - rng.Float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*rng.Float64())
}
