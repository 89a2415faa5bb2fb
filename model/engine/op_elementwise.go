package engine

import (
	"fmt"
	"math"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/vec"
	"github.com/linesight/linesight/model/tflite"
)

// broadcast4 maps every output element of a 4-D (or lower rank, extended
// with leading 1s) elementwise op to the flat index of each input.
type broadcast4 struct {
	out        [4]int
	sa, sb     [4]int // strides of a and b per output axis; 0 where broadcast
	sameShapes bool
}

func newBroadcast4(a, b, out []int) (broadcast4, error) {
	var bc broadcast4
	if len(a) > 4 || len(b) > 4 || len(out) > 4 {
		return bc, fmt.Errorf("%w: broadcasting beyond rank 4", ErrUnsupportedOp)
	}
	ext := func(s []int) [4]int {
		r := [4]int{1, 1, 1, 1}
		copy(r[4-len(s):], s)
		return r
	}
	ea, eb, eo := ext(a), ext(b), ext(out)
	bc.out = eo
	bc.sameShapes = ea == eb && ea == eo
	sa, sb := 1, 1
	for i := 3; i >= 0; i-- {
		if (ea[i] != eo[i] && ea[i] != 1) || (eb[i] != eo[i] && eb[i] != 1) || max(ea[i], eb[i]) != eo[i] {
			return bc, fmt.Errorf("shapes %v and %v do not broadcast to %v", a, b, out)
		}
		if ea[i] != 1 {
			bc.sa[i] = sa
		}
		if eb[i] != 1 {
			bc.sb[i] = sb
		}
		sa *= ea[i]
		sb *= eb[i]
	}
	return bc, nil
}

// index returns the flat input indices of output element i.
func (bc *broadcast4) index(i int) (int, int) {
	if bc.sameShapes {
		return i, i
	}
	ia, ib := 0, 0
	for ax := 3; ax >= 0; ax-- {
		c := i % bc.out[ax]
		i /= bc.out[ax]
		ia += c * bc.sa[ax]
		ib += c * bc.sb[ax]
	}
	return ia, ib
}

func (ip *Interpreter) prepareAdd(op *tflite.Operator) (kernel, error) {
	opt, _ := op.Options.(tflite.AddOptions)
	ins, out, err := ip.ioTensors(op, 2)
	if err != nil {
		return nil, err
	}
	a, b := ins[0], ins[1]
	if err := checkSameType(a, b); err != nil {
		return nil, err
	}
	if err := checkSameType(a, out); err != nil {
		return nil, err
	}
	bc, err := newBroadcast4(a.shape, b.shape, out.shape)
	if err != nil {
		return nil, err
	}
	o := &addOp{a: a, b: b, out: out, bc: bc}
	if a.typ == tflite.Float32 {
		if o.flo, o.fhi, err = floatRange(opt.Activation); err != nil {
			return nil, err
		}
		o.body = o.elemsFloat
		return o, nil
	}
	for _, t := range []*rtensor{a, b, out} {
		if err := checkPerTensor(t); err != nil {
			return nil, err
		}
	}
	// TFLite's quantized ADD: both inputs are brought to a common scale of
	// twice the larger input scale, with 20 bits of headroom, then summed
	// and rescaled to the output (tensorflow/lite/kernels/add.cc, Prepare).
	const leftShift = 20
	twiceMax := 2 * math.Max(float64(a.scale), float64(b.scale))
	o.m1, o.s1 = quantizeMultiplier(float64(a.scale) / twiceMax)
	o.m2, o.s2 = quantizeMultiplier(float64(b.scale) / twiceMax)
	o.mo, o.so = quantizeMultiplier(twiceMax / (float64(int64(1)<<leftShift) * float64(out.scale)))
	if o.lo, o.hi, err = actRange(out, opt.Activation); err != nil {
		return nil, err
	}
	o.body = o.elemsQuant
	if a.n == out.n && b.n == out.n {
		// No broadcasting (every residual add): no index arithmetic, and
		// the vector kernel where there is one.
		if o.aq, err = vec.NewAddQuant(a.zp, b.zp, out.zp, o.lo, o.hi, o.m1, o.s1, o.m2, o.s2, o.mo, o.so); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedOp, err)
		}
		o.body = o.elemsQuantSame
	}
	return o, nil
}

type addOp struct {
	a, b, out  *rtensor
	aq         *vec.AddQuant
	bc         broadcast4
	m1, m2, mo int32
	s1, s2, so int
	lo, hi     int32
	flo, fhi   float32
	body       func(lo, hi, worker int)
}

func (o *addOp) run(p *parallel.Pool) { p.Run(o.out.n, 4096, o.body) }

