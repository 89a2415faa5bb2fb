package engine

import (
	"fmt"
	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/vec"

	"github.com/linesight/linesight/model/tflite"
)

func (ip *Interpreter) prepareDepthwise(op *tflite.Operator) (kernel, error) {
	opt, ok := op.Options.(tflite.DepthwiseConv2DOptions)
	if !ok {
		return nil, fmt.Errorf("missing DepthwiseConv2DOptions")
	}
	ins, out, err := ip.ioTensors(op, 2)
	if err != nil {
		return nil, err
	}
	in, filter, bias := ins[0], ins[1], ip.optInput(op, 2)
	if err := checkRank(in, 4); err != nil {
		return nil, err
	}
	if err := checkRank(filter, 4); err != nil {
		return nil, err
	}
	if !filter.constant || filter.shape[0] != 1 {
		return nil, fmt.Errorf("%w: filter %s must be constant with shape [1, kh, kw, c]", ErrUnsupportedOp, filter.where())
	}
	g := convGeom{n: in.shape[0], h: in.shape[1], w: in.shape[2], cin: in.shape[3],
		kh: filter.shape[1], kw: filter.shape[2], cout: filter.shape[3],
		sh: int(opt.StrideH), sw: int(opt.StrideW), dh: int(opt.DilationH), dw: int(opt.DilationW)}
	if g.cin == 0 || g.cout%g.cin != 0 {
		return nil, fmt.Errorf("%s has %d channels, not a multiple of the input's %d", filter.where(), g.cout, g.cin)
	}
	if g.oh, g.padTop, err = computePadding(opt.Padding, g.h, g.kh, g.sh, g.dh); err != nil {
		return nil, fmt.Errorf("height: %w", err)
	}
	if g.ow, g.padLeft, err = computePadding(opt.Padding, g.w, g.kw, g.sw, g.dw); err != nil {
		return nil, fmt.Errorf("width: %w", err)
	}
	if err := checkShape(out, []int{g.n, g.oh, g.ow, g.cout}); err != nil {
		return nil, err
	}
	if err := checkSameType(in, out); err != nil {
		return nil, err
	}
	o := &depthwiseOp{g: g, in: in, out: out, mult: g.cout / g.cin}
	if in.typ == tflite.Float32 {
		if err := checkSameType(in, filter); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedOp, err)
		}
		o.wf = filter.f32
		o.biasF = make([]float32, g.cout)
		if bias != nil {
			if bias.typ != tflite.Float32 || bias.n != g.cout || !bias.constant {
				return nil, fmt.Errorf("%w: bias %s must be a constant FLOAT32 vector of %d", ErrUnsupportedOp, bias.where(), g.cout)
			}
			copy(o.biasF, bias.f32)
		}
		if o.flo, o.fhi, err = floatRange(opt.Activation); err != nil {
			return nil, err
		}
		for w := 0; w < ip.threads; w++ {
			o.accF = append(o.accF, make([]float32, g.cout))
		}
		o.body = o.rowsFloat
		return o, nil
	}
	if filter.typ != tflite.Int8 && filter.typ != tflite.Uint8 {
		return nil, fmt.Errorf("%w: %v filter with %v input", ErrUnsupportedOp, filter.typ, in.typ)
	}
	if o.qmult, o.qshift, err = perChannelMultipliers(in, filter, out, g.cout); err != nil {
		return nil, err
	}
	// Depthwise filters are quantized along their last axis.
	if q := filter.quant; len(q.Scale) > 1 && q.QuantizedDimension != 3 {
		return nil, fmt.Errorf("%s is quantized along axis %d, want 3", filter.where(), q.QuantizedDimension)
	}
	wzp, err := filterZeroPoints(filter, g.cout)
	if err != nil {
		return nil, err
	}
	// Weights minus their zero point, widened once at load.
	o.wz = make([]int32, len(filter.i8))
	for i, v := range filter.i8 {
		o.wz[i] = int32(v) - wzp[i%g.cout]
	}
	o.bias = make([]int32, g.cout)
	if bias != nil {
		if bias.typ != tflite.Int32 || bias.n != g.cout || !bias.constant {
			return nil, fmt.Errorf("%w: bias %s must be a constant INT32 vector of %d", ErrUnsupportedOp, bias.where(), g.cout)
		}
		copy(o.bias, bias.i32)
	}
	if o.lo, o.hi, err = actRange(out, opt.Activation); err != nil {
		return nil, err
	}
	// One output row of accumulators per worker, requantized in one call.
	for w := 0; w < ip.threads; w++ {
		o.acc = append(o.acc, make([]int32, g.ow*g.cout))
	}
	// The vector requantization where the multipliers allow it (not a zero
	// scale); the scalar loop otherwise.
	if rq, err := vec.NewRequant(o.bias, o.qmult, o.qshift, out.zp, o.lo, o.hi); err == nil {
		o.rq = rq
	}
	o.body = o.rowsQuant
	if g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && o.mult == 1 {
		// A 1x1 depthwise layer (a per-channel scale and shift, such as an
		// input normalisation) maps each int8 value of a channel to one
		// output value: a table per channel, filled by the arithmetic
		// above, replaces the multiply and requantization per element.
		o.lut = make([]int8, 256*g.cout)
		for c := 0; c < g.cout; c++ {
			for x := -128; x < 128; x++ {
				v := o.bias[c] + (int32(x)-in.zp)*o.wz[c]
				v = mulByQuantizedMultiplier(v, o.qmult[c], o.qshift[c]) + out.zp
				o.lut[c<<8|int(uint8(int8(x)))] = int8(clamp32(v, o.lo, o.hi))
			}
		}
		o.body = o.pixelsLUT
	}
	return o, nil
}

