package model

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/linesight/linesight/model/tflite"
)

// Backbone runs a model on one input and hands out named tensors: the taps
// asked for (feature maps), or the model's outputs when none were asked for.
// The pure-Go engine (package model/engine) and the optional TensorFlow
// Lite C backend (package model/tflitec, build tag "tflite") both implement
// it.
type Backbone interface {
	// Input describes the input tensor.
	Input() TensorInfo
	// SetInput copies raw input bytes in the input tensor's own type
	// (little-endian for float32).
	SetInput(raw []byte) error
	// Invoke runs the graph up to the last tap.
	Invoke() error
	// Outputs describes the taps, in the order they were asked for.
	Outputs() []TensorInfo
	// ReadOutput copies tap i in its own type into dst, which must hold
	// Outputs()[i].Bytes() bytes.
	ReadOutput(i int, dst []byte) error
	// Close releases the backbone's resources.
	Close() error
}

// TensorInfo describes a tensor: name, shape, type and quantization.
type TensorInfo struct {
	Index     int // index in subgraph 0
	Name      string
	Shape     []int
	Type      tflite.TensorType
	Scale     []float32 // empty for float tensors
	ZeroPoint []int64
	QuantDim  int // axis of per-channel quantization when len(Scale) > 1
}

// Elements is the number of elements.
func (t TensorInfo) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Bytes is the size of the tensor's data in its own type.
func (t TensorInfo) Bytes() int { return t.Elements() * t.Type.Size() }

// Dequantize returns the real value of a quantized element q stored at flat
// index i (per-channel quantization looks up i's channel).
func (t TensorInfo) Dequantize(i int, q int64) float32 {
	if len(t.Scale) == 0 {
		return float32(q)
	}
	c := 0
	if len(t.Scale) > 1 {
		inner := 1
		for _, d := range t.Shape[t.QuantDim+1:] {
			inner *= d
		}
		c = (i / inner) % t.Shape[t.QuantDim]
	}
	zp := int64(0)
	if len(t.ZeroPoint) > c {
		zp = t.ZeroPoint[c]
	}
	return t.Scale[c] * float32(q-zp)
}

func (t TensorInfo) String() string {
	q := ""
	if len(t.Scale) == 1 {
		q = fmt.Sprintf(" scale=%g zp=%d", t.Scale[0], t.ZeroPoint[0])
	} else if len(t.Scale) > 1 {
		q = fmt.Sprintf(" per-channel(%d along axis %d)", len(t.Scale), t.QuantDim)
	}
	return fmt.Sprintf("%q %v %v%s", t.Name, t.Shape, t.Type, q)
}

// InfoOf describes tensor i of subgraph 0 of m.
func InfoOf(m *tflite.Model, i int) TensorInfo {
	t := &m.Subgraphs[0].Tensors[i]
	info := TensorInfo{Index: i, Name: t.Name, Type: t.Type, Shape: make([]int, len(t.Shape))}
	for k, d := range t.Shape {
		info.Shape[k] = int(d)
	}
	if t.Quant != nil && len(t.Quant.Scale) > 0 {
		info.Scale = t.Quant.Scale
		info.ZeroPoint = t.Quant.ZeroPoint
		if len(info.ZeroPoint) == 0 {
			info.ZeroPoint = make([]int64, len(info.Scale))
		}
		info.QuantDim = int(t.Quant.QuantizedDimension)
	}
	return info
}

// FindTensor returns the index of the tensor of subgraph 0 named name.
// Converters join the names of fused ops with ';' (MLIR writes
// "a/relu6;a/batch_norm;..."), so a name that equals one ';'-separated part
// of exactly one tensor's name finds that tensor too: users can write the
// short, readable part.
//
// "#N" is tensor N by index (as `model info --tensors` numbers them), since
// converter-made names run to hundreds of characters.
func FindTensor(m *tflite.Model, name string) (int, error) {
	if name == "" {
		return 0, fmt.Errorf("model: empty tensor name")
	}
	if rest, ok := strings.CutPrefix(name, "#"); ok {
		i, err := strconv.Atoi(rest)
		if err != nil || i < 0 || i >= len(m.Subgraphs[0].Tensors) {
			return 0, fmt.Errorf("model: tensor index %q: the model has tensors #0..#%d", name, len(m.Subgraphs[0].Tensors)-1)
		}
		return i, nil
	}
	exact, part := -1, -1
	for i := range m.Subgraphs[0].Tensors {
		tn := m.Subgraphs[0].Tensors[i].Name
		if tn == name {
			if exact >= 0 {
				return 0, fmt.Errorf("model: tensor name %q is used by tensors %d and %d", name, exact, i)
			}
			exact = i
			continue
		}
		if strings.Contains(tn, ";") && slices.Contains(strings.Split(tn, ";"), name) {
			if part >= 0 {
				return 0, fmt.Errorf("model: tensor name part %q belongs to tensors %d and %d; give the full name", name, part, i)
			}
			part = i
		}
	}
	switch {
	case exact >= 0:
		return exact, nil
	case part >= 0:
		return part, nil
	}
	return 0, fmt.Errorf("model: no tensor named %q (see `linesight model info --tensors`)", name)
}

// WithOutputs returns a copy of m whose subgraph 0 outputs are the given
// tensors, so that a runtime that only exposes outputs (TensorFlow Lite)
// hands out intermediate tensors too. Tensors, operators and buffers are shared.
func WithOutputs(m *tflite.Model, tensors []int) *tflite.Model {
	c := *m
	c.Subgraphs = append([]tflite.Subgraph(nil), m.Subgraphs...)
	outs := make([]int32, len(tensors))
	for i, t := range tensors {
		outs[i] = int32(t)
	}
	c.Subgraphs[0].Outputs = outs
	return &c
}
