package tflite

import "fmt"

// TensorType is the element type of a tensor, with the values of the schema.
type TensorType int8

// Tensor types. Only FLOAT32, INT32, UINT8, INT8 and INT64 are computed with;
// the rest are named so that errors can say what a file holds.
const (
	Float32    TensorType = 0
	Float16    TensorType = 1
	Int32      TensorType = 2
	Uint8      TensorType = 3
	Int64      TensorType = 4
	String     TensorType = 5
	Bool       TensorType = 6
	Int16      TensorType = 7
	Complex64  TensorType = 8
	Int8       TensorType = 9
	Float64    TensorType = 10
	Complex128 TensorType = 11
	Uint64     TensorType = 12
	Resource   TensorType = 13
	Variant    TensorType = 14
	Uint32     TensorType = 15
	Uint16     TensorType = 16
	Int4       TensorType = 17
)

var typeNames = [...]string{"FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64", "STRING", "BOOL",
	"INT16", "COMPLEX64", "INT8", "FLOAT64", "COMPLEX128", "UINT64", "RESOURCE", "VARIANT",
	"UINT32", "UINT16", "INT4"}

func (t TensorType) String() string {
	if t >= 0 && int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("TensorType(%d)", int8(t))
}

// Size is the size of one element in bytes, or 0 for types without a fixed
// size (STRING, RESOURCE, VARIANT, and INT4, which packs two per byte).
func (t TensorType) Size() int {
	switch t {
	case Uint8, Int8, Bool:
		return 1
	case Float16, Int16, Uint16:
		return 2
	case Float32, Int32, Uint32:
		return 4
	case Int64, Float64, Complex64, Uint64:
		return 8
	case Complex128:
		return 16
	}
	return 0
}

// Padding is the padding rule of convolutions and pools.
type Padding int8

// Padding values of the schema.
const (
	PaddingSame  Padding = 0
	PaddingValid Padding = 1
)

func (p Padding) String() string {
	switch p {
	case PaddingSame:
		return "SAME"
	case PaddingValid:
		return "VALID"
	}
	return fmt.Sprintf("Padding(%d)", int8(p))
}

// Activation is a fused activation function.
type Activation int8

// Fused activations of the schema.
const (
	ActNone      Activation = 0
	ActRelu      Activation = 1
	ActReluN1To1 Activation = 2
	ActRelu6     Activation = 3
	ActTanh      Activation = 4
	ActSignBit   Activation = 5
)

func (a Activation) String() string {
	switch a {
	case ActNone:
		return "NONE"
	case ActRelu:
		return "RELU"
	case ActReluN1To1:
		return "RELU_N1_TO_1"
	case ActRelu6:
		return "RELU6"
	case ActTanh:
		return "TANH"
	case ActSignBit:
		return "SIGN_BIT"
	}
	return fmt.Sprintf("Activation(%d)", int8(a))
}

// Model is a decoded .tflite file. Byte slices in it (buffer data, custom
// options) may alias the bytes it was read from: treat them as read-only.
type Model struct {
	Version        uint32
	Description    string
	OperatorCodes  []OperatorCode
	Subgraphs      []Subgraph
	Buffers        [][]byte // Buffers[0] is the empty sentinel
	MetadataBuffer []int32
	Metadata       []Metadata
}

// OperatorCode names an operator and its version.
type OperatorCode struct {
	Builtin BuiltinOp // the larger of the deprecated and the extended code
	Custom  string
	Version int32
}

// Metadata names a buffer of model metadata.
type Metadata struct {
	Name   string
	Buffer uint32
}

// Subgraph is one graph of the model; subgraph 0 is the main one.
type Subgraph struct {
	Name      string
	Tensors   []Tensor
	Inputs    []int32
	Outputs   []int32
	Operators []Operator
}

// Tensor describes one tensor of a subgraph.
type Tensor struct {
	Name           string
	Shape          []int32
	ShapeSignature []int32
	HasRank        bool
	Type           TensorType
	Buffer         uint32 // index into Model.Buffers; 0 = no constant data
	Quant          *Quantization
	IsVariable     bool
}

// Quantization holds the affine quantization f = Scale*(q - ZeroPoint), per
// tensor (one scale) or per slice along QuantizedDimension.
type Quantization struct {
	Min, Max           []float32
	Scale              []float32
	ZeroPoint          []int64
	QuantizedDimension int32
}

// Operator is one node of a subgraph.
type Operator struct {
	OpcodeIndex            uint32
	Inputs                 []int32 // -1 = absent optional input
	Outputs                []int32
	Options                Options // nil when the operator has none
	CustomOptions          []byte
	MutatingVariableInputs []bool
	Intermediates          []int32
}

// NumElements returns the element count of a shape, or an error when a
// dimension is negative or the count overflows int.
func NumElements(shape []int32) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("dimension %d is %d", i, d)
		}
		if d != 0 && n > maxElements/int(d) {
			return 0, fmt.Errorf("shape %v has more than %d elements", shape, maxElements)
		}
		n *= int(d)
	}
	return n, nil
}

// maxElements caps tensor sizes so that byte counts never overflow, on 32-bit
// targets too.
const maxElements = 1 << 28