// depthwiseOp convolves each input channel with its own filters. Taps that
// fall in the padding are skipped, as in TFLite.
type depthwiseOp struct {
	g       convGeom
	in, out *rtensor
	mult    int // depth multiplier

	wz     []int32 // [kh][kw][cout], zero point removed
	bias   []int32
	qmult  []int32
	qshift []int
	rq     *vec.Requant
	lo, hi int32
	acc    [][]int32
	lut    []int8 // 1x1 filters: [cout][256] output per input value

	wf, biasF []float32
	flo, fhi  float32
	accF      [][]float32

	body func(lo, hi, worker int)
}

func (o *depthwiseOp) run(p *parallel.Pool) { p.Run(o.g.n*o.g.oh, 1, o.body) }

// pixelsLUT is a 1x1 depthwise layer over output rows [lo, hi) by table.
func (o *depthwiseOp) pixelsLUT(lo, hi, _ int) {
	c := o.g.cout
	row := o.g.ow * c
	in := o.in.i8[lo*row : hi*row]
	out := o.out.i8[lo*row : hi*row]
	if c == 3 {
		// RGB (an input normalisation): three tables of 256, indexed by
		// a byte, need no bounds checks.
		t0, t1, t2 := (*[256]int8)(o.lut[0:256]), (*[256]int8)(o.lut[256:512]), (*[256]int8)(o.lut[512:768])
		for p := 0; p+3 <= len(in); p += 3 {
			x, d := in[p:p+3:p+3], out[p:p+3:p+3]
			d[0], d[1], d[2] = t0[uint8(x[0])], t1[uint8(x[1])], t2[uint8(x[2])]
		}
		return
	}
	for p := 0; p+c <= len(in); p += c {
		x, d := in[p:p+c], out[p:p+c]
		for ch, v := range x {
			d[ch] = o.lut[ch<<8|int(uint8(v))]
		}
	}
}

func (o *depthwiseOp) rowsQuant(lo, hi, worker int) {
	if o.mult == 1 {
		o.rowsQuantTaps(lo, hi, worker)
		return
	}
	g := &o.g
	acc := o.acc[worker]
	zx := o.in.zp
	accRow := acc
	for row := lo; row < hi; row++ {
		b, oy := row/g.oh, row%g.oh
		for ox := 0; ox < g.ow; ox++ {
			acc := accRow[ox*g.cout : (ox+1)*g.cout]
			if o.rq != nil {
				clear(acc) // the requantization adds the bias
			} else {
				copy(acc, o.bias)
			}
			for ky := 0; ky < g.kh; ky++ {
				iy := oy*g.sh - g.padTop + ky*g.dh
				if iy < 0 || iy >= g.h {
					continue
				}
				for kx := 0; kx < g.kw; kx++ {
					ix := ox*g.sw - g.padLeft + kx*g.dw
					if ix < 0 || ix >= g.w {
						continue
					}
					x := o.in.i8[((b*g.h+iy)*g.w+ix)*g.cin:][:g.cin]
					w := o.wz[(ky*g.kw+kx)*g.cout:][:g.cout]
					for c, v := range x {
						xv := int32(v) - zx
						for m := 0; m < o.mult; m++ {
							acc[c*o.mult+m] += xv * w[c*o.mult+m]
						}
					}
				}
			}
		}
		o.requantRow(accRow, b, oy)
	}
}

