// Package optest builds single-operator models with seeded random weights
// and quantization, covering the variants each op has (types, padding,
// strides, dilation, per-channel weights, fused activations, broadcasting,
// saturation). The engine's tests run them against hand-checked rules and,
// with the tflite build tag, against the real TensorFlow Lite.
package optest

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/linesight/linesight/model/tflite"
)

// Case is one single-op model.
type Case struct {
	Name  string
	Model *tflite.Model
}

type gen struct {
	r     *rand.Rand
	cases []Case
}

// Cases returns the op cases for a seed.
func Cases(seed uint64) []Case {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x11e5))}
	g.conv()
	g.depthwise()
	g.fullyConnected()
	g.add()
	g.pools()
	g.mean()
	g.shapes()
	g.quantize()
	g.softmax()
	g.resize()
	g.padded()
	g.classifierHead()
	return g.cases
}

// classifierHead adds an image classifier's last reductions at their real
// sizes (MobileNetV2's global average pool over 7x7x1280, softmax over
// ImageNet's 1001 classes), where the kernels take their vectorised and
// tabulated paths that the small cases above do not reach. Last, so that
// the cases before keep their random draws.
func (g *gen) classifierHead() {
	for _, t := range []tflite.TensorType{tflite.Int8, tflite.Uint8} {
		b := tflite.NewBuilder("optest mean wide")
		in := b.Tensor("in", t, []int32{1, 7, 7, 1280}, g.q(t), nil)
		ax := b.Tensor("axes", tflite.Int32, []int32{2}, nil, ints(1, 2))
		out := b.Tensor("out", t, []int32{1, 1, 1, 1280}, g.q(t), nil)
		b.Op(tflite.OpMean, version(t), []int32{in, ax}, []int32{out}, tflite.ReducerOptions{KeepDims: true})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("mean_%v_7x7x1280", t), b)

		b = tflite.NewBuilder("optest softmax wide")
		zo := int64(-128)
		if t == tflite.Uint8 {
			zo = 0
		}
		qi := g.q(t)
		qi.Scale[0] *= 4
		in = b.Tensor("in", t, []int32{1, 1001}, qi, nil)
		out = b.Tensor("out", t, []int32{1, 1001}, tflite.PerTensor(1.0/256, zo), nil)
		b.Op(tflite.OpSoftmax, version(t), []int32{in}, []int32{out}, tflite.SoftmaxOptions{Beta: 1})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("softmax_%v_1001", t), b)
	}
}

func (g *gen) scale() float32 { return float32(0.005 + 0.05*g.r.Float64()) }

// act quantization for a type: scale and zero point in the type's range.
func (g *gen) q(t tflite.TensorType) *tflite.Quantization {
	if t == tflite.Uint8 {
		return tflite.PerTensor(g.scale(), int64(g.r.IntN(256)))
	}
	return tflite.PerTensor(g.scale(), int64(g.r.IntN(256)-128))
}

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return b
}

func (g *gen) floats(n int, lim float64) []byte {
	b := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32((2*g.r.Float64()-1)*lim)))
	}
	return b
}

func (g *gen) int32s(n int, lim int) []byte {
	b := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(int32(g.r.IntN(2*lim+1)-lim)))
	}
	return b
}

