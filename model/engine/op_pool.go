package engine

import (
	"fmt"
	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/vec"

	"github.com/linesight/linesight/model/tflite"
)

// preparePool prepares AVERAGE_POOL_2D or MAX_POOL_2D; pad is a PAD folded
// into an int8 MAX_POOL_2D (fusePads), whose padded taps, unlike those of
// SAME padding, count: as the zero point.
func (ip *Interpreter) preparePool(op *tflite.Operator, isMax bool, pad fusedPad) (kernel, error) {
	opt, ok := op.Options.(tflite.Pool2DOptions)
	if !ok {
		return nil, fmt.Errorf("missing Pool2DOptions")
	}
	ins, out, err := ip.ioTensors(op, 1)
	if err != nil {
		return nil, err
	}
	in := ins[0]
	if err := checkRank(in, 4); err != nil {
		return nil, err
	}
	if err := checkSameType(in, out); err != nil {
		return nil, err
	}
	g := convGeom{n: in.shape[0], h: in.shape[1], w: in.shape[2], cin: in.shape[3], cout: in.shape[3],
		kh: int(opt.FilterHeight), kw: int(opt.FilterWidth), sh: int(opt.StrideH), sw: int(opt.StrideW), dh: 1, dw: 1}
	if err := g.outputSize(opt.Padding, pad); err != nil {
		return nil, err
	}
	if err := checkShape(out, []int{g.n, g.oh, g.ow, g.cout}); err != nil {
		return nil, err
	}
	if pad.any() && (!isMax || !in.quantized()) {
		return nil, fmt.Errorf("engine: a PAD folded into a pool other than an int8 MAX_POOL_2D") // fusePads does not
	}
	o := &poolOp{g: g, in: in, out: out, isMax: isMax, padCounts: pad.any()}
	if in.typ == tflite.Float32 {
		if o.flo, o.fhi, err = floatRange(opt.Activation); err != nil {
			return nil, err
		}
	} else {
		if err := checkPerTensor(in); err != nil {
			return nil, err
		}
		if err := checkPerTensor(out); err != nil {
			return nil, err
		}
		if in.scale != out.scale || in.zp != out.zp {
			return nil, fmt.Errorf("%w: pooling needs equal input and output quantization", ErrUnsupportedOp)
		}
		if o.lo, o.hi, err = actRange(out, opt.Activation); err != nil {
			return nil, err
		}
	}
	for w := 0; w < ip.threads; w++ {
		o.acc = append(o.acc, make([]int32, g.cin))
		o.accF = append(o.accF, make([]float32, g.cin))
	}
	o.body = o.rows
	if o.isMax && in.typ != tflite.Float32 {
		// The max of a window is the max over its columns of the max over
		// its rows: per output row, the rows are reduced once for the whole
		// width (a few long vector calls), then each output pixel takes the
		// max of its kw columns of that (short calls).
		for w := 0; w < ip.threads; w++ {
			o.vrow = append(o.vrow, make([]int8, g.w*g.cin))
		}
		o.body = o.rowsMaxQuant
	}
	return o, nil
}

// rowsMaxQuant is rows for int8 max pooling (see prepare).
func (o *poolOp) rowsMaxQuant(lo, hi, worker int) {
	g := &o.g
	c := g.cin
	vrow := o.vrow[worker]
	// A window clipped by a fused PAD takes the zero point too (the PAD
	// would have written it there); one clipped by SAME padding does not.
	zp := int8(o.in.zp)
	for row := lo; row < hi; row++ {
		b, oy := row/g.oh, row%g.oh
		y0 := max(oy*g.sh-g.padTop, 0)
		y1 := min(oy*g.sh-g.padTop+g.kh, g.h)
		out := o.out.i8[((b*g.oh+oy)*g.ow)*c:][:g.ow*c]
		if y0 >= y1 {
			// No input row under the window: TFLite leaves the
			// lowest value, clamped, or the PAD's zero point.
			v := int32(-128)
			if o.padCounts {
				v = int32(zp)
			}
			for i := range out {
				out[i] = int8(clamp32(v, o.lo, o.hi))
			}
			continue
		}
		rowAt := func(iy int) []int8 { return o.in.i8[((b*g.h+iy)*g.w)*c:][:g.w*c] }
		copy(vrow, rowAt(y0))
		for iy := y0 + 1; iy < y1; iy++ {
			vec.MaxInto(vrow, rowAt(iy))
		}
		if o.padCounts && y1-y0 < g.kh {
			for i, v := range vrow {
				vrow[i] = max(v, zp)
			}
		}
		for ox := 0; ox < g.ow; ox++ {
			x0 := max(ox*g.sw-g.padLeft, 0)
			x1 := min(ox*g.sw-g.padLeft+g.kw, g.w)
			d := out[ox*c : (ox+1)*c]
			if x0 >= x1 {
				v := int32(-128)
				if o.padCounts {
					v = int32(zp)
				}
				for i := range d {
					d[i] = int8(clamp32(v, o.lo, o.hi))
				}
				continue
			}
			copy(d, vrow[x0*c:(x0+1)*c])
			for ix := x0 + 1; ix < x1; ix++ {
				vec.MaxInto(d, vrow[ix*c:(ix+1)*c])
			}
			if o.padCounts && x1-x0 < g.kw {
				for i, v := range d {
					d[i] = max(v, zp)
				}
			}
			if o.lo > -128 || o.hi < 127 {
				for i, v := range d {
					d[i] = int8(clamp32(int32(v), o.lo, o.hi))
				}
			}
		}
	}
}

