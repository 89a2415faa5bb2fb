package engine

import (
	"fmt"
	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/vec"
	"math"

	"github.com/linesight/linesight/model/tflite"
)

// constInts reads a constant INT32 or INT64 tensor as ints.
func constInts(t *rtensor) ([]int, error) {
	if !t.constant {
		return nil, fmt.Errorf("%w: %s must be constant", ErrUnsupportedOp, t.where())
	}
	var out []int
	switch t.typ {
	case tflite.Int32:
		for _, v := range t.i32 {
			out = append(out, int(v))
		}
	case tflite.Int64:
		for _, v := range t.i64 {
			if v < math.MinInt32 || v > math.MaxInt32 {
				return nil, fmt.Errorf("%s: value %d out of range", t.where(), v)
			}
			out = append(out, int(v))
		}
	default:
		return nil, fmt.Errorf("%w: %s is %v, want INT32 or INT64", ErrUnsupportedOp, t.where(), t.typ)
	}
	return out, nil
}

func (ip *Interpreter) prepareReshape(op *tflite.Operator) (kernel, error) {
	ins, out, err := ip.ioTensors(op, 1)
	if err != nil {
		return nil, err
	}
	in := ins[0]
	if err := checkSameType(in, out); err != nil {
		return nil, err
	}
	if in.n != out.n {
		return nil, fmt.Errorf("%s has %d elements, %s has %d", in.where(), in.n, out.where(), out.n)
	}
	if in.quantized() && (in.scale != out.scale || in.zp != out.zp) {
		return nil, fmt.Errorf("%w: RESHAPE changes quantization", ErrUnsupportedOp)
	}
	return &copyOp{in: in, out: out}, nil
}

// copyOp moves data unchanged (RESHAPE: NHWC data is already in order).
type copyOp struct{ in, out *rtensor }

func (o *copyOp) run(*parallel.Pool) {
	switch {
	case o.in.i8 != nil:
		copy(o.out.i8, o.in.i8)
	case o.in.f32 != nil:
		copy(o.out.f32, o.in.f32)
	case o.in.i32 != nil:
		copy(o.out.i32, o.in.i32)
	case o.in.i64 != nil:
		copy(o.out.i64, o.in.i64)
	}
}

func (ip *Interpreter) preparePad(op *tflite.Operator) (kernel, error) {
	ins, out, err := ip.ioTensors(op, 2)
	if err != nil {
		return nil, err
	}
	in := ins[0]
	if err := checkSameType(in, out); err != nil {
		return nil, err
	}
	pads, err := constInts(ins[1])
	if err != nil {
		return nil, err
	}
	rank := len(in.shape)
	if rank > 4 || len(pads) != 2*rank {
		return nil, fmt.Errorf("%w: paddings %v for rank %d", ErrUnsupportedOp, pads, rank)
	}
	o := &padOp{in: in, out: out}
	want := make([]int, rank)
	for i := 0; i < rank; i++ {
		if pads[2*i] < 0 || pads[2*i+1] < 0 {
			return nil, fmt.Errorf("negative padding %v", pads)
		}
		want[i] = in.shape[i] + pads[2*i] + pads[2*i+1]
	}
	if err := checkShape(out, want); err != nil {
		return nil, err
	}
	// Extend to 4-D with leading 1s.
	o.inShape, o.outShape = [4]int{1, 1, 1, 1}, [4]int{1, 1, 1, 1}
	copy(o.inShape[4-rank:], in.shape)
	copy(o.outShape[4-rank:], want)
	for i := 0; i < rank; i++ {
		o.before[4-rank+i] = pads[2*i]
	}
	if in.quantized() {
		if in.scale != out.scale || in.zp != out.zp {
			return nil, fmt.Errorf("%w: PAD changes quantization", ErrUnsupportedOp)
		}
	}
	return o, nil
}

// padOp fills the border with the zero point (quantized) or 0.
type padOp struct {
	in, out           *rtensor
	inShape, outShape [4]int
	before            [4]int
}

func (o *padOp) run(*parallel.Pool) {
	// Input rows are copied whole: below the last padded axis, an input
	// slice is contiguous in the output too (an NHWC image padded in H and W
	// copies W·C elements per row rather than C per pixel).
	is, os := o.inShape, o.outShape
	last := 0
	for ax := 3; ax >= 0; ax-- {
		if is[ax] != os[ax] {
			last = ax
			break
		}
	}
	inner := 1
	for ax := last; ax < 4; ax++ {
		inner *= is[ax]
	}
	var outer [4]int // extents of the axes above last; 1 below
	for ax := range 4 {
		outer[ax] = 1
		if ax < last {
			outer[ax] = is[ax]
		}
	}
	var ostride [4]int
	ostride[3] = 1
	for ax := 2; ax >= 0; ax-- {
		ostride[ax] = ostride[ax+1] * os[ax+1]
	}
	src, filled := 0, 0
	for a := 0; a < outer[0]; a++ {
		for b := 0; b < outer[1]; b++ {
			for c := 0; c < outer[2]; c++ {
				idx := [4]int{a, b, c, 0}
				dst := 0
				for ax := range 4 {
					if ax < last {
						dst += (idx[ax] + o.before[ax]) * ostride[ax]
					} else if ax == last {
						dst += o.before[ax] * ostride[ax]
					}
				}
				// Runs are in increasing order: the gap since the
				// last one is padding.
				o.fill(filled, dst)
				if o.out.i8 != nil {
					copy(o.out.i8[dst:dst+inner], o.in.i8[src:src+inner])
				} else {
					copy(o.out.f32[dst:dst+inner], o.in.f32[src:src+inner])
				}
				src += inner
				filled = dst + inner
			}
		}
	}
	o.fill(filled, o.out.n)
}