func (o *addOp) elemsQuant(lo, hi, _ int) {
	za, zb, zo := o.a.zp, o.b.zp, o.out.zp
	for i := lo; i < hi; i++ {
		ia, ib := o.bc.index(i)
		x := (int32(o.a.i8[ia]) - za) << 20
		y := (int32(o.b.i8[ib]) - zb) << 20
		sx := mulByQuantizedMultiplier(x, o.m1, o.s1)
		sy := mulByQuantizedMultiplier(y, o.m2, o.s2)
		v := mulByQuantizedMultiplier(sx+sy, o.mo, o.so) + zo
		o.out.i8[i] = int8(clamp32(v, o.lo, o.hi))
	}
}

// elemsQuantSame is elemsQuant for inputs of the output's shape.
func (o *addOp) elemsQuantSame(lo, hi, _ int) {
	o.aq.Add(o.a.i8[lo:hi], o.b.i8[lo:hi], o.out.i8[lo:hi])
}

func (o *addOp) elemsFloat(lo, hi, _ int) {
	for i := lo; i < hi; i++ {
		ia, ib := o.bc.index(i)
		o.out.f32[i] = min(max(o.a.f32[ia]+o.b.f32[ib], o.flo), o.fhi)
	}
}

func (ip *Interpreter) prepareQuantize(op *tflite.Operator) (kernel, error) {
	ins, out, err := ip.ioTensors(op, 1)
	if err != nil {
		return nil, err
	}
	in := ins[0]
	if in.n != out.n {
		return nil, fmt.Errorf("%s has %d elements, %s has %d", in.where(), in.n, out.where(), out.n)
	}
	if err := checkPerTensor(out); err != nil {
		return nil, err
	}
	o := &quantizeOp{in: in, out: out}
	switch {
	case in.typ == tflite.Float32:
		o.body = o.fromFloat
	case in.quantized():
		if err := checkPerTensor(in); err != nil {
			return nil, err
		}
		// Requantization: TFLite's Requantize with the multiplier of in/out scales.
		o.m, o.s = quantizeMultiplier(float64(in.scale) / float64(out.scale))
		// Each of the 256 input values has one output: compute them once
		// with the arithmetic and look them up per element.
		for x := -128; x < 128; x++ {
			v := mulByQuantizedMultiplier(int32(x)-in.zp, o.m, o.s) + out.zp
			o.lut[uint8(int8(x))] = int8(clamp32(v, -128, 127))
		}
		o.body = o.requant
	default:
		return nil, fmt.Errorf("%w: QUANTIZE from %v", ErrUnsupportedOp, in.typ)
	}
	return o, nil
}

type quantizeOp struct {
	in, out *rtensor
	m       int32
	s       int
	lut     [256]int8 // requantization: output per stored input value
	body    func(lo, hi, worker int)
}

func (o *quantizeOp) run(p *parallel.Pool) { p.Run(o.out.n, 8192, o.body) }

// fromFloat is AffineQuantize: round(x / scale) + zp, clamped; computed in
// the file's own type and stored shifted for uint8.
func (o *quantizeOp) fromFloat(lo, hi, _ int) {
	qmin, qmax, shift := int32(-128), int32(127), int32(0)
	if o.out.u8 {
		qmin, qmax, shift = 0, 255, 128
	}
	vec.QuantizeFloat(o.in.f32[lo:hi], o.out.i8[lo:hi], o.out.scale, o.out.fileZP(), qmin, qmax, shift)
}

func (o *quantizeOp) requant(lo, hi, _ int) {
	// The stored domain is int8 for both sides: (q - zp) is the same as in the
	// file types, and the output range [-128,127] maps to [0,255] for uint8.
	out := o.out.i8[lo:hi]
	for i, v := range o.in.i8[lo:hi] {
		out[i] = o.lut[uint8(v)]
	}
}

func (ip *Interpreter) prepareDequantize(op *tflite.Operator) (kernel, error) {
	ins, out, err := ip.ioTensors(op, 1)
	if err != nil {
		return nil, err
	}
	in := ins[0]
	if out.typ != tflite.Float32 || in.n != out.n {
		return nil, fmt.Errorf("%w: DEQUANTIZE %s to %s", ErrUnsupportedOp, in.where(), out.where())
	}
	if err := checkPerTensor(in); err != nil {
		return nil, err
	}
	o := &dequantizeOp{in: in, out: out}
	o.body = o.elems
	return o, nil
}

type dequantizeOp struct {
	in, out *rtensor
	body    func(lo, hi, worker int)
}

func (o *dequantizeOp) run(p *parallel.Pool) { p.Run(o.out.n, 8192, o.body) }

func (o *dequantizeOp) elems(lo, hi, _ int) {
	s, zp := float64(o.in.scale), o.in.zp
	for i := lo; i < hi; i++ {
		o.out.f32[i] = float32(s * float64(int32(o.in.i8[i])-zp))
	}
}
