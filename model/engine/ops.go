package engine

import (
	"fmt"

	"github.com/linesight/linesight/model/tflite"
)

// maxVersion is the newest version of each operator whose semantics the
// engine implements (op versions grow when an op gains a type or option).
var maxVersion = map[tflite.BuiltinOp]int32{
	tflite.OpAdd:            2, // v2: int8
	tflite.OpAveragePool2D:  2,
	tflite.OpConcatenation:  2,
	tflite.OpConv2D:         3, // v2: dilation, v3: int8 per-channel
	tflite.OpDepthwiseConv:  3,
	tflite.OpDequantize:     2,
	tflite.OpFullyConnected: 4, // v4: int8 (no keep_num_dims semantics beyond v5)
	tflite.OpMaxPool2D:      2,
	tflite.OpMean:           2,
	tflite.OpPad:            2,
	tflite.OpReshape:        1,
	tflite.OpResizeBilinear: 3, // v3: half_pixel_centers
	tflite.OpSoftmax:        2,
	tflite.OpQuantize:       2,
}

// SupportedOps lists the operators the engine runs with their newest version.
func SupportedOps() map[tflite.BuiltinOp]int32 {
	out := make(map[tflite.BuiltinOp]int32, len(maxVersion))
	for k, v := range maxVersion {
		out[k] = v
	}
	return out
}

func (ip *Interpreter) prepare(op *tflite.Operator, code tflite.OperatorCode, pad fusedPad) (kernel, error) {
	mv, ok := maxVersion[code.Builtin]
	if !ok || code.Custom != "" {
		return nil, fmt.Errorf("%w: the engine does not implement this operator", ErrUnsupportedOp)
	}
	if code.Version > mv {
		return nil, fmt.Errorf("%w: version %d is newer than the %d the engine implements", ErrUnsupportedOp, code.Version, mv)
	}
	switch code.Builtin {
	case tflite.OpConv2D:
		return ip.prepareConv(op, pad)
	case tflite.OpDepthwiseConv:
		return ip.prepareDepthwise(op)
	case tflite.OpFullyConnected:
		return ip.prepareFullyConnected(op)
	case tflite.OpAdd:
		return ip.prepareAdd(op)
	case tflite.OpAveragePool2D, tflite.OpMaxPool2D:
		return ip.preparePool(op, code.Builtin == tflite.OpMaxPool2D, pad)
	case tflite.OpMean:
		return ip.prepareMean(op)
	case tflite.OpPad:
		return ip.preparePad(op)
	case tflite.OpReshape:
		return ip.prepareReshape(op)
	case tflite.OpConcatenation:
		return ip.prepareConcat(op)
	case tflite.OpQuantize:
		return ip.prepareQuantize(op)
	case tflite.OpDequantize:
		return ip.prepareDequantize(op)
	case tflite.OpSoftmax:
		return ip.prepareSoftmax(op)
	case tflite.OpResizeBilinear:
		return ip.prepareResize(op)
	}
	return nil, fmt.Errorf("%w: no kernel", ErrUnsupportedOp)
}

// input returns required input i of op.
func (ip *Interpreter) opInput(op *tflite.Operator, i int) (*rtensor, error) {
	if i >= len(op.Inputs) || op.Inputs[i] < 0 {
		return nil, fmt.Errorf("input %d is missing", i)
	}
	return ip.tensors[op.Inputs[i]], nil
}

// optInput returns optional input i of op, or nil.
func (ip *Interpreter) optInput(op *tflite.Operator, i int) *rtensor {
	if i >= len(op.Inputs) || op.Inputs[i] < 0 {
		return nil
	}
	return ip.tensors[op.Inputs[i]]
}

func (ip *Interpreter) output(op *tflite.Operator, i int) (*rtensor, error) {
	if i >= len(op.Outputs) {
		return nil, fmt.Errorf("output %d is missing", i)
	}
	return ip.tensors[op.Outputs[i]], nil
}

// ioTensors fetches nin required inputs and output 0.
func (ip *Interpreter) ioTensors(op *tflite.Operator, nin int) ([]*rtensor, *rtensor, error) {
	ins := make([]*rtensor, nin)
	for i := range ins {
		t, err := ip.opInput(op, i)
		if err != nil {
			return nil, nil, err
		}
		ins[i] = t
	}
	out, err := ip.output(op, 0)
	return ins, out, err
}

func checkRank(t *rtensor, rank int) error {
	if len(t.shape) != rank {
		return fmt.Errorf("%s has shape %v, want rank %d", t.where(), t.shape, rank)
	}
	return nil
}

func checkShape(t *rtensor, want []int) error {
	if len(t.shape) != len(want) {
		return fmt.Errorf("%s has shape %v, the op computes %v", t.where(), t.shape, want)
	}
	for i := range want {
		if t.shape[i] != want[i] {
			return fmt.Errorf("%s has shape %v, the op computes %v", t.where(), t.shape, want)
		}
	}
	return nil
}

