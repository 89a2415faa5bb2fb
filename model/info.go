package model

import (
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
