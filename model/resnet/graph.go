package resnet

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/linesight/linesight/model/tflite"
)

// Range is a calibrated activation range in real units.
type Range struct{ Min, Max float64 }

// emitter writes the graph in float32 (ranges == nil) or int8.
type emitter struct {
	b      *tflite.Builder
	ranges map[string]Range
	quant  map[int32]*tflite.Quantization // activation tensors' quantization
	shape  map[int32][]int32
	names  []string // activation tensors in creation order
}

func (e *emitter) float() bool { return e.ranges == nil }

// act adds an activation tensor. In int8 mode its quantization comes from
// the calibrated range of the same name (or from like, for PAD and pools,
// whose outputs TFLite requires to share their input's quantization).
func (e *emitter) act(name string, shape []int32, like int32) (int32, error) {
	if e.float() {
		t := e.b.Tensor(name, tflite.Float32, shape, nil, nil)
		e.shape[t] = shape
		e.names = append(e.names, name)
		return t, nil
	}
	var q *tflite.Quantization
	if like >= 0 {
		q = e.quant[like]
	} else {
		r, ok := e.ranges[name]
		if !ok {
			return 0, fmt.Errorf("resnet: no calibrated range for %q", name)
		}
		q = asymmetric(r)
	}
	t := e.b.Tensor(name, tflite.Int8, shape, q, nil)
	e.quant[t], e.shape[t] = q, shape
	e.names = append(e.names, name)
	return t, nil
}

// asymmetric returns per-tensor int8 parameters covering r (widened to hold
// 0, so that zero padding is exact), as TFLite's converter does.
func asymmetric(r Range) *tflite.Quantization {
	lo, hi := math.Min(r.Min, 0), math.Max(r.Max, 0)
	if hi-lo < 1e-8 {
		hi = lo + 1e-8
	}
	scale := (hi - lo) / 255
	zp := math.Round(-128 - lo/scale)
	zp = math.Max(-128, math.Min(127, zp))
	return tflite.PerTensor(float32(scale), int64(zp))
}

func floats(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

func int32s(v []int32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], uint32(x))
	}
	return out
}

// pad adds an explicit symmetric spatial PAD.
func (e *emitter) pad(name string, in int32, p int) (int32, error) {
	s := e.shape[in]
	out, err := e.act(name, []int32{s[0], s[1] + int32(2*p), s[2] + int32(2*p), s[3]}, in)
	if err != nil {
		return 0, err
	}
	pads := e.b.Tensor(name+"/paddings", tflite.Int32, []int32{4, 2}, nil, int32s([]int32{0, 0, int32(p), int32(p), int32(p), int32(p), 0, 0}))
	e.b.Op(tflite.OpPad, e.ver(1, 2), []int32{in, pads}, []int32{out}, tflite.PadOptions{})
	return out, nil
}

func (e *emitter) ver(float, int8 int32) int32 {
	if e.float() {
		return float
	}
	return int8
}

// conv adds c applied to in, with PyTorch's padding: stride 1 uses SAME
// (symmetric for odd kernels), strided convolutions an explicit PAD + VALID.
func (e *emitter) conv(c *Conv, in int32, out string, act tflite.Activation) (int32, error) {
	src := in
	padding := tflite.PaddingValid
	if c.Pad > 0 {
		if c.Stride == 1 && c.K == 2*c.Pad+1 {
			padding = tflite.PaddingSame
		} else {
			var err error
			if src, err = e.pad(out+"/pad", in, c.Pad); err != nil {
				return 0, err
			}
		}
	}
	s := e.shape[src]
	h, w := int32(s[1]), int32(s[2])
	if padding == tflite.PaddingValid {
		h = (h-int32(c.K))/int32(c.Stride) + 1
		w = (w-int32(c.K))/int32(c.Stride) + 1
	}
	y, err := e.act(out, []int32{1, h, w, int32(c.Out)}, -1)
	if err != nil {
		return 0, err
	}
	wt, bt := e.weights(c, src)
	e.b.Op(tflite.OpConv2D, e.ver(1, 3), []int32{src, wt, bt}, []int32{y},
		tflite.Conv2DOptions{Padding: padding, StrideW: int32(c.Stride), StrideH: int32(c.Stride), DilationW: 1, DilationH: 1, Activation: act})
	return y, nil
}