func checkSameType(a, b *rtensor) error {
	if a.typ != b.typ {
		return fmt.Errorf("%s is %v but %s is %v", a.where(), a.typ, b.where(), b.typ)
	}
	return nil
}

// checkPerTensor requires a quantized activation with one positive scale.
func checkPerTensor(t *rtensor) error {
	if !t.quantized() {
		return fmt.Errorf("%s is %v, want a quantized type", t.where(), t.typ)
	}
	if t.quant == nil || len(t.quant.Scale) != 1 {
		return fmt.Errorf("%s needs per-tensor quantization", t.where())
	}
	if !(t.scale > 0) {
		return fmt.Errorf("%s has scale %g", t.where(), t.scale)
	}
	return nil
}

// fileZP is the zero point in the tensor's file type.
func (t *rtensor) fileZP() int32 {
	if t.u8 {
		return t.zp + 128
	}
	return t.zp
}

// actRange is the stored-domain clamp range of a fused activation on t.
func actRange(t *rtensor, act tflite.Activation) (int32, int32, error) {
	qmin, qmax := int32(-128), int32(127)
	if t.u8 {
		qmin, qmax = 0, 255
	}
	lo, hi, ok := quantizedActivationRange(int8(act), t.scale, t.fileZP(), qmin, qmax)
	if !ok {
		return 0, 0, fmt.Errorf("%w: fused activation %v", ErrUnsupportedOp, act)
	}
	if t.u8 {
		lo, hi = lo-128, hi-128
	}
	return lo, hi, nil
}

func floatRange(act tflite.Activation) (float32, float32, error) {
	lo, hi, ok := floatActivationRange(int8(act))
	if !ok {
		return 0, 0, fmt.Errorf("%w: fused activation %v", ErrUnsupportedOp, act)
	}
	return lo, hi, nil
}

// computePadding is TFLite's ComputePaddingHeightWidth for one axis: output
// size and the padding before the first element (an odd total puts the extra
// element after the last).
func computePadding(pad tflite.Padding, in, filter, stride, dilation int) (out, before int, err error) {
	if stride <= 0 || dilation <= 0 || filter <= 0 {
		return 0, 0, fmt.Errorf("stride %d, dilation %d, filter %d must be positive", stride, dilation, filter)
	}
	eff := (filter-1)*dilation + 1
	switch pad {
	case tflite.PaddingSame:
		out = (in + stride - 1) / stride
	case tflite.PaddingValid:
		out = (in - eff + stride) / stride
	default:
		return 0, 0, fmt.Errorf("padding %v", pad)
	}
	if out <= 0 {
		return 0, 0, fmt.Errorf("input size %d is smaller than the filter (%d)", in, eff)
	}
	total := (out-1)*stride + eff - in
	return out, max(total, 0) / 2, nil
}

// perChannelMultipliers computes the requantization multiplier of each
// output channel of a convolution-like op. Per-channel (int8) filters use
// double products, as TFLite's PopulateConvolutionQuantizationParams does;
// per-tensor (uint8) filters multiply input and filter scales in float32
// first, as GetQuantizedConvolutionMultipler does.
func perChannelMultipliers(in, filter, out *rtensor, channels int) ([]int32, []int, error) {
	if err := checkPerTensor(in); err != nil {
		return nil, nil, err
	}
	if err := checkPerTensor(out); err != nil {
		return nil, nil, err
	}
	fq := filter.quant
	if fq == nil || len(fq.Scale) == 0 {
		return nil, nil, fmt.Errorf("%s has no quantization", filter.where())
	}
	if len(fq.Scale) != 1 && len(fq.Scale) != channels {
		return nil, nil, fmt.Errorf("%s has %d scales for %d output channels", filter.where(), len(fq.Scale), channels)
	}
	mult := make([]int32, channels)
	shift := make([]int, channels)
	for c := 0; c < channels; c++ {
		fs := fq.Scale[min(c, len(fq.Scale)-1)]
		var real float64
		if len(fq.Scale) > 1 || filter.typ == tflite.Int8 {
			real = float64(in.scale) * float64(fs) / float64(out.scale)
		} else {
			real = float64(in.scale*fs) / float64(out.scale)
		}
		mult[c], shift[c] = quantizeMultiplier(real)
	}
	return mult, shift, nil
}

// filterZeroPoints returns the stored-domain zero point of each output
// channel of a filter quantized along its output axis (or per tensor).
func filterZeroPoints(f *rtensor, channels int) ([]int32, error) {
	zps := make([]int32, channels)
	q := f.quant
	for c := range zps {
		var zp int64
		if q != nil && len(q.ZeroPoint) > 0 {
			zp = q.ZeroPoint[min(c, len(q.ZeroPoint)-1)]
		}
		if f.u8 {
			zp -= 128
		} else if zp != 0 && len(q.ZeroPoint) > 1 {
			return nil, fmt.Errorf("%s: per-channel zero point %d must be 0", f.where(), zp)
		}
		zps[c] = int32(zp)
	}
	return zps, nil
}
