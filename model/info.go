package model

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"

	"github.com/linesight/linesight/model/tflite"
)

// Describe writes a summary of m: description, inputs, outputs and operator
// counts, and with tensors set every tensor of subgraph 0 with its index,
// name, shape, type, quantization and producing operator, to choose taps from.
// supported lists the operators the Go engine runs with their newest
// version (engine.SupportedOps); the others are marked as not supported.
func Describe(w io.Writer, m *tflite.Model, tensors bool, supported map[tflite.BuiltinOp]int32) error {
	sg := &m.Subgraphs[0]
	fmt.Fprintf(w, "description: %s\n", m.Description)
	fmt.Fprintf(w, "subgraphs: %d, tensors: %d, operators: %d, buffers: %d\n", len(m.Subgraphs), len(sg.Tensors), len(sg.Operators), len(m.Buffers))
	for _, i := range sg.Inputs {
		fmt.Fprintf(w, "input  %d: %s\n", i, InfoOf(m, int(i)))
	}
	for _, i := range sg.Outputs {
		fmt.Fprintf(w, "output %d: %s\n", i, InfoOf(m, int(i)))
	}
	counts := map[string]int{}
	for _, op := range sg.Operators {
		oc := m.OperatorCodes[op.OpcodeIndex]
		name := oc.Builtin.String()
		if oc.Custom != "" {
			name = "CUSTOM:" + oc.Custom
		}
		key := fmt.Sprintf("%s v%d", name, oc.Version)
		if mv, ok := supported[oc.Builtin]; !ok || oc.Version > mv || oc.Custom != "" {
			key += " (not supported by the Go engine)"
		}
		counts[key]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "operators:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %4d  %s\n", counts[k], k)
	}
	if !tensors {
		return nil
	}
	producer := make(map[int32]int)
	for oi, op := range sg.Operators {
		for _, o := range op.Outputs {
			producer[o] = oi
		}
	}
	fmt.Fprintln(w, "tensors (index, name, shape, type, quantization, producer):")
	for i := range sg.Tensors {
		info := InfoOf(m, i)
		q := "-"
		switch {
		case len(info.Scale) == 1:
			q = fmt.Sprintf("scale=%g zp=%d", info.Scale[0], info.ZeroPoint[0])
		case len(info.Scale) > 1:
			q = fmt.Sprintf("per-channel(%d, axis %d)", len(info.Scale), info.QuantDim)
		}
		prod := "input"
		if oi, ok := producer[int32(i)]; ok {
			prod = fmt.Sprintf("op %d %v", oi, m.OperatorCodes[sg.Operators[oi].OpcodeIndex].Builtin)
		} else if sg.Tensors[i].Buffer != 0 && len(m.Buffers[sg.Tensors[i].Buffer]) > 0 {
			prod = "constant"
		}
		fmt.Fprintf(w, "%5d  %s  %v  %v  %s  %s\n", i, info.Name, info.Shape, info.Type, q, prod)
	}
	return nil
}

// MACs counts the multiply-accumulates of one forward pass through the
// convolutions and fully connected layers of m (the work GMAC/s figures are
// measured against): output elements × filter taps per output.
func MACs(m *tflite.Model) int64 {
	var total int64
	for i := range m.Subgraphs[0].Operators {
		total += OpMACs(m, i)
	}
	return total
}

// OpMACs is the multiply-accumulate count of operator i of subgraph 0
// (convolutions and fully connected layers; 0 for other operators).
func OpMACs(m *tflite.Model, i int) int64 {
	sg := &m.Subgraphs[0]
	op := &sg.Operators[i]
	if len(op.Inputs) < 2 || len(op.Outputs) < 1 || op.Inputs[1] < 0 {
		return 0
	}
	out := int64(1)
	for _, d := range sg.Tensors[op.Outputs[0]].Shape {
		out *= int64(d)
	}
	f := sg.Tensors[op.Inputs[1]].Shape
	switch m.OperatorCodes[op.OpcodeIndex].Builtin {
	case tflite.OpConv2D: // filter [cout, kh, kw, cin]
		if len(f) == 4 {
			return out * int64(f[1]) * int64(f[2]) * int64(f[3])
		}
	case tflite.OpDepthwiseConv: // filter [1, kh, kw, cout]
		if len(f) == 4 {
			return out * int64(f[1]) * int64(f[2])
		}
	case tflite.OpFullyConnected: // filter [out, in]
		if len(f) == 2 {
			return out * int64(f[1])
		}
	}
	return 0
}