// weights adds c's weights in TFLite's OHWI layout and its bias: float32,
// or int8 per output channel (symmetric, [-127, 127]) with an int32 bias of
// scale input scale × weight scale.
func (e *emitter) weights(c *Conv, in int32) (int32, int32) {
	k, per := c.K, c.In*c.K*c.K
	ohwi := make([]float32, len(c.W))
	for o := 0; o < c.Out; o++ {
		for i := 0; i < c.In; i++ {
			for y := 0; y < k; y++ {
				for x := 0; x < k; x++ {
					ohwi[((o*k+y)*k+x)*c.In+i] = c.W[o*per+(i*k+y)*k+x]
				}
			}
		}
	}
	shape := []int32{int32(c.Out), int32(k), int32(k), int32(c.In)}
	if e.float() {
		wt := e.b.Tensor(c.Name+".weight", tflite.Float32, shape, nil, floats(ohwi))
		bt := e.b.Tensor(c.Name+".bias", tflite.Float32, []int32{int32(c.Out)}, nil, floats(c.B))
		return wt, bt
	}
	q, scales := perChannel(ohwi, c.Out)
	inScale := float64(e.quant[in].Scale[0])
	bias := make([]int32, c.Out)
	bscales := make([]float32, c.Out)
	for o := range bias {
		bscales[o] = float32(inScale * float64(scales[o]))
		bias[o] = int32(math.Max(math.MinInt32, math.Min(math.MaxInt32, math.Round(float64(c.B[o])/float64(bscales[o])))))
	}
	wt := e.b.Tensor(c.Name+".weight", tflite.Int8, shape, &tflite.Quantization{Scale: scales, ZeroPoint: make([]int64, c.Out)}, q)
	bt := e.b.Tensor(c.Name+".bias", tflite.Int32, []int32{int32(c.Out)}, &tflite.Quantization{Scale: bscales, ZeroPoint: make([]int64, c.Out)}, int32s(bias))
	return wt, bt
}

// perChannel quantizes rows of w (one per output channel) symmetrically:
// scale = max|w|/127, values in [-127, 127].
func perChannel(w []float32, rows int) ([]byte, []float32) {
	per := len(w) / rows
	q := make([]byte, len(w))
	scales := make([]float32, rows)
	for o := 0; o < rows; o++ {
		var m float64
		for _, v := range w[o*per : (o+1)*per] {
			m = math.Max(m, math.Abs(float64(v)))
		}
		s := m / 127
		if s == 0 {
			s = 1 // an all-zero channel: any scale represents it
		}
		scales[o] = float32(s)
		for i, v := range w[o*per : (o+1)*per] {
			q[o*per+i] = byte(int8(math.Max(-127, math.Min(127, math.Round(float64(v)/float64(scales[o]))))))
		}
	}
	return q, scales
}

// normalize adds the first layer: a 1x1 depthwise convolution computing
// (x − mean)/std per channel from the input in [0, 1] (int8 graph) or
// 0..255 (float graph).
func (e *emitter) normalize(in int32) (int32, error) {
	s := e.shape[in]
	y, err := e.act("normalized", s, -1)
	if err != nil {
		return 0, err
	}
	unit := 255.0 // float inputs are pixel values
	if !e.float() {
		unit = 1 // int8 inputs are pixel/255
	}
	w := make([]float32, 3)
	b := make([]float32, 3)
	for c := range 3 {
		w[c] = float32(1 / (unit * Std[c]))
		b[c] = float32(-Mean[c] / Std[c])
	}
	shape := []int32{1, 1, 1, 3}
	var wt, bt int32
	if e.float() {
		wt = e.b.Tensor("normalize.weight", tflite.Float32, shape, nil, floats(w))
		bt = e.b.Tensor("normalize.bias", tflite.Float32, []int32{3}, nil, floats(b))
	} else {
		q, scales := perChannel(w, 3)
		inScale := float64(e.quant[in].Scale[0])
		bias := make([]int32, 3)
		bscales := make([]float32, 3)
		for c := range 3 {
			bscales[c] = float32(inScale * float64(scales[c]))
			bias[c] = int32(math.Round(float64(b[c]) / float64(bscales[c])))
		}
		wt = e.b.Tensor("normalize.weight", tflite.Int8, shape, &tflite.Quantization{Scale: scales, ZeroPoint: make([]int64, 3), QuantizedDimension: 3}, q)
		bt = e.b.Tensor("normalize.bias", tflite.Int32, []int32{3}, &tflite.Quantization{Scale: bscales, ZeroPoint: make([]int64, 3)}, int32s(bias))
	}
	e.b.Op(tflite.OpDepthwiseConv, e.ver(1, 3), []int32{in, wt, bt}, []int32{y},
		tflite.DepthwiseConv2DOptions{Padding: tflite.PaddingValid, StrideW: 1, StrideH: 1, DepthMultiplier: 1, DilationW: 1, DilationH: 1})
	return y, nil
}