func ints(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func (g *gen) add1(name string, b *tflite.Builder) {
	g.cases = append(g.cases, Case{Name: name, Model: b.Model()})
}

// weights returns filter data and quantization for a conv-like op.
func (g *gen) weights(t tflite.TensorType, n, channels, axis int, perChannel bool) ([]byte, *tflite.Quantization) {
	if t == tflite.Float32 {
		return g.floats(n, 1), nil
	}
	data := g.bytes(n)
	if t == tflite.Int8 {
		for i := range data {
			if data[i] == 0x80 {
				data[i] = 0x81 // symmetric weights: [-127, 127]
			}
		}
	}
	if !perChannel {
		zp := int64(0)
		if t == tflite.Uint8 {
			zp = int64(g.r.IntN(256))
		}
		return data, tflite.PerTensor(float32(0.001+0.02*g.r.Float64()), zp)
	}
	q := &tflite.Quantization{QuantizedDimension: int32(axis)}
	for c := 0; c < channels; c++ {
		q.Scale = append(q.Scale, float32(0.001+0.02*g.r.Float64()))
		q.ZeroPoint = append(q.ZeroPoint, 0)
	}
	return data, q
}

func (g *gen) bias(t tflite.TensorType, n int) []byte {
	if t == tflite.Float32 {
		return g.floats(n, 1)
	}
	return g.int32s(n, 3000)
}

// biasQuant is the bias quantization TFLite requires: scale = input scale x
// weight scale, per channel when the weights are.
func biasQuant(in *tflite.Quantization, w *tflite.Quantization) *tflite.Quantization {
	if in == nil || w == nil {
		return nil
	}
	q := &tflite.Quantization{}
	for _, s := range w.Scale {
		q.Scale = append(q.Scale, in.Scale[0]*s)
		q.ZeroPoint = append(q.ZeroPoint, 0)
	}
	return q
}

func biasType(t tflite.TensorType) tflite.TensorType {
	if t == tflite.Float32 {
		return t
	}
	return tflite.Int32
}

func convVersion(t tflite.TensorType, dil int) int32 {
	switch {
	case t == tflite.Int8:
		return 3
	case dil > 1:
		return 2
	}
	return 1
}

func (g *gen) conv() {
	types := []tflite.TensorType{tflite.Int8, tflite.Uint8, tflite.Float32}
	for i := 0; i < 18; i++ {
		t := types[i%3]
		h, w, cin, cout := 5+g.r.IntN(8), 5+g.r.IntN(8), 1+g.r.IntN(9), 1+g.r.IntN(11)
		k := []int{1, 2, 3, 5}[g.r.IntN(4)]
		stride := 1 + g.r.IntN(2)
		dil := 1
		if i%5 == 4 {
			dil = 2
		}
		pad := tflite.Padding(g.r.IntN(2))
		act := []tflite.Activation{tflite.ActNone, tflite.ActRelu, tflite.ActRelu6}[g.r.IntN(3)]
		if i == 0 { // 1x1 stride 1: the no-packing path
			k, stride, dil, pad = 1, 1, 1, tflite.PaddingValid
		}
		eff := (k-1)*dil + 1
		if pad == tflite.PaddingValid && (h < eff || w < eff) {
			pad = tflite.PaddingSame
		}
		oh, ow := outSize(pad, h, eff, stride), outSize(pad, w, eff, stride)
		b := tflite.NewBuilder("optest conv")
		qin := g.qOrNil(t)
		in := b.Tensor("in", t, []int32{1, int32(h), int32(w), int32(cin)}, qin, nil)
		wd, wq := g.weights(t, cout*k*k*cin, cout, 0, t == tflite.Int8)
		wt := b.Tensor("w", t, []int32{int32(cout), int32(k), int32(k), int32(cin)}, wq, wd)
		bt := b.Tensor("b", biasType(t), []int32{int32(cout)}, biasQuant(qin, wq), g.bias(t, cout))
		out := b.Tensor("out", t, []int32{1, int32(oh), int32(ow), int32(cout)}, g.qOrNil(t), nil)
		b.Op(tflite.OpConv2D, convVersion(t, dil), []int32{in, wt, bt}, []int32{out}, tflite.Conv2DOptions{
			Padding: pad, StrideW: int32(stride), StrideH: int32(stride), DilationW: int32(dil), DilationH: int32(dil), Activation: act})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("conv_%v_%dx%dx%d_k%d_s%d_d%d_%v_%v", t, h, w, cin, k, stride, dil, pad, act), b)
	}
}

func (g *gen) qOrNil(t tflite.TensorType) *tflite.Quantization {
	if t == tflite.Float32 {
		return nil
	}
	return g.q(t)
}