// poolOp is AVERAGE_POOL_2D or MAX_POOL_2D. Windows are clipped to the
// input, and an average divides by the taps inside it (TFLite's rule).
type poolOp struct {
	g        convGeom
	in, out  *rtensor
	isMax    bool
	lo, hi   int32
	flo, fhi float32
	acc      [][]int32
	accF     [][]float32
	vrow     [][]int8 // int8 max: per worker, one row of the window's rows' max
	// padCounts: taps outside the input are a fused PAD's (prepare), and
	// count as the zero point.
	padCounts bool
	body      func(lo, hi, worker int)
}

func (o *poolOp) run(p *parallel.Pool) { p.Run(o.g.n*o.g.oh, 1, o.body) }

func (o *poolOp) rows(lo, hi, worker int) {
	g := &o.g
	quant := o.in.typ != tflite.Float32
	acc, accF := o.acc[worker], o.accF[worker]
	for row := lo; row < hi; row++ {
		b, oy := row/g.oh, row%g.oh
		y0 := max(oy*g.sh-g.padTop, 0)
		y1 := min(oy*g.sh-g.padTop+g.kh, g.h)
		for ox := 0; ox < g.ow; ox++ {
			x0 := max(ox*g.sw-g.padLeft, 0)
			x1 := min(ox*g.sw-g.padLeft+g.kw, g.w)
			count := int32((y1 - y0) * (x1 - x0))
			for c := range acc {
				if o.isMax {
					acc[c], accF[c] = -1<<31, float32(-3.4e38)
				} else {
					acc[c], accF[c] = 0, 0
				}
			}
			for iy := y0; iy < y1; iy++ {
				for ix := x0; ix < x1; ix++ {
					base := ((b*g.h+iy)*g.w + ix) * g.cin
					if quant {
						for c, v := range o.in.i8[base : base+g.cin] {
							if o.isMax {
								acc[c] = max(acc[c], int32(v))
							} else {
								acc[c] += int32(v)
							}
						}
					} else {
						for c, v := range o.in.f32[base : base+g.cin] {
							if o.isMax {
								accF[c] = max(accF[c], v)
							} else {
								accF[c] += v
							}
						}
					}
				}
			}
			obase := ((b*g.oh+oy)*g.ow + ox) * g.cout
			if !quant {
				d := o.out.f32[obase : obase+g.cout]
				for c, v := range accF {
					if !o.isMax && count > 0 {
						v /= float32(count)
					}
					d[c] = min(max(v, o.flo), o.fhi)
				}
				continue
			}
			d := o.out.i8[obase : obase+g.cout]
			for c, v := range acc {
				if !o.isMax {
					v = o.average(v, count)
				}
				d[c] = int8(clamp32(v, o.lo, o.hi))
			}
		}
	}
}

// average rounds a window sum to nearest, in the file's own type: uint8
// sums are non-negative and round half up ((s + n/2) / n); int8 sums round
// half away from zero.
func (o *poolOp) average(sum, count int32) int32 {
	if count == 0 {
		return o.out.zp
	}
	if o.in.u8 {
		s := sum + 128*count
		return (s+count/2)/count - 128
	}
	if sum > 0 {
		return (sum + count/2) / count
	}
	return (sum - count/2) / count
}