// fill sets output elements [lo, hi) to the padding value: the zero point
// (quantized) or 0.
func (o *padOp) fill(lo, hi int) {
	if o.out.i8 == nil {
		clear(o.out.f32[lo:hi])
		return
	}
	d := o.out.i8[lo:hi]
	if len(d) == 0 {
		return
	}
	// A non-zero byte fill is not turned into memset; doubling copies are.
	d[0] = int8(o.out.zp)
	for n := 1; n < len(d); n *= 2 {
		copy(d[n:], d[:n])
	}
}

func (ip *Interpreter) prepareConcat(op *tflite.Operator) (kernel, error) {
	opt, _ := op.Options.(tflite.ConcatenationOptions)
	if opt.Activation != tflite.ActNone {
		return nil, fmt.Errorf("%w: fused activation on CONCATENATION", ErrUnsupportedOp)
	}
	out, err := ip.output(op, 0)
	if err != nil {
		return nil, err
	}
	rank := len(out.shape)
	axis := int(opt.Axis)
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return nil, fmt.Errorf("axis %d for rank %d", opt.Axis, rank)
	}
	o := &concatOp{out: out}
	o.outer = 1
	for _, d := range out.shape[:axis] {
		o.outer *= d
	}
	inner := 1
	for _, d := range out.shape[axis+1:] {
		inner *= d
	}
	total := 0
	for i := range op.Inputs {
		in, err := ip.opInput(op, i)
		if err != nil {
			return nil, err
		}
		if err := checkSameType(in, out); err != nil {
			return nil, err
		}
		if len(in.shape) != rank {
			return nil, fmt.Errorf("%s has rank %d, output %d", in.where(), len(in.shape), rank)
		}
		for d := range in.shape {
			if d != axis && in.shape[d] != out.shape[d] {
				return nil, fmt.Errorf("%s has shape %v, incompatible with %v", in.where(), in.shape, out.shape)
			}
		}
		total += in.shape[axis]
		part := concatPart{t: in, size: in.shape[axis] * inner}
		if in.quantized() {
			if err := checkPerTensor(in); err != nil {
				return nil, err
			}
			if in.scale != out.scale || in.zp != out.zp {
				if !in.u8 {
					return nil, fmt.Errorf("%w: int8 CONCATENATION inputs must share the output's quantization", ErrUnsupportedOp)
				}
				// ConcatenationWithScaling (uint8): float rescale and round.
				part.rescale = true
				part.scale = in.scale * (1 / out.scale)
				part.bias = -float32(in.fileZP()) * part.scale
			}
		}
		o.parts = append(o.parts, part)
	}
	if total != out.shape[axis] {
		return nil, fmt.Errorf("inputs add up to %d along axis %d, output has %d", total, axis, out.shape[axis])
	}
	return o, nil
}

type concatPart struct {
	t           *rtensor
	size        int
	rescale     bool
	scale, bias float32
}

type concatOp struct {
	out   *rtensor
	outer int
	parts []concatPart
}

func (o *concatOp) run(*parallel.Pool) {
	pos := 0
	for k := 0; k < o.outer; k++ {
		for _, p := range o.parts {
			src := k * p.size
			switch {
			case p.rescale:
				zo := o.out.fileZP()
				for j := 0; j < p.size; j++ {
					x := float32(int32(p.t.i8[src+j]) + 128)
					v := int32(math.Round(float64(float32(x*p.scale)+p.bias))) + zo
					o.out.i8[pos+j] = int8(clamp32(v, 0, 255) - 128)
				}
			case p.t.i8 != nil:
				copy(o.out.i8[pos:pos+p.size], p.t.i8[src:src+p.size])
			case p.t.f32 != nil:
				copy(o.out.f32[pos:pos+p.size], p.t.f32[src:src+p.size])
			case p.t.i32 != nil:
				copy(o.out.i32[pos:pos+p.size], p.t.i32[src:src+p.size])
			}
			pos += p.size
		}
	}
}