func outSize(pad tflite.Padding, in, eff, stride int) int {
	if pad == tflite.PaddingSame {
		return (in + stride - 1) / stride
	}
	return (in - eff + stride) / stride
}

func (g *gen) depthwise() {
	types := []tflite.TensorType{tflite.Int8, tflite.Uint8, tflite.Float32}
	for i := 0; i < 15; i++ {
		t := types[i%3]
		h, w, cin := 5+g.r.IntN(8), 5+g.r.IntN(8), 1+g.r.IntN(9)
		mult := 1
		if i%4 == 3 && i < 12 {
			mult = 2
		}
		cout := cin * mult
		k := []int{3, 5}[g.r.IntN(2)]
		stride := 1 + g.r.IntN(2)
		if i >= 12 {
			// 1x1 filters: a per-channel scale and shift (the engine
			// uses a table per channel).
			k, stride = 1, 1
		}
		pad := tflite.Padding(g.r.IntN(2))
		if pad == tflite.PaddingValid && (h < k || w < k) {
			pad = tflite.PaddingSame
		}
		act := []tflite.Activation{tflite.ActNone, tflite.ActRelu, tflite.ActRelu6}[g.r.IntN(3)]
		if t == tflite.Int8 {
			// TensorFlow Lite 2.2 (the oracle) ignores the fused activation of int8
			// depthwise convolutions and clamps to the full int8 range; later
			// versions apply it, as the engine does. Converters fold the activation
			// into the output range, so real models agree either way.
			act = tflite.ActNone
		}
		oh, ow := outSize(pad, h, k, stride), outSize(pad, w, k, stride)
		b := tflite.NewBuilder("optest depthwise")
		qin := g.qOrNil(t)
		in := b.Tensor("in", t, []int32{1, int32(h), int32(w), int32(cin)}, qin, nil)
		wd, wq := g.weights(t, k*k*cout, cout, 3, t == tflite.Int8)
		wt := b.Tensor("w", t, []int32{1, int32(k), int32(k), int32(cout)}, wq, wd)
		bt := b.Tensor("b", biasType(t), []int32{int32(cout)}, biasQuant(qin, wq), g.bias(t, cout))
		out := b.Tensor("out", t, []int32{1, int32(oh), int32(ow), int32(cout)}, g.qOrNil(t), nil)
		b.Op(tflite.OpDepthwiseConv, convVersion(t, 1), []int32{in, wt, bt}, []int32{out}, tflite.DepthwiseConv2DOptions{
			Padding: pad, StrideW: int32(stride), StrideH: int32(stride), DepthMultiplier: int32(mult), DilationW: 1, DilationH: 1, Activation: act})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("depthwise_%v_%dx%dx%d_m%d_k%d_s%d_%v_%v", t, h, w, cin, mult, k, stride, pad, act), b)
	}
}

func (g *gen) fullyConnected() {
	for i, t := range []tflite.TensorType{tflite.Int8, tflite.Uint8, tflite.Float32, tflite.Int8} {
		batch, k, units := 1+i%2, 8+g.r.IntN(60), 3+g.r.IntN(20)
		b := tflite.NewBuilder("optest fc")
		qin := g.qOrNil(t)
		in := b.Tensor("in", t, []int32{int32(batch), int32(k)}, qin, nil)
		wd, wq := g.weights(t, units*k, units, 0, false)
		wt := b.Tensor("w", t, []int32{int32(units), int32(k)}, wq, wd)
		bt := b.Tensor("b", biasType(t), []int32{int32(units)}, biasQuant(qin, wq), g.bias(t, units))
		out := b.Tensor("out", t, []int32{int32(batch), int32(units)}, g.qOrNil(t), nil)
		v := int32(1)
		if t == tflite.Int8 {
			v = 4
		}
		b.Op(tflite.OpFullyConnected, v, []int32{in, wt, bt}, []int32{out}, tflite.FullyConnectedOptions{Activation: tflite.ActRelu})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("fc_%v_b%d_k%d_u%d", t, batch, k, units), b)
	}
}

