package tflite

import (
	"fmt"
	"math"
	"os"

	"github.com/linesight/linesight/model/tflite/internal/fb"
)

// ReadFile reads and validates a .tflite file.
func ReadFile(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tflite: %w", err)
	}
	m, err := Read(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Read decodes and validates a .tflite file held in b. The returned model's
// buffers alias b.
func Read(b []byte) (*Model, error) {
	if err := verify(b); err != nil {
		return nil, err
	}
	if string(b[4:8]) != "TFL3" {
		return nil, fmt.Errorf("%w: file identifier is %q, want \"TFL3\"", ErrNotTFLite, b[4:8])
	}
	mt := fb.GetRootAsModel(b, 0).UnPack()
	m, err := fromFB(mt)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func fromFB(mt *fb.ModelT) (*Model, error) {
	m := &Model{Version: mt.Version, Description: mt.Description, MetadataBuffer: nz(mt.MetadataBuffer)}
	for i, oc := range mt.OperatorCodes {
		if oc == nil {
			return nil, fmt.Errorf("%w: operator code %d is missing", ErrMalformed, i)
		}
		op := BuiltinOp(oc.BuiltinCode)
		if d := BuiltinOp(oc.DeprecatedBuiltinCode); d > op {
			op = d
		}
		m.OperatorCodes = append(m.OperatorCodes, OperatorCode{Builtin: op, Custom: oc.CustomCode, Version: oc.Version})
	}
	for i, b := range mt.Buffers {
		if b == nil {
			m.Buffers = append(m.Buffers, nil)
			continue
		}
		if b.Offset > 1 || b.Size > 0 {
			return nil, fmt.Errorf("%w: buffer %d is stored outside the flatbuffer (offset %d, size %d)", ErrUnsupported, i, b.Offset, b.Size)
		}
		m.Buffers = append(m.Buffers, nz(b.Data))
	}
	for _, md := range mt.Metadata {
		if md != nil {
			m.Metadata = append(m.Metadata, Metadata{Name: md.Name, Buffer: md.Buffer})
		}
	}
	for si, sg := range mt.Subgraphs {
		if sg == nil {
			return nil, fmt.Errorf("%w: subgraph %d is missing", ErrMalformed, si)
		}
		s := Subgraph{Name: sg.Name, Inputs: nz(sg.Inputs), Outputs: nz(sg.Outputs)}
		for ti, t := range sg.Tensors {
			if t == nil {
				return nil, fmt.Errorf("%w: subgraph %d: tensor %d is missing", ErrMalformed, si, ti)
			}
			if t.Sparsity != nil {
				return nil, fmt.Errorf("%w: subgraph %d: tensor %d (%q) is sparse", ErrUnsupported, si, ti, t.Name)
			}
			if len(t.VariantTensors) > 0 {
				return nil, fmt.Errorf("%w: subgraph %d: tensor %d (%q) has variant sub-types", ErrUnsupported, si, ti, t.Name)
			}
			tt := Tensor{Name: t.Name, Shape: nz(t.Shape), ShapeSignature: nz(t.ShapeSignature), HasRank: t.HasRank,
				Type: TensorType(t.Type), Buffer: t.Buffer, IsVariable: t.IsVariable}
			if q := t.Quantization; q != nil {
				if q.Details != nil && q.Details.Type != fb.QuantizationDetailsNONE {
					return nil, fmt.Errorf("%w: subgraph %d: tensor %d (%q) uses custom quantization", ErrUnsupported, si, ti, t.Name)
				}
				if len(q.Scale) > 0 || len(q.ZeroPoint) > 0 || len(q.Min) > 0 || len(q.Max) > 0 {
					tt.Quant = &Quantization{Min: nz(q.Min), Max: nz(q.Max), Scale: nz(q.Scale), ZeroPoint: nz(q.ZeroPoint), QuantizedDimension: q.QuantizedDimension}
				}
			}
			s.Tensors = append(s.Tensors, tt)
		}
		for oi, o := range sg.Operators {
			if o == nil {
				return nil, fmt.Errorf("%w: subgraph %d: operator %d is missing", ErrMalformed, si, oi)
			}
			s.Operators = append(s.Operators, Operator{OpcodeIndex: o.OpcodeIndex, Inputs: nz(o.Inputs), Outputs: nz(o.Outputs),
				Options: optionsFromFB(o.BuiltinOptions), CustomOptions: nz(o.CustomOptions),
				MutatingVariableInputs: nz(o.MutatingVariableInputs), Intermediates: nz(o.Intermediates)})
		}
		m.Subgraphs = append(m.Subgraphs, s)
	}
	return m, nil
}

func optionsFromFB(u *fb.BuiltinOptionsT) Options {
	if u == nil || u.Type == fb.BuiltinOptionsNONE {
		return nil
	}
	switch v := u.Value.(type) {
	case *fb.Conv2DOptionsT:
		return Conv2DOptions{Padding: Padding(v.Padding), StrideW: v.StrideW, StrideH: v.StrideH,
			DilationW: v.DilationWFactor, DilationH: v.DilationHFactor,
			Activation: Activation(v.FusedActivationFunction), QuantizedBiasType: TensorType(v.QuantizedBiasType)}
	case *fb.DepthwiseConv2DOptionsT:
		return DepthwiseConv2DOptions{Padding: Padding(v.Padding), StrideW: v.StrideW, StrideH: v.StrideH,
			DepthMultiplier: v.DepthMultiplier, DilationW: v.DilationWFactor, DilationH: v.DilationHFactor,
			Activation: Activation(v.FusedActivationFunction)}
	case *fb.Pool2DOptionsT:
		return Pool2DOptions{Padding: Padding(v.Padding), StrideW: v.StrideW, StrideH: v.StrideH,
			FilterWidth: v.FilterWidth, FilterHeight: v.FilterHeight, Activation: Activation(v.FusedActivationFunction)}
	case *fb.FullyConnectedOptionsT:
		return FullyConnectedOptions{Activation: Activation(v.FusedActivationFunction), WeightsFormat: int8(v.WeightsFormat),
			KeepNumDims: v.KeepNumDims, AsymmetricQuantizeInputs: v.AsymmetricQuantizeInputs,
			QuantizedBiasType: TensorType(v.QuantizedBiasType)}
	case *fb.SoftmaxOptionsT:
		return SoftmaxOptions{Beta: v.Beta}
	case *fb.ConcatenationOptionsT:
		return ConcatenationOptions{Axis: v.Axis, Activation: Activation(v.FusedActivationFunction)}
	case *fb.AddOptionsT:
		return AddOptions{Activation: Activation(v.FusedActivationFunction), PotScaleInt16: v.PotScaleInt16}
	case *fb.ResizeBilinearOptionsT:
		return ResizeBilinearOptions{AlignCorners: v.AlignCorners, HalfPixelCenters: v.HalfPixelCenters}
	case *fb.ReshapeOptionsT:
		return ReshapeOptions{NewShape: nz(v.NewShape)}
	case *fb.ReducerOptionsT:
		return ReducerOptions{KeepDims: v.KeepDims}
	case *fb.PadOptionsT:
		return PadOptions{}
	case *fb.QuantizeOptionsT:
		return QuantizeOptions{}
	case *fb.DequantizeOptionsT:
		return DequantizeOptions{}
	}
	return OpaqueOptions{Type: uint8(u.Type)}
}

// Validate checks the model for consistency: indices in range, constant
// buffers matching their shapes, quantization vectors matching their tensors.
// Read calls it; call it again after changing a model by hand.
func (m *Model) Validate() error {
	if m.Version != 3 {
		return fmt.Errorf("%w: schema version %d, want 3", ErrVersion, m.Version)
	}
	if len(m.Subgraphs) == 0 {
		return fmt.Errorf("%w: no subgraphs", ErrInvalid)
	}
	for i, oc := range m.OperatorCodes {
		if oc.Builtin < 0 {
			return fmt.Errorf("%w: operator code %d: negative builtin code %d", ErrInvalid, i, int32(oc.Builtin))
		}
		if oc.Version < 1 {
			return fmt.Errorf("%w: operator code %d (%v): version %d", ErrInvalid, i, oc.Builtin, oc.Version)
		}
	}
	for i, md := range m.Metadata {
		if int(md.Buffer) >= len(m.Buffers) {
			return fmt.Errorf("%w: metadata %d (%q): buffer %d of %d", ErrInvalid, i, md.Name, md.Buffer, len(m.Buffers))
		}
	}
	for i, b := range m.MetadataBuffer {
		if b < 0 || int(b) >= len(m.Buffers) {
			return fmt.Errorf("%w: metadata_buffer[%d]: buffer %d of %d", ErrInvalid, i, b, len(m.Buffers))
		}
	}
	for si := range m.Subgraphs {
		if err := m.validateSubgraph(si); err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) validateSubgraph(si int) error {
	s := &m.Subgraphs[si]
	nt := int32(len(s.Tensors))
	for ti := range s.Tensors {
		if err := m.validateTensor(&s.Tensors[ti]); err != nil {
			return fmt.Errorf("subgraph %d: tensor %d (%q): %w", si, ti, s.Tensors[ti].Name, err)
		}
	}
	for i, t := range s.Inputs {
		if t < 0 || t >= nt {
			return fmt.Errorf("%w: subgraph %d: input %d is tensor %d of %d", ErrInvalid, si, i, t, nt)
		}
	}
	for i, t := range s.Outputs {
		if t < 0 || t >= nt {
			return fmt.Errorf("%w: subgraph %d: output %d is tensor %d of %d", ErrInvalid, si, i, t, nt)
		}
	}
	for oi, op := range s.Operators {
		where := fmt.Sprintf("subgraph %d: operator %d", si, oi)
		if int(op.OpcodeIndex) >= len(m.OperatorCodes) {
			return fmt.Errorf("%w: %s: opcode index %d of %d", ErrInvalid, where, op.OpcodeIndex, len(m.OperatorCodes))
		}
		where += " (" + m.OperatorCodes[op.OpcodeIndex].Builtin.String() + ")"
		for i, t := range op.Inputs {
			if t < -1 || t >= nt {
				return fmt.Errorf("%w: %s: input %d is tensor %d of %d", ErrInvalid, where, i, t, nt)
			}
		}
		for i, t := range op.Outputs {
			if t < 0 || t >= nt {
				return fmt.Errorf("%w: %s: output %d is tensor %d of %d", ErrInvalid, where, i, t, nt)
			}
		}
		for i, t := range op.Intermediates {
			if t < 0 || t >= nt {
				return fmt.Errorf("%w: %s: intermediate %d is tensor %d of %d", ErrInvalid, where, i, t, nt)
			}
		}
		if n := len(op.MutatingVariableInputs); n != 0 && n != len(op.Inputs) {
			return fmt.Errorf("%w: %s: %d mutating_variable_inputs for %d inputs", ErrInvalid, where, n, len(op.Inputs))
		}
	}
	return nil
}

func (m *Model) validateTensor(t *Tensor) error {
	n, err := NumElements(t.Shape)
	if err != nil {
		return fmt.Errorf("%w: shape: %v", ErrInvalid, err)
	}
	if t.Type < 0 || int(t.Type) >= len(typeNames) {
		return fmt.Errorf("%w: unknown type %d", ErrInvalid, int8(t.Type))
	}
	if int(t.Buffer) >= len(m.Buffers) {
		return fmt.Errorf("%w: buffer %d of %d", ErrInvalid, t.Buffer, len(m.Buffers))
	}
	if data := m.Buffers[t.Buffer]; len(data) > 0 && t.Type.Size() > 0 {
		if want := n * t.Type.Size(); len(data) != want {
			return fmt.Errorf("%w: buffer %d holds %d bytes, shape %v of %v needs %d", ErrInvalid, t.Buffer, len(data), t.Shape, t.Type, want)
		}
	}
	if q := t.Quant; q != nil {
		if len(q.ZeroPoint) != 0 && len(q.ZeroPoint) != len(q.Scale) {
			return fmt.Errorf("%w: quantization: %d scales but %d zero points", ErrInvalid, len(q.Scale), len(q.ZeroPoint))
		}
		for i, s := range q.Scale {
			if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) || s < 0 {
				return fmt.Errorf("%w: quantization: scale[%d] = %v", ErrInvalid, i, s)
			}
		}
		if len(q.Scale) > 1 {
			d := q.QuantizedDimension
			if d < 0 || int(d) >= len(t.Shape) {
				return fmt.Errorf("%w: quantization: quantized_dimension %d for rank %d", ErrInvalid, d, len(t.Shape))
			}
			if int(t.Shape[d]) != len(q.Scale) {
				return fmt.Errorf("%w: quantization: %d scales for dimension %d of size %d", ErrInvalid, len(q.Scale), d, t.Shape[d])
			}
		}
	}
	return nil
}

// nz returns nil for an empty slice, so that a model read from a file and
// one built in memory compare equal whether or not a vector was present.
func nz[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
