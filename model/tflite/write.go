package tflite

import (
	"fmt"
	"os"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/linesight/linesight/model/tflite/internal/fb"
)

// Write encodes a model as a .tflite file. The model is validated first.
// Operator codes are written in both the deprecated byte field and the
// extended field, so that old runtimes (TensorFlow Lite 2.2, which reads only
// the byte) and new ones agree on the op.
func Write(m *Model) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	mt, err := toFB(m)
	if err != nil {
		return nil, err
	}
	return packUnchecked(mt), nil
}

// WriteFile writes a model to path.
func WriteFile(path string, m *Model) error {
	b, err := Write(m)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("tflite: %w", err)
	}
	return nil
}

func toFB(m *Model) (*fb.ModelT, error) {
	mt := &fb.ModelT{Version: m.Version, Description: m.Description, MetadataBuffer: m.MetadataBuffer}
	for _, oc := range m.OperatorCodes {
		dep := oc.Builtin
		if dep > 127 {
			dep = 127 // PLACEHOLDER_FOR_GREATER_OP_CODES
		}
		mt.OperatorCodes = append(mt.OperatorCodes, &fb.OperatorCodeT{
			DeprecatedBuiltinCode: int8(dep), BuiltinCode: fb.BuiltinOperator(oc.Builtin),
			CustomCode: oc.Custom, Version: oc.Version})
	}
	for _, data := range m.Buffers {
		mt.Buffers = append(mt.Buffers, &fb.BufferT{Data: data})
	}
	for _, md := range m.Metadata {
		mt.Metadata = append(mt.Metadata, &fb.MetadataT{Name: md.Name, Buffer: md.Buffer})
	}
	for si := range m.Subgraphs {
		s := &m.Subgraphs[si]
		st := &fb.SubGraphT{Name: s.Name, Inputs: s.Inputs, Outputs: s.Outputs}
		for _, t := range s.Tensors {
			tt := &fb.TensorT{Shape: t.Shape, ShapeSignature: t.ShapeSignature, HasRank: t.HasRank,
				Type: fb.TensorType(t.Type), Buffer: t.Buffer, Name: t.Name, IsVariable: t.IsVariable}
			if q := t.Quant; q != nil {
				tt.Quantization = &fb.QuantizationParametersT{Min: q.Min, Max: q.Max, Scale: q.Scale,
					ZeroPoint: q.ZeroPoint, QuantizedDimension: q.QuantizedDimension}
			}
			st.Tensors = append(st.Tensors, tt)
		}
		for oi, o := range s.Operators {
			u, err := optionsToFB(o.Options)
			if err != nil {
				return nil, fmt.Errorf("subgraph %d: operator %d: %w", si, oi, err)
			}
			st.Operators = append(st.Operators, &fb.OperatorT{OpcodeIndex: o.OpcodeIndex, Inputs: o.Inputs,
				Outputs: o.Outputs, BuiltinOptions: u, CustomOptions: o.CustomOptions,
				MutatingVariableInputs: o.MutatingVariableInputs, Intermediates: o.Intermediates})
		}
		mt.Subgraphs = append(mt.Subgraphs, st)
	}
	return mt, nil
}

func optionsToFB(o Options) (*fb.BuiltinOptionsT, error) {
	var v interface{}
	switch o := o.(type) {
	case nil:
		return nil, nil
	case Conv2DOptions:
		v = &fb.Conv2DOptionsT{Padding: fb.Padding(o.Padding), StrideW: o.StrideW, StrideH: o.StrideH,
			FusedActivationFunction: fb.ActivationFunctionType(o.Activation), DilationWFactor: o.DilationW,
			DilationHFactor: o.DilationH, QuantizedBiasType: fb.TensorType(o.QuantizedBiasType)}
	case DepthwiseConv2DOptions:
		v = &fb.DepthwiseConv2DOptionsT{Padding: fb.Padding(o.Padding), StrideW: o.StrideW, StrideH: o.StrideH,
			DepthMultiplier: o.DepthMultiplier, FusedActivationFunction: fb.ActivationFunctionType(o.Activation),
			DilationWFactor: o.DilationW, DilationHFactor: o.DilationH}
	case Pool2DOptions:
		v = &fb.Pool2DOptionsT{Padding: fb.Padding(o.Padding), StrideW: o.StrideW, StrideH: o.StrideH,
			FilterWidth: o.FilterWidth, FilterHeight: o.FilterHeight,
			FusedActivationFunction: fb.ActivationFunctionType(o.Activation)}
	case FullyConnectedOptions:
		v = &fb.FullyConnectedOptionsT{FusedActivationFunction: fb.ActivationFunctionType(o.Activation),
			WeightsFormat: fb.FullyConnectedOptionsWeightsFormat(o.WeightsFormat), KeepNumDims: o.KeepNumDims,
			AsymmetricQuantizeInputs: o.AsymmetricQuantizeInputs, QuantizedBiasType: fb.TensorType(o.QuantizedBiasType)}
	case SoftmaxOptions:
		v = &fb.SoftmaxOptionsT{Beta: o.Beta}
	case ConcatenationOptions:
		v = &fb.ConcatenationOptionsT{Axis: o.Axis, FusedActivationFunction: fb.ActivationFunctionType(o.Activation)}
	case AddOptions:
		v = &fb.AddOptionsT{FusedActivationFunction: fb.ActivationFunctionType(o.Activation), PotScaleInt16: o.PotScaleInt16}
	case ResizeBilinearOptions:
		v = &fb.ResizeBilinearOptionsT{AlignCorners: o.AlignCorners, HalfPixelCenters: o.HalfPixelCenters}
	case ReshapeOptions:
		v = &fb.ReshapeOptionsT{NewShape: o.NewShape}
	case ReducerOptions:
		v = &fb.ReducerOptionsT{KeepDims: o.KeepDims}
	case PadOptions:
		v = &fb.PadOptionsT{}
	case QuantizeOptions:
		v = &fb.QuantizeOptionsT{}
	case DequantizeOptions:
		v = &fb.DequantizeOptionsT{}
	default:
		return nil, fmt.Errorf("%w: cannot write options of union type %d, which Linesight does not model", ErrUnsupported, o.optionsType())
	}
	return &fb.BuiltinOptionsT{Type: fb.BuiltinOptions(o.optionsType()), Value: v}, nil
}

// packUnchecked encodes without validation; tests use it to hand the reader
// broken models.
func packUnchecked(mt *fb.ModelT) []byte {
	b := flatbuffers.NewBuilder(1 << 16)
	b.FinishWithFileIdentifier(mt.Pack(b), []byte("TFL3"))
	return b.FinishedBytes()
}