func (ip *Interpreter) prepareMean(op *tflite.Operator) (kernel, error) {
	opt, _ := op.Options.(tflite.ReducerOptions)
	ins, out, err := ip.ioTensors(op, 2)
	if err != nil {
		return nil, err
	}
	in := ins[0]
	if err := checkSameType(in, out); err != nil {
		return nil, err
	}
	axes, err := constInts(ins[1])
	if err != nil {
		return nil, err
	}
	rank := len(in.shape)
	reduce := make([]bool, rank)
	for _, a := range axes {
		if a < 0 {
			a += rank
		}
		if a < 0 || a >= rank {
			return nil, fmt.Errorf("axis %d for rank %d", a, rank)
		}
		reduce[a] = true
	}
	var want []int
	for i, d := range in.shape {
		switch {
		case !reduce[i]:
			want = append(want, d)
		case opt.KeepDims:
			want = append(want, 1)
		}
	}
	if err := checkShape(out, want); err != nil {
		return nil, err
	}
	o := &meanOp{in: in, out: out}
	if in.typ == tflite.Float32 {
		o.reduce = reduce
		o.idx = make([]int, rank)
		return o, nil
	}
	// The quantized kernels TFLite 2.x runs cover the spatial mean of NHWC
	// maps (global average pooling), with keep_dims.
	if rank != 4 || !reduce[1] || !reduce[2] || reduce[0] || reduce[3] || !opt.KeepDims {
		return nil, fmt.Errorf("%w: quantized MEAN over axes %v (keep_dims=%v) of rank %d; only axes [1 2] with keep_dims", ErrUnsupportedOp, axes, opt.KeepDims, rank)
	}
	if err := checkPerTensor(in); err != nil {
		return nil, err
	}
	if err := checkPerTensor(out); err != nil {
		return nil, err
	}
	count := in.shape[1] * in.shape[2]
	o.acc = make([]int32, in.shape[3])
	o.ones = make([]int32, in.shape[3])
	for i := range o.ones {
		o.ones[i] = 1
	}
	if in.u8 {
		// uint8 (legacy optimized Mean): raw sum times in_scale/(count*out_scale),
		// plus a bias that moves the input zero point to the output's.
		real := in.scale / (float32(count) * out.scale)
		o.m, o.s = quantizeMultiplier(float64(real))
		o.bias = out.fileZP() - int32(float32(in.fileZP())*in.scale/out.scale)
	} else {
		// int8 (reference_integer_ops::Mean): zero-point-free sum times
		// in_scale/out_scale, then divided by the count with rounding.
		o.m, o.s = quantizeMultiplier(float64(in.scale) / float64(out.scale))
	}
	return o, nil
}

type meanOp struct {
	in, out *rtensor
	reduce  []bool
	idx     []int // scratch for the float walk
	m       int32
	s       int
	bias    int32
	// acc holds a batch's per-channel sums; ones is the weight vector
	// that makes vec.MulAccPixels a vectorised sum of one pixel.
	acc, ones []int32
}

func (o *meanOp) run(*parallel.Pool) {
	if o.in.typ == tflite.Float32 {
		o.runFloat()
		return
	}
	n, h, w, c := o.in.shape[0], o.in.shape[1], o.in.shape[2], o.in.shape[3]
	count := int32(h * w)
	for b := 0; b < n; b++ {
		// Pixel by pixel, every channel at once: the input in the order
		// it lies, not a channel's values 4 or 5 KiB apart.
		clear(o.acc)
		for i := b * h * w; i < (b+1)*h*w; i++ {
			vec.MulAccPixels(o.acc, o.in.i8[i*c:(i+1)*c], o.ones, c, 1, c, 0)
		}
		for ch, acc := range o.acc {
			var v int32
			if o.in.u8 {
				acc += 128 * count // raw uint8 sum
				v = clamp32(mulByQuantizedMultiplier(acc, o.m, o.s)+o.bias, 0, 255) - 128
			} else {
				acc -= o.in.zp * count
				acc = mulByQuantizedMultiplier(acc, o.m, o.s)
				if acc > 0 {
					acc = (acc + count/2) / count
				} else {
					acc = (acc - count/2) / count
				}
				v = clamp32(acc+o.out.zp, -128, 127)
			}
			o.out.i8[b*c+ch] = int8(v)
		}
	}
}

// runFloat averages over any set of axes.
func (o *meanOp) runFloat() {
	shape := o.in.shape
	rank := len(shape)
	clear(o.out.f32)
	count := 1
	for i, r := range o.reduce {
		if r {
			count *= shape[i]
		}
	}
	idx := o.idx
	clear(idx)
	for _, v := range o.in.f32 {
		// Output index: the input index with reduced axes dropped (or 0).
		oi := 0
		for a := 0; a < rank; a++ {
			if !o.reduce[a] {
				oi = oi*shape[a] + idx[a]
			}
		}
		o.out.f32[oi] += v
		for a := rank - 1; a >= 0; a-- {
			idx[a]++
			if idx[a] < shape[a] {
				break
			}
			idx[a] = 0
		}
	}
	for i := range o.out.f32 {
		o.out.f32[i] /= float32(count)
	}
}