func version(t tflite.TensorType) int32 {
	if t == tflite.Int8 {
		return 2
	}
	return 1
}

func (g *gen) add() {
	for i, t := range []tflite.TensorType{tflite.Int8, tflite.Uint8, tflite.Float32, tflite.Int8, tflite.Uint8} {
		sa := []int32{1, 4, 5, 6}
		sb := sa
		if i >= 3 {
			sb = []int32{1, 1, 1, 6} // broadcast a per-channel vector
		}
		b := tflite.NewBuilder("optest add")
		a := b.Tensor("a", t, sa, g.qOrNil(t), nil)
		var bd []byte
		if t == tflite.Float32 {
			bd = g.floats(int(sb[0]*sb[1]*sb[2]*sb[3]), 3)
		} else {
			bd = g.bytes(int(sb[0] * sb[1] * sb[2] * sb[3]))
		}
		bt := b.Tensor("b", t, sb, g.qOrNil(t), bd)
		out := b.Tensor("out", t, sa, g.qOrNil(t), nil)
		act := []tflite.Activation{tflite.ActNone, tflite.ActRelu6}[i%2]
		b.Op(tflite.OpAdd, version(t), []int32{a, bt}, []int32{out}, tflite.AddOptions{Activation: act})
		b.IO([]int32{a}, []int32{out})
		g.add1(fmt.Sprintf("add_%v_%v_%v", t, sb, act), b)
	}
}

func (g *gen) pools() {
	types := []tflite.TensorType{tflite.Int8, tflite.Uint8, tflite.Float32}
	for i := 0; i < 12; i++ {
		t := types[i%3]
		isMax := i >= 6
		h, w, c := 5+g.r.IntN(8), 5+g.r.IntN(8), 1+g.r.IntN(6)
		k, stride := 2+g.r.IntN(3), 1+g.r.IntN(2)
		pad := tflite.Padding(g.r.IntN(2))
		oh, ow := outSize(pad, h, k, stride), outSize(pad, w, k, stride)
		b := tflite.NewBuilder("optest pool")
		q := g.qOrNil(t)
		in := b.Tensor("in", t, []int32{1, int32(h), int32(w), int32(c)}, q, nil)
		out := b.Tensor("out", t, []int32{1, int32(oh), int32(ow), int32(c)}, q, nil)
		op := tflite.OpAveragePool2D
		if isMax {
			op = tflite.OpMaxPool2D
		}
		b.Op(op, version(t), []int32{in}, []int32{out}, tflite.Pool2DOptions{Padding: pad, StrideW: int32(stride),
			StrideH: int32(stride), FilterWidth: int32(k), FilterHeight: int32(k)})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("%v_%v_%dx%d_k%d_s%d_%v", op, t, h, w, k, stride, pad), b)
	}
}

func (g *gen) mean() {
	for _, t := range []tflite.TensorType{tflite.Int8, tflite.Uint8, tflite.Float32, tflite.Int8} {
		h, w, c := 3+g.r.IntN(8), 3+g.r.IntN(8), 1+g.r.IntN(10)
		b := tflite.NewBuilder("optest mean")
		in := b.Tensor("in", t, []int32{1, int32(h), int32(w), int32(c)}, g.qOrNil(t), nil)
		ax := b.Tensor("axes", tflite.Int32, []int32{2}, nil, ints(1, 2))
		out := b.Tensor("out", t, []int32{1, 1, 1, int32(c)}, g.qOrNil(t), nil)
		b.Op(tflite.OpMean, version(t), []int32{in, ax}, []int32{out}, tflite.ReducerOptions{KeepDims: true})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("mean_%v_%dx%dx%d", t, h, w, c), b)
	}
}