// AtInputSize returns a copy of m whose input is height×width instead of the
// size stored in the file, with the shape of every tensor on the way to the
// taps (names as for FindTensor; empty: the model's outputs) computed again
// for it: convolutions, depthwise convolutions and pools by their padding
// rule, PAD by its paddings, element-wise ops by broadcasting, CONCATENATION
// along its axis, MEAN over its axes. A fully convolutional backbone does not
// care about its input size, so the same weights give feature maps on a
// non-square or larger grid. An operator on the way to the taps whose output
// depends on the stored size (RESHAPE to a fixed shape, FULLY_CONNECTED over
// a flattened map, or any operator not listed) is refused with an error that
// names it: choose taps before it, or keep the stored size. Operators after
// the taps keep their stored shapes (they are not run). Weights, buffers and
// operators are shared with m; the copy's tensors are its own.
func AtInputSize(m *tflite.Model, taps []string, height, width int) (*tflite.Model, error) {
	sg := &m.Subgraphs[0]
	if len(sg.Inputs) != 1 {
		return nil, fmt.Errorf("model: subgraph 0 has %d inputs; resizing needs exactly one", len(sg.Inputs))
	}
	in := sg.Tensors[sg.Inputs[0]].Shape
	if len(in) != 4 {
		return nil, fmt.Errorf("model: input shape %v is not NHWC", in)
	}
	const maxSide = 1 << 14
	if height <= 0 || width <= 0 || height > maxSide || width > maxSide {
		return nil, fmt.Errorf("model: input size %dx%d outside 1..%d", width, height, maxSide)
	}
	c := *m
	c.Subgraphs = append([]tflite.Subgraph(nil), m.Subgraphs...)
	csg := &c.Subgraphs[0]
	csg.Tensors = append([]tflite.Tensor(nil), sg.Tensors...)
	changed := make([]bool, len(csg.Tensors))
	set := func(i int32, shape []int32) {
		t := &csg.Tensors[i]
		if slicesEqual32(t.Shape, shape) {
			return
		}
		t.Shape, t.ShapeSignature = shape, nil
		changed[i] = true
	}
	set(sg.Inputs[0], []int32{in[0], int32(height), int32(width), in[3]})

	needed, err := neededOps(m, taps)
	if err != nil {
		return nil, err
	}
	for oi := range csg.Operators {
		op := &csg.Operators[oi]
		dirty := false
		for _, x := range op.Inputs {
			if x >= 0 && changed[x] {
				dirty = true
			}
		}
		if !dirty || !needed[oi] {
			continue
		}
		code := m.OperatorCodes[op.OpcodeIndex].Builtin
		shape, err := outputShape(&c, op, code)
		if err != nil {
			return nil, fmt.Errorf("model: at input %dx%d, operator %d (%v) on the way to the taps: %w", width, height, oi, code, err)
		}
		if len(op.Outputs) > 0 {
			set(op.Outputs[0], shape)
		}
	}
	return &c, nil
}

// neededOps marks the operators that feed the taps (the model's outputs when
// taps is empty), walking back from them as the engine prunes.
func neededOps(m *tflite.Model, taps []string) ([]bool, error) {
	sg := &m.Subgraphs[0]
	need := make([]bool, len(sg.Tensors))
	if len(taps) == 0 {
		for _, o := range sg.Outputs {
			need[o] = true
		}
	}
	for _, name := range taps {
		i, err := FindTensor(m, name)
		if err != nil {
			return nil, err
		}
		need[i] = true
	}
	run := make([]bool, len(sg.Operators))
	for oi := len(sg.Operators) - 1; oi >= 0; oi-- {
		for _, o := range sg.Operators[oi].Outputs {
			if o >= 0 && need[o] {
				run[oi] = true
			}
		}
		if run[oi] {
			for _, x := range sg.Operators[oi].Inputs {
				if x >= 0 {
					need[x] = true
				}
			}
		}
	}
	return run, nil
}