// graph emits the network with the given layer outputs ("layer1".."layer4")
// as the model's outputs, and returns it with the names of all activation
// tensors (the calibration taps).
func graph(n *Net, width, height int, taps []string, ranges map[string]Range, description string) (*tflite.Model, []string, error) {
	e := &emitter{b: tflite.NewBuilder(description), ranges: ranges, quant: map[int32]*tflite.Quantization{}, shape: map[int32][]int32{}}
	w, h := int32(width), int32(height)
	var in, x int32
	var err error
	if e.float() {
		in = e.b.Tensor("input", tflite.Float32, []int32{1, h, w, 3}, nil, nil)
		e.shape[in] = []int32{1, h, w, 3}
		x = in
	} else {
		// Plain uint8 pixels, scale 1/255: real values in [0, 1]; QUANTIZE
		// to int8 is an exact shift by 128.
		in = e.b.Tensor("input", tflite.Uint8, []int32{1, h, w, 3}, tflite.PerTensor(1.0/255, 0), nil)
		e.shape[in] = []int32{1, h, w, 3}
		q := tflite.PerTensor(1.0/255, -128)
		x = e.b.Tensor("input_int8", tflite.Int8, []int32{1, h, w, 3}, q, nil)
		e.quant[x], e.shape[x] = q, []int32{1, h, w, 3}
		e.b.Op(tflite.OpQuantize, 1, []int32{in}, []int32{x}, tflite.QuantizeOptions{})
	}
	if x, err = e.normalize(x); err != nil {
		return nil, nil, err
	}
	if x, err = e.conv(&n.Stem, x, "conv1", tflite.ActRelu); err != nil {
		return nil, nil, err
	}
	// Max-pool 3x3/2 with PyTorch's padding 1: zero padding is exact after
	// ReLU (every window holds a value >= 0).
	if x, err = e.pad("maxpool/pad", x, 1); err != nil {
		return nil, nil, err
	}
	s := e.shape[x]
	mp, err := e.act("maxpool", []int32{1, (s[1]-3)/2 + 1, (s[2]-3)/2 + 1, s[3]}, x)
	if err != nil {
		return nil, nil, err
	}
	e.b.Op(tflite.OpMaxPool2D, e.ver(1, 2), []int32{x}, []int32{mp},
		tflite.Pool2DOptions{Padding: tflite.PaddingValid, StrideW: 2, StrideH: 2, FilterWidth: 3, FilterHeight: 3})
	x = mp

	outs := map[string]int32{}
	for l, blocks := range n.Layers {
		for bi := range blocks {
			blk := &blocks[bi]
			name := blk.Name
			if bi == len(blocks)-1 {
				name = fmt.Sprintf("layer%d", l+1) // the layer's output: a tap
			}
			y, err := e.conv(&blk.Conv1, x, blk.Name+".conv1", tflite.ActRelu)
			if err != nil {
				return nil, nil, err
			}
			if y, err = e.conv(&blk.Conv2, y, blk.Name+".conv2", tflite.ActNone); err != nil {
				return nil, nil, err
			}
			short := x
			if blk.Down != nil {
				if short, err = e.conv(blk.Down, x, blk.Name+".downsample", tflite.ActNone); err != nil {
					return nil, nil, err
				}
			}
			sum, err := e.act(name, e.shape[y], -1)
			if err != nil {
				return nil, nil, err
			}
			e.b.Op(tflite.OpAdd, e.ver(1, 2), []int32{y, short}, []int32{sum}, tflite.AddOptions{Activation: tflite.ActRelu})
			x = sum
			outs[name] = sum
		}
	}
	var outputs []int32
	for _, t := range taps {
		o, ok := outs[t]
		if !ok {
			return nil, nil, fmt.Errorf("resnet: tap %q is not a layer output the graph computes (layer1..layer%d)", t, len(n.Layers))
		}
		outputs = append(outputs, o)
	}
	e.b.IO([]int32{in}, outputs)
	return e.b.Model(), e.names, nil
}