func (g *gen) shapes() {
	for _, t := range []tflite.TensorType{tflite.Int8, tflite.Uint8, tflite.Float32} {
		q := g.qOrNil(t)
		// Padding on height and width (images), on channels, on height
		// only, and on the batch: the engine copies whole rows below the
		// last padded axis, so each pattern takes a different path.
		for i, pads := range [][]int32{{0, 0, 1, 2, 2, 1, 0, 0}, {0, 0, 1, 0, 0, 1, 1, 2}, {0, 0, 2, 1, 0, 0, 0, 0}, {1, 1, 0, 0, 0, 0, 0, 0}} {
			b := tflite.NewBuilder("optest pad")
			shape := []int32{2, 3, 4, 2}
			in := b.Tensor("in", t, shape, q, nil)
			p := b.Tensor("pads", tflite.Int32, []int32{4, 2}, nil, ints(pads...))
			oshape := make([]int32, 4)
			for ax := range oshape {
				oshape[ax] = shape[ax] + pads[2*ax] + pads[2*ax+1]
			}
			out := b.Tensor("out", t, oshape, q, nil)
			b.Op(tflite.OpPad, version(t), []int32{in, p}, []int32{out}, tflite.PadOptions{})
			b.IO([]int32{in}, []int32{out})
			g.add1(fmt.Sprintf("pad%d_%v", i, t), b)
		}

		b := tflite.NewBuilder("optest reshape")
		in := b.Tensor("in", t, []int32{1, 2, 3, 4}, q, nil)
		s := b.Tensor("shape", tflite.Int32, []int32{2}, nil, ints(1, 24))
		out := b.Tensor("out", t, []int32{1, 24}, q, nil)
		b.Op(tflite.OpReshape, 1, []int32{in, s}, []int32{out}, tflite.ReshapeOptions{NewShape: []int32{1, 24}})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("reshape_%v", t), b)

		b = tflite.NewBuilder("optest concat")
		q2 := q
		if t == tflite.Uint8 {
			q2 = g.q(t) // uint8 concatenation rescales inputs
		}
		in = b.Tensor("in", t, []int32{1, 3, 4, 2}, q, nil)
		var cd []byte
		if t == tflite.Float32 {
			cd = g.floats(3*4*3, 3)
		} else {
			cd = g.bytes(3 * 4 * 3)
		}
		c2 := b.Tensor("c", t, []int32{1, 3, 4, 3}, q2, cd)
		out = b.Tensor("out", t, []int32{1, 3, 4, 5}, q, nil)
		b.Op(tflite.OpConcatenation, version(t), []int32{in, c2}, []int32{out}, tflite.ConcatenationOptions{Axis: 3})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("concat_%v", t), b)
	}
}

func (g *gen) quantize() {
	pairs := [][2]tflite.TensorType{{tflite.Float32, tflite.Int8}, {tflite.Float32, tflite.Uint8},
		{tflite.Uint8, tflite.Int8}, {tflite.Int8, tflite.Uint8}, {tflite.Int8, tflite.Int8},
		{tflite.Int8, tflite.Float32}, {tflite.Uint8, tflite.Float32}}
	for _, p := range pairs {
		b := tflite.NewBuilder("optest quantize")
		in := b.Tensor("in", p[0], []int32{1, 7, 5, 3}, g.qOrNil(p[0]), nil)
		qo := g.qOrNil(p[1])
		if p[0] == tflite.Uint8 && p[1] == tflite.Int8 {
			// The common case in TFLite image models: the same scale, zero point moved by 128.
			qi := b.Model().Subgraphs[0].Tensors[in].Quant
			qo = tflite.PerTensor(qi.Scale[0], qi.ZeroPoint[0]-128)
		}
		out := b.Tensor("out", p[1], []int32{1, 7, 5, 3}, qo, nil)
		op, v := tflite.OpQuantize, int32(1)
		if p[1] == tflite.Float32 {
			op = tflite.OpDequantize
			v = version(p[0])
		} else if p[0] != tflite.Float32 {
			v = 2
		}
		b.Op(op, v, []int32{in}, []int32{out}, nil)
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("%v_%v_to_%v", op, p[0], p[1]), b)
	}
}