// errStoredSize is why an operator cannot follow a new input size.
var errStoredSize = fmt.Errorf("its output depends on the model's stored input size; tap the feature maps before it or keep the stored size")

// outputShape computes output 0 of op from its (already re-planned) inputs.
func outputShape(m *tflite.Model, op *tflite.Operator, code tflite.BuiltinOp) ([]int32, error) {
	sg := &m.Subgraphs[0]
	shape := func(i int) ([]int32, error) {
		if i >= len(op.Inputs) || op.Inputs[i] < 0 {
			return nil, fmt.Errorf("input %d is missing", i)
		}
		return sg.Tensors[op.Inputs[i]].Shape, nil
	}
	x, err := shape(0)
	if err != nil {
		return nil, err
	}
	spatial := func(kh, kw, sh, sw, dh, dw int32, pad tflite.Padding, cout int32) ([]int32, error) {
		if len(x) != 4 {
			return nil, fmt.Errorf("input shape %v is not NHWC", x)
		}
		oh, err := convOut(pad, x[1], kh, sh, dh)
		if err != nil {
			return nil, fmt.Errorf("height: %w", err)
		}
		ow, err := convOut(pad, x[2], kw, sw, dw)
		if err != nil {
			return nil, fmt.Errorf("width: %w", err)
		}
		return []int32{x[0], oh, ow, cout}, nil
	}
	switch code {
	case tflite.OpConv2D, tflite.OpDepthwiseConv:
		f, err := shape(1)
		if err != nil || len(f) != 4 {
			return nil, fmt.Errorf("filter shape %v is not 4-D", f)
		}
		if o, ok := op.Options.(tflite.Conv2DOptions); ok && code == tflite.OpConv2D {
			return spatial(f[1], f[2], o.StrideH, o.StrideW, o.DilationH, o.DilationW, o.Padding, f[0])
		}
		if o, ok := op.Options.(tflite.DepthwiseConv2DOptions); ok && code == tflite.OpDepthwiseConv {
			return spatial(f[1], f[2], o.StrideH, o.StrideW, o.DilationH, o.DilationW, o.Padding, f[3])
		}
		return nil, fmt.Errorf("missing options")
	case tflite.OpAveragePool2D, tflite.OpMaxPool2D:
		o, ok := op.Options.(tflite.Pool2DOptions)
		if !ok || len(x) != 4 {
			return nil, fmt.Errorf("missing options or input %v not NHWC", x)
		}
		return spatial(o.FilterHeight, o.FilterWidth, o.StrideH, o.StrideW, 1, 1, o.Padding, x[3])
	case tflite.OpPad:
		if len(op.Inputs) < 2 || op.Inputs[1] < 0 {
			return nil, fmt.Errorf("paddings are missing")
		}
		pads, err := constInts(m, op.Inputs[1])
		if err != nil || len(pads) != 2*len(x) {
			return nil, fmt.Errorf("paddings must be a constant [%d, 2] tensor", len(x))
		}
		out := make([]int32, len(x))
		for i := range x {
			out[i] = x[i] + int32(pads[2*i]+pads[2*i+1])
		}
		return out, nil
	case tflite.OpAdd, tflite.OpSub, tflite.OpMul:
		y, err := shape(1)
		if err != nil {
			return nil, err
		}
		return broadcast(x, y)
	case tflite.OpQuantize, tflite.OpDequantize, tflite.OpSoftmax, tflite.OpRelu, tflite.OpRelu6,
		tflite.OpLogistic, tflite.OpHardSwish:
		return append([]int32(nil), x...), nil
	case tflite.OpConcatenation:
		o, ok := op.Options.(tflite.ConcatenationOptions)
		if !ok {
			return nil, fmt.Errorf("missing options")
		}
		axis := int(o.Axis)
		if axis < 0 {
			axis += len(x)
		}
		if axis < 0 || axis >= len(x) {
			return nil, fmt.Errorf("axis %d of rank %d", o.Axis, len(x))
		}
		out := append([]int32(nil), x...)
		out[axis] = 0
		for i := range op.Inputs {
			s, err := shape(i)
			if err != nil {
				return nil, err
			}
			if len(s) != len(x) {
				return nil, fmt.Errorf("inputs of ranks %d and %d", len(x), len(s))
			}
			for d := range s {
				if d != axis && s[d] != x[d] {
					return nil, fmt.Errorf("input shapes %v and %v differ off axis %d", x, s, axis)
				}
			}
			out[axis] += s[axis]
		}
		return out, nil
	case tflite.OpMean:
		o, _ := op.Options.(tflite.ReducerOptions)
		if len(op.Inputs) < 2 || op.Inputs[1] < 0 {
			return nil, fmt.Errorf("axes are missing")
		}
		axes, err := constInts(m, op.Inputs[1])
		if err != nil {
			return nil, fmt.Errorf("axes must be constant")
		}
		drop := make([]bool, len(x))
		for _, a := range axes {
			if a < 0 {
				a += int64(len(x))
			}
			if a < 0 || a >= int64(len(x)) {
				return nil, fmt.Errorf("axis %d of rank %d", a, len(x))
			}
			drop[a] = true
		}
		var out []int32
		for d, v := range x {
			switch {
			case !drop[d]:
				out = append(out, v)
			case o.KeepDims:
				out = append(out, 1)
			}
		}
		return out, nil
	}
	return nil, errStoredSize
}