// rowsQuantTaps computes output rows [lo, hi) of a depthwise layer with
// depth multiplier 1 a filter tap at a time: for each tap, every output
// pixel of the row whose input lies inside the image gains that tap in one
// call (the weights are the same for all of them), instead of one call per
// pixel and tap. Taps in the padding are skipped, as in TFLite.
func (o *depthwiseOp) rowsQuantTaps(lo, hi, worker int) {
	g := &o.g
	c := g.cout
	accRow := o.acc[worker][:g.ow*c]
	for row := lo; row < hi; row++ {
		b, oy := row/g.oh, row%g.oh
		if o.rq != nil {
			clear(accRow) // the requantization adds the bias
		} else {
			for ox := 0; ox < g.ow; ox++ {
				copy(accRow[ox*c:(ox+1)*c], o.bias)
			}
		}
		for ky := 0; ky < g.kh; ky++ {
			iy := oy*g.sh - g.padTop + ky*g.dh
			if iy < 0 || iy >= g.h {
				continue
			}
			for kx := 0; kx < g.kw; kx++ {
				// Output pixels whose input column ox·sw − padLeft + kx·dw
				// lies in [0, w).
				off := kx*g.dw - g.padLeft
				oxLo := 0
				if off < 0 {
					oxLo = (-off + g.sw - 1) / g.sw
				}
				oxHi := min(g.ow, (g.w-1-off)/g.sw+1)
				if g.w-1-off < 0 {
					oxHi = 0
				}
				if oxLo >= oxHi {
					continue
				}
				ix := oxLo*g.sw + off
				x := o.in.i8[((b*g.h+iy)*g.w+ix)*g.cin:]
				w := o.wz[(ky*g.kw+kx)*c:][:c]
				vec.MulAccPixels(accRow[oxLo*c:], x, w, c, oxHi-oxLo, g.sw*g.cin, o.in.zp)
			}
		}
		o.requantRow(accRow, b, oy)
	}
}

// requantRow writes output row (b, oy) from its accumulators.
func (o *depthwiseOp) requantRow(accRow []int32, b, oy int) {
	g := &o.g
	base := (b*g.oh + oy) * g.ow * g.cout
	if o.rq != nil {
		o.rq.Rows(accRow, o.out.i8[base:base+g.ow*g.cout], g.ow)
		return
	}
	for ox := 0; ox < g.ow; ox++ {
		acc := accRow[ox*g.cout : (ox+1)*g.cout]
		d := o.out.i8[base+ox*g.cout:][:g.cout]
		for c, v := range acc {
			v = mulByQuantizedMultiplier(v, o.qmult[c], o.qshift[c]) + o.out.zp
			d[c] = int8(clamp32(v, o.lo, o.hi))
		}
	}
}

func (o *depthwiseOp) rowsFloat(lo, hi, worker int) {
	g := &o.g
	acc := o.accF[worker]
	for row := lo; row < hi; row++ {
		b, oy := row/g.oh, row%g.oh
		for ox := 0; ox < g.ow; ox++ {
			copy(acc, o.biasF)
			for ky := 0; ky < g.kh; ky++ {
				iy := oy*g.sh - g.padTop + ky*g.dh
				if iy < 0 || iy >= g.h {
					continue
				}
				for kx := 0; kx < g.kw; kx++ {
					ix := ox*g.sw - g.padLeft + kx*g.dw
					if ix < 0 || ix >= g.w {
						continue
					}
					x := o.in.f32[((b*g.h+iy)*g.w+ix)*g.cin:][:g.cin]
					w := o.wf[(ky*g.kw+kx)*g.cout:][:g.cout]
					for c, v := range x {
						for m := 0; m < o.mult; m++ {
							acc[c*o.mult+m] += v * w[c*o.mult+m]
						}
					}
				}
			}
			d := o.out.f32[((b*g.oh+oy)*g.ow+ox)*g.cout:][:g.cout]
			for c, v := range acc {
				d[c] = min(max(v, o.flo), o.fhi)
			}
		}
	}
}