func (g *gen) softmax() {
	for i, t := range []tflite.TensorType{tflite.Int8, tflite.Uint8, tflite.Float32, tflite.Int8, tflite.Uint8} {
		beta := float32(1)
		if i >= 3 {
			beta = 0.5 + g.r.Float32()
		}
		b := tflite.NewBuilder("optest softmax")
		var qo *tflite.Quantization
		switch t {
		case tflite.Int8:
			qo = tflite.PerTensor(1.0/256, -128)
		case tflite.Uint8:
			qo = tflite.PerTensor(1.0/256, 0)
		}
		qi := g.qOrNil(t)
		if qi != nil {
			qi.Scale[0] *= 4 // a wide range of logits
		}
		in := b.Tensor("in", t, []int32{2, 37}, qi, nil)
		out := b.Tensor("out", t, []int32{2, 37}, qo, nil)
		b.Op(tflite.OpSoftmax, version(t), []int32{in}, []int32{out}, tflite.SoftmaxOptions{Beta: beta})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("softmax_%v_beta%.3f", t, beta), b)
	}
}

func (g *gen) resize() {
	types := []tflite.TensorType{tflite.Int8, tflite.Uint8, tflite.Float32}
	for i := 0; i < 9; i++ {
		t := types[i%3]
		h, w := 3+g.r.IntN(6), 3+g.r.IntN(6)
		oh, ow := 2+g.r.IntN(14), 2+g.r.IntN(14)
		opt := tflite.ResizeBilinearOptions{}
		v := int32(1)
		switch i / 3 {
		case 1:
			opt.AlignCorners = true
		case 2:
			opt.HalfPixelCenters = true
			v = 3
		}
		if t == tflite.Int8 && v < 2 {
			v = 2
		}
		b := tflite.NewBuilder("optest resize")
		q := g.qOrNil(t)
		in := b.Tensor("in", t, []int32{1, int32(h), int32(w), 3}, q, nil)
		s := b.Tensor("size", tflite.Int32, []int32{2}, nil, ints(int32(oh), int32(ow)))
		out := b.Tensor("out", t, []int32{1, int32(oh), int32(ow), 3}, q, nil)
		b.Op(tflite.OpResizeBilinear, v, []int32{in, s}, []int32{out}, opt)
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("resize_%v_%dx%d_to_%dx%d_ac%v_hp%v", t, h, w, oh, ow, opt.AlignCorners, opt.HalfPixelCenters), b)
	}
}

// Input returns seeded random input bytes for a case's input tensor: full
// range for quantized types, [-4, 4] for float32.
func Input(m *tflite.Model, seed uint64) []byte {
	g := &gen{r: rand.New(rand.NewPCG(seed, 7))}
	t := &m.Subgraphs[0].Tensors[m.Subgraphs[0].Inputs[0]]
	n, _ := tflite.NumElements(t.Shape)
	if t.Type == tflite.Float32 {
		return g.floats(n, 4)
	}
	return g.bytes(n * t.Type.Size())
}