// convOut is TFLite's output size of a window over one axis.
func convOut(pad tflite.Padding, in, k, stride, dilation int32) (int32, error) {
	if stride <= 0 || dilation <= 0 || k <= 0 {
		return 0, fmt.Errorf("stride %d, dilation %d, window %d must be positive", stride, dilation, k)
	}
	eff := (k-1)*dilation + 1
	var out int32
	switch pad {
	case tflite.PaddingSame:
		out = (in + stride - 1) / stride
	case tflite.PaddingValid:
		out = (in - eff + stride) / stride
	default:
		return 0, fmt.Errorf("padding %v", pad)
	}
	if out <= 0 {
		return 0, fmt.Errorf("input size %d is smaller than the window (%d)", in, eff)
	}
	return out, nil
}

// broadcast is numpy's broadcasting of two shapes.
func broadcast(a, b []int32) ([]int32, error) {
	n := max(len(a), len(b))
	out := make([]int32, n)
	for i := 0; i < n; i++ {
		x, y := int32(1), int32(1)
		if k := len(a) - n + i; k >= 0 {
			x = a[k]
		}
		if k := len(b) - n + i; k >= 0 {
			y = b[k]
		}
		switch {
		case x == y || y == 1:
			out[i] = x
		case x == 1:
			out[i] = y
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// constInts reads a constant INT32 or INT64 tensor.
func constInts(m *tflite.Model, i int32) ([]int64, error) {
	t := &m.Subgraphs[0].Tensors[i]
	data := m.Buffers[t.Buffer]
	var out []int64
	switch t.Type {
	case tflite.Int32:
		for k := 0; k+4 <= len(data); k += 4 {
			out = append(out, int64(int32(binary.LittleEndian.Uint32(data[k:]))))
		}
	case tflite.Int64:
		for k := 0; k+8 <= len(data); k += 8 {
			out = append(out, int64(binary.LittleEndian.Uint64(data[k:])))
		}
	default:
		return nil, fmt.Errorf("%v is not an integer type", t.Type)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("not constant")
	}
	return out, nil
}

func slicesEqual32(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
