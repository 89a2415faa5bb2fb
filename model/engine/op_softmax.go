package engine

import (
	"fmt"
	"github.com/linesight/linesight/internal/parallel"
	"math"

	"github.com/linesight/linesight/model/tflite"
)

func (ip *Interpreter) prepareSoftmax(op *tflite.Operator) (kernel, error) {
	opt, ok := op.Options.(tflite.SoftmaxOptions)
	if !ok {
		return nil, fmt.Errorf("missing SoftmaxOptions")
	}
	ins, out, err := ip.ioTensors(op, 1)
	if err != nil {
		return nil, err
	}
	in := ins[0]
	if err := checkSameType(in, out); err != nil {
		return nil, err
	}
	if err := checkShape(out, in.shape); err != nil {
		return nil, err
	}
	if len(in.shape) == 0 {
		return nil, fmt.Errorf("%s is a scalar", in.where())
	}
	o := &softmaxOp{in: in, out: out, depth: in.shape[len(in.shape)-1], beta: opt.Beta}
	if o.depth == 0 {
		return nil, fmt.Errorf("%s has an empty last axis", in.where())
	}
	o.rows = in.n / o.depth
	if in.typ == tflite.Float32 {
		o.body = o.rowsFloat
		return o, nil
	}
	if err := checkPerTensor(in); err != nil {
		return nil, err
	}
	if err := checkPerTensor(out); err != nil {
		return nil, err
	}
	// TFLite requires softmax outputs at scale 1/256 with zero point at the
	// bottom of the type's range (0 for uint8, -128 for int8).
	if out.scale != 1.0/256 || out.zp != -128 {
		return nil, fmt.Errorf("%w: quantized SOFTMAX output must have scale 1/256 and zero point %d, has %g and %d",
			ErrUnsupportedOp, map[bool]int{true: 0, false: -128}[out.u8], out.scale, out.fileZP())
	}
	// PreprocessSoftmaxScaling with 5 integer bits for the scaled difference.
	const scaledDiffIntBits = 5
	real := math.Min(float64(opt.Beta)*float64(in.scale)*float64(int64(1)<<(31-scaledDiffIntBits)), float64(int64(1)<<31-1))
	o.mult, o.leftShift = quantizeMultiplier(real)
	if o.leftShift < 0 {
		return nil, fmt.Errorf("%w: softmax input scale %g too small", ErrUnsupportedOp, in.scale)
	}
	// CalculateInputRadius: differences below -radius give exp() = 0.
	maxRescaled := float64(int64(1)<<scaledDiffIntBits-1) * float64(int64(1)<<(31-scaledDiffIntBits)) / float64(int64(1)<<o.leftShift)
	o.diffMin = -int32(math.Floor(maxRescaled))
	// A difference from the row's maximum is one of 256 values (both
	// are int8), and its exponential depends on nothing else: tabulated
	// once here, where TFLite evaluates gemmlowp's exp (a polynomial
	// and five barrel shifts) twice per element. ImageNet's 1001 classes
	// took 66 us a frame that way.
	// Below the radius a difference adds nothing to the sum and its
	// output is the zero point, whatever the sum (TFLite skips it; an exp
	// of 0 through the output's rounding shift would not always give it).
	o.first = int(min(max(o.diffMin+255, 0), 256))
	for i := o.first; i < len(o.exp); i++ {
		o.exp[i] = expOnNegativeValues(mulByQuantizedMultiplier(int32(i)-255, o.mult, o.leftShift), 5)
		o.sumTerm[i] = fpMulPOTNeg(o.exp[i], -softmaxAccIntBits) // Q0 -> Q12
	}
	o.body = o.rowsQuant
	return o, nil
}

// softmaxAccIntBits is the integer bits of TFLite's Q12.19 sum of
// exponentials.
const softmaxAccIntBits = 12

// softmaxOp normalises the last axis. The quantized path is TFLite's
// fixed-point softmax (gemmlowp exp on Q5.26 differences, sum in Q12.19,
// reciprocal by Newton-Raphson), which the integer result must match.
type softmaxOp struct {
	in, out     *rtensor
	depth, rows int
	beta        float32
	mult        int32
	leftShift   int
	diffMin     int32
	// exp[d+255] is exp(d) in Q0.31 for a difference d in [-255, 0]
	// from the row's maximum, sumTerm[d+255] its term of the Q12.19 sum;
	// both 0 below first (diffMin+255), whose outputs are the zero point.
	exp, sumTerm [256]int32
	first        int
	body         func(lo, hi, worker int)
}

func (o *softmaxOp) run(p *parallel.Pool) { p.Run(o.rows, 1, o.body) }

func (o *softmaxOp) rowsQuant(lo, hi, _ int) {
	var outOf [256]int8
	for r := lo; r < hi; r++ {
		x := o.in.i8[r*o.depth : (r+1)*o.depth]
		y := o.out.i8[r*o.depth : (r+1)*o.depth]
		maxV := int32(-128)
		for _, v := range x {
			maxV = max(maxV, int32(v))
		}
		var sum int32 // Q12
		for _, v := range x {
			sum += o.sumTerm[int32(v)-maxV+255]
		}
		scale, bitsOverUnit := reciprocal(sum, softmaxAccIntBits)
		out := func(e int32) int8 {
			u := rdbpot(srdhm(scale, e), bitsOverUnit+31-8)
			return int8(clamp32(u-128, -128, 127)) // both uint8 (shifted) and int8 land here
		}
		if len(x) <= len(outOf) {
			for i, v := range x {
				if d := int(int32(v) - maxV + 255); d >= o.first {
					y[i] = out(o.exp[d])
				} else {
					y[i] = -128
				}
			}
			continue
		}
		// A long row (a classifier's): the output per difference once.
		for d := range outOf {
			outOf[d] = -128
			if d >= o.first {
				outOf[d] = out(o.exp[d])
			}
		}
		for i, v := range x {
			y[i] = outOf[int32(v)-maxV+255]
		}
	}
}

func (o *softmaxOp) rowsFloat(lo, hi, _ int) {
	for r := lo; r < hi; r++ {
		x := o.in.f32[r*o.depth : (r+1)*o.depth]
		y := o.out.f32[r*o.depth : (r+1)*o.depth]
		maxV := x[0]
		for _, v := range x {
			maxV = max(maxV, v)
		}
		var sum float32
		for i, v := range x {
			e := float32(math.Exp(float64((v - maxV) * o.beta)))
			y[i] = e
			sum += e
		}
		for i := range y {
			y[i] /= sum
		}
	}
}