// padded: a PAD of height and width then a VALID CONV_2D or MAX_POOL_2D,
// which the engine folds into one operator (the PAD's rows and columns
// padded by the reader). The pads are asymmetric and, for pooling, up to
// more than the window, so that windows lie partly and wholly in them;
// the convolutions include a 7x7 stride-2 stem on 3 channels (the engine's
// in-place path), a 3x3 stride 2 and a 1x1 (never a pointwise one once
// padded).
func (g *gen) padded() {
	types := []tflite.TensorType{tflite.Int8, tflite.Uint8, tflite.Float32}
	for i := 0; i < 9; i++ {
		t := types[i%3]
		h, w, cin, cout := 6+g.r.IntN(10), 6+g.r.IntN(10), 1+g.r.IntN(9), 1+g.r.IntN(40)
		k, stride := []int{1, 3, 7}[i/3], 1+g.r.IntN(2)
		if k == 7 {
			cin, stride = 3, 2
		}
		pads := []int32{0, 0, int32(g.r.IntN(4)), int32(g.r.IntN(4)), int32(g.r.IntN(4)), int32(g.r.IntN(4)), 0, 0}
		ph, pw := h+int(pads[2]+pads[3]), w+int(pads[4]+pads[5])
		for ph < k || pw < k {
			h, w, ph, pw = h+1, w+1, ph+1, pw+1
		}
		b := tflite.NewBuilder("optest pad conv")
		q := g.qOrNil(t)
		in := b.Tensor("in", t, []int32{1, int32(h), int32(w), int32(cin)}, q, nil)
		pt := b.Tensor("pads", tflite.Int32, []int32{4, 2}, nil, ints(pads...))
		mid := b.Tensor("padded", t, []int32{1, int32(ph), int32(pw), int32(cin)}, q, nil)
		b.Op(tflite.OpPad, version(t), []int32{in, pt}, []int32{mid}, tflite.PadOptions{})
		wd, wq := g.weights(t, cout*k*k*cin, cout, 0, t == tflite.Int8)
		wt := b.Tensor("w", t, []int32{int32(cout), int32(k), int32(k), int32(cin)}, wq, wd)
		bt := b.Tensor("b", biasType(t), []int32{int32(cout)}, biasQuant(q, wq), g.bias(t, cout))
		oh, ow := outSize(tflite.PaddingValid, ph, k, stride), outSize(tflite.PaddingValid, pw, k, stride)
		out := b.Tensor("out", t, []int32{1, int32(oh), int32(ow), int32(cout)}, g.qOrNil(t), nil)
		b.Op(tflite.OpConv2D, convVersion(t, 1), []int32{mid, wt, bt}, []int32{out}, tflite.Conv2DOptions{
			Padding: tflite.PaddingValid, StrideW: int32(stride), StrideH: int32(stride), DilationW: 1, DilationH: 1})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("pad_conv_%v_%dx%dx%d_k%d_s%d_pads%v", t, h, w, cin, k, stride, pads[2:6]), b)
	}
	for i := 0; i < 6; i++ {
		t := []tflite.TensorType{tflite.Int8, tflite.Uint8}[i%2]
		h, w, c := 4+g.r.IntN(8), 4+g.r.IntN(8), 1+g.r.IntN(20)
		k, stride := 2+g.r.IntN(2), 1+g.r.IntN(2)
		// Up to k+1 on a side: whole windows of padding at stride 1.
		pads := []int32{0, 0, int32(g.r.IntN(k + 2)), int32(g.r.IntN(k + 2)), int32(g.r.IntN(k + 2)), int32(g.r.IntN(k + 2)), 0, 0}
		ph, pw := h+int(pads[2]+pads[3]), w+int(pads[4]+pads[5])
		b := tflite.NewBuilder("optest pad maxpool")
		q := g.q(t)
		in := b.Tensor("in", t, []int32{1, int32(h), int32(w), int32(c)}, q, nil)
		pt := b.Tensor("pads", tflite.Int32, []int32{4, 2}, nil, ints(pads...))
		mid := b.Tensor("padded", t, []int32{1, int32(ph), int32(pw), int32(c)}, q, nil)
		b.Op(tflite.OpPad, version(t), []int32{in, pt}, []int32{mid}, tflite.PadOptions{})
		oh, ow := outSize(tflite.PaddingValid, ph, k, stride), outSize(tflite.PaddingValid, pw, k, stride)
		out := b.Tensor("out", t, []int32{1, int32(oh), int32(ow), int32(c)}, q, nil)
		b.Op(tflite.OpMaxPool2D, version(t), []int32{mid}, []int32{out}, tflite.Pool2DOptions{Padding: tflite.PaddingValid,
			StrideW: int32(stride), StrideH: int32(stride), FilterWidth: int32(k), FilterHeight: int32(k)})
		b.IO([]int32{in}, []int32{out})
		g.add1(fmt.Sprintf("pad_maxpool_%v_%dx%dx%d_k%d_s%d_pads%v", t, h, w, c, k, stride, pads[2:6]), b)
	}
}
