package engine

import (
	"fmt"
	"github.com/linesight/linesight/internal/parallel"
	"math"

	"github.com/linesight/linesight/model/tflite"
)

func (ip *Interpreter) prepareResize(op *tflite.Operator) (kernel, error) {
	opt, _ := op.Options.(tflite.ResizeBilinearOptions)
	ins, out, err := ip.ioTensors(op, 2)
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
	size, err := constInts(ins[1])
	if err != nil {
		return nil, err
	}
	if len(size) != 2 || size[0] <= 0 || size[1] <= 0 {
		return nil, fmt.Errorf("size %v, want [height width]", size)
	}
	if err := checkShape(out, []int{in.shape[0], size[0], size[1], in.shape[3]}); err != nil {
		return nil, err
	}
	if opt.AlignCorners && opt.HalfPixelCenters {
		return nil, fmt.Errorf("align_corners and half_pixel_centers are both set")
	}
	if in.quantized() && (in.scale != out.scale || in.zp != out.zp) {
		return nil, fmt.Errorf("%w: RESIZE_BILINEAR changes quantization", ErrUnsupportedOp)
	}
	o := &resizeOp{in: in, out: out, half: opt.HalfPixelCenters}
	scale := func(inSize, outSize int) float32 {
		if opt.AlignCorners && outSize > 1 {
			return float32(inSize-1) / float32(outSize-1)
		}
		return float32(inSize) / float32(outSize)
	}
	o.sy, o.sx = scale(in.shape[1], size[0]), scale(in.shape[2], size[1])
	o.body = o.rows
	return o, nil
}

// resizeOp is TFLite's ResizeBilinear: source coordinates and weights in
// float32, the blend in float32 and, for quantized types, truncated toward
// zero in the file's own type (static_cast<T>). int8 and float follow the
// reference kernel's expression order; uint8 follows the optimized kernel
// that TFLite runs for it.
// Explicit float32 conversions keep Go from fusing multiply-adds, which
// would change the last bit on some architectures.
type resizeOp struct {
	in, out *rtensor
	half    bool
	sy, sx  float32
	body    func(lo, hi, worker int)
}

func (o *resizeOp) run(p *parallel.Pool) { p.Run(o.out.shape[0]*o.out.shape[1], 1, o.body) }

func interpValues(v int, scale float32, half bool, size int) (float32, int, int) {
	var s float32
	if half {
		s = float32(float32(float32(v)+0.5)*scale) - 0.5
	} else {
		s = float32(float32(v) * scale)
	}
	lo := max(int(math.Floor(float64(s))), 0)
	hi := min(int(math.Ceil(float64(s))), size-1)
	return s, lo, hi
}

func (o *resizeOp) rows(lo, hi, _ int) {
	n, ih, iw, c := o.in.shape[0], o.in.shape[1], o.in.shape[2], o.in.shape[3]
	oh, ow := o.out.shape[1], o.out.shape[2]
	_ = n
	off := float32(0)
	if o.in.u8 {
		off = 128
	}
	for row := lo; row < hi; row++ {
		b, y := row/oh, row%oh
		fy, y0, y1 := interpValues(y, o.sy, o.half, ih)
		dy := float32(fy - float32(y0))
		for x := 0; x < ow; x++ {
			fx, x0, x1 := interpValues(x, o.sx, o.half, iw)
			dx := float32(fx - float32(x0))
			i00 := ((b*ih+y0)*iw + x0) * c
			i10 := ((b*ih+y1)*iw + x0) * c
			i01 := ((b*ih+y0)*iw + x1) * c
			i11 := ((b*ih+y1)*iw + x1) * c
			w00 := float32(float32(1-dy) * float32(1-dx))
			w01 := float32(float32(1-dy) * dx)
			w10 := float32(dy * float32(1-dx))
			w11 := float32(dy * dx)
			dst := ((b*oh+y)*ow + x) * c
			// in(y0,x0)*(1-dy)*(1-dx) + in(y1,x0)*dy*(1-dx) + in(y0,x1)*(1-dy)*dx + in(y1,x1)*dy*dx,
			// multiplied left to right and summed in that order, as TFLite does.
			blend := func(v00, v10, v01, v11 float32) float32 {
				t := float32(float32(v00*(1-dy)) * (1 - dx))
				t = float32(t + float32(float32(v10*dy)*(1-dx)))
				t = float32(t + float32(float32(v01*(1-dy))*dx))
				return float32(t + float32(float32(v11*dy)*dx))
			}
			for ch := 0; ch < c; ch++ {
				if o.in.f32 != nil {
					o.out.f32[dst+ch] = blend(o.in.f32[i00+ch], o.in.f32[i10+ch], o.in.f32[i01+ch], o.in.f32[i11+ch])
					continue
				}
				var v float32
				if o.in.u8 {
					// TFLite's optimized uint8 kernel (ResizeBilinearGenericSmallChannel):
					// the four weights are products computed first, and the terms are
					// summed in the order (y0,x0), (y0,x1), (y1,x0), (y1,x1).
					v = float32(float32(o.in.i8[i00+ch])+off) * w00
					v = float32(v + float32(float32(float32(o.in.i8[i01+ch])+off)*w01))
					v = float32(v + float32(float32(float32(o.in.i8[i10+ch])+off)*w10))
					v = float32(v + float32(float32(float32(o.in.i8[i11+ch])+off)*w11))
				} else {
					v = blend(float32(o.in.i8[i00+ch]), float32(o.in.i8[i10+ch]), float32(o.in.i8[i01+ch]), float32(o.in.i8[i11+ch]))
				}
				o.out.i8[dst+ch] = int8(int32(v) - int32(off))
			}
		}
	}
}
