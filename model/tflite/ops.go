package tflite

import "fmt"

// BuiltinOp is a builtin operator code of the schema.
type BuiltinOp int32

// The builtin operators Linesight names. Other codes are kept as numbers.
const (
	OpAdd            BuiltinOp = 0
	OpAveragePool2D  BuiltinOp = 1
	OpConcatenation  BuiltinOp = 2
	OpConv2D         BuiltinOp = 3
	OpDepthwiseConv  BuiltinOp = 4
	OpDequantize     BuiltinOp = 6
	OpFullyConnected BuiltinOp = 9
	OpLogistic       BuiltinOp = 14
	OpMaxPool2D      BuiltinOp = 17
	OpMul            BuiltinOp = 18
	OpRelu           BuiltinOp = 19
	OpRelu6          BuiltinOp = 21
	OpReshape        BuiltinOp = 22
	OpResizeBilinear BuiltinOp = 23
	OpSoftmax        BuiltinOp = 25
	OpCustom         BuiltinOp = 32
	OpPad            BuiltinOp = 34
	OpMean           BuiltinOp = 40
	OpSub            BuiltinOp = 41
	OpSqueeze        BuiltinOp = 43
	OpQuantize       BuiltinOp = 114
	OpHardSwish      BuiltinOp = 117
)

var opNames = map[BuiltinOp]string{
	OpAdd: "ADD", OpAveragePool2D: "AVERAGE_POOL_2D", OpConcatenation: "CONCATENATION",
	OpConv2D: "CONV_2D", OpDepthwiseConv: "DEPTHWISE_CONV_2D", OpDequantize: "DEQUANTIZE",
	OpFullyConnected: "FULLY_CONNECTED", OpLogistic: "LOGISTIC", OpMaxPool2D: "MAX_POOL_2D",
	OpMul: "MUL", OpRelu: "RELU", OpRelu6: "RELU6", OpReshape: "RESHAPE",
	OpResizeBilinear: "RESIZE_BILINEAR", OpSoftmax: "SOFTMAX", OpCustom: "CUSTOM", OpPad: "PAD",
	OpMean: "MEAN", OpSub: "SUB", OpSqueeze: "SQUEEZE", OpQuantize: "QUANTIZE",
	OpHardSwish: "HARD_SWISH",
}

func (o BuiltinOp) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("BUILTIN_%d", int32(o))
}

// Options are the builtin options of an operator: one of the *Options types
// of this package.
type Options interface{ optionsType() uint8 }

// Union type numbers of the BuiltinOptions union (schema order, 1-based).
const (
	utConv2D         = 1
	utDepthwiseConv  = 2
	utPool2D         = 5
	utFullyConnected = 8
	utSoftmax        = 9
	utConcatenation  = 10
	utAdd            = 11
	utResizeBilinear = 15
	utReshape        = 17
	utPad            = 22
	utReducer        = 27
	utDequantize     = 38
	utQuantize       = 89
)

// Conv2DOptions configure CONV_2D.
type Conv2DOptions struct {
	Padding              Padding
	StrideW, StrideH     int32
	DilationW, DilationH int32
	Activation           Activation
	QuantizedBiasType    TensorType
}

// DepthwiseConv2DOptions configure DEPTHWISE_CONV_2D.
type DepthwiseConv2DOptions struct {
	Padding              Padding
	StrideW, StrideH     int32
	DepthMultiplier      int32
	DilationW, DilationH int32
	Activation           Activation
}

// Pool2DOptions configure AVERAGE_POOL_2D and MAX_POOL_2D.
type Pool2DOptions struct {
	Padding                   Padding
	StrideW, StrideH          int32
	FilterWidth, FilterHeight int32
	Activation                Activation
}

// FullyConnectedOptions configure FULLY_CONNECTED.
type FullyConnectedOptions struct {
	Activation               Activation
	WeightsFormat            int8 // 0 = DEFAULT, 1 = SHUFFLED4x16INT8
	KeepNumDims              bool
	AsymmetricQuantizeInputs bool
	QuantizedBiasType        TensorType
}

// SoftmaxOptions configure SOFTMAX.
type SoftmaxOptions struct{ Beta float32 }

// ConcatenationOptions configure CONCATENATION.
type ConcatenationOptions struct {
	Axis       int32
	Activation Activation
}

// AddOptions configure ADD.
type AddOptions struct {
	Activation    Activation
	PotScaleInt16 bool
}

// ResizeBilinearOptions configure RESIZE_BILINEAR.
type ResizeBilinearOptions struct {
	AlignCorners     bool
	HalfPixelCenters bool
}

// ReshapeOptions configure RESHAPE (the shape may instead come as input 1).
type ReshapeOptions struct{ NewShape []int32 }

// ReducerOptions configure MEAN and the other reductions.
type ReducerOptions struct{ KeepDims bool }

// PadOptions, QuantizeOptions and DequantizeOptions carry no fields; files
// may still hold the empty table.
type (
	PadOptions        struct{}
	QuantizeOptions   struct{}
	DequantizeOptions struct{}
)

// OpaqueOptions stands for options of operators Linesight does not model.
// They can be read but not written back.
type OpaqueOptions struct{ Type uint8 }

func (Conv2DOptions) optionsType() uint8          { return utConv2D }
func (DepthwiseConv2DOptions) optionsType() uint8 { return utDepthwiseConv }
func (Pool2DOptions) optionsType() uint8          { return utPool2D }
func (FullyConnectedOptions) optionsType() uint8  { return utFullyConnected }
func (SoftmaxOptions) optionsType() uint8         { return utSoftmax }
func (ConcatenationOptions) optionsType() uint8   { return utConcatenation }
func (AddOptions) optionsType() uint8             { return utAdd }
func (ResizeBilinearOptions) optionsType() uint8  { return utResizeBilinear }
func (ReshapeOptions) optionsType() uint8         { return utReshape }
func (PadOptions) optionsType() uint8             { return utPad }
func (ReducerOptions) optionsType() uint8         { return utReducer }
func (DequantizeOptions) optionsType() uint8      { return utDequantize }
func (QuantizeOptions) optionsType() uint8        { return utQuantize }
func (o OpaqueOptions) optionsType() uint8        { return o.Type }
