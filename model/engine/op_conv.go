package engine

import (
	"fmt"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/qgemm"
	"github.com/linesight/linesight/internal/vec"
	"github.com/linesight/linesight/model/tflite"
)

// convGeom is the geometry of a 2-D convolution over NHWC tensors.
type convGeom struct {
	n, h, w, cin    int
	kh, kw, cout    int
	oh, ow          int
	sh, sw, dh, dw  int
	padTop, padLeft int
	pointwise       bool // 1x1, stride 1, no padding: input rows are the patches
}

func (g *convGeom) k() int { return g.kh * g.kw * g.cin }
func (g *convGeom) m() int { return g.n * g.oh * g.ow }

// outputSize sets the output size and the padding before the input, from
// the operator's padding and a fused PAD's (which comes with VALID).
func (g *convGeom) outputSize(p tflite.Padding, pad fusedPad) (err error) {
	if g.oh, g.padTop, err = computePadding(p, g.h+pad.top+pad.bottom, g.kh, g.sh, g.dh); err != nil {
		return fmt.Errorf("height: %w", err)
	}
	if g.ow, g.padLeft, err = computePadding(p, g.w+pad.left+pad.right, g.kw, g.sw, g.dw); err != nil {
		return fmt.Errorf("width: %w", err)
	}
	g.padTop += pad.top
	g.padLeft += pad.left
	return nil
}

// prepareConv prepares a CONV_2D; pad is a PAD folded into it (fusePads):
// its padding is VALID over the padded size, and the fused rows and columns
// are padded as SAME's are, with the input's zero point.
func (ip *Interpreter) prepareConv(op *tflite.Operator, pad fusedPad) (kernel, error) {
	opt, ok := op.Options.(tflite.Conv2DOptions)
	if !ok {
		return nil, fmt.Errorf("missing Conv2DOptions")
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
	if !filter.constant {
		return nil, fmt.Errorf("%w: filter %s is not constant", ErrUnsupportedOp, filter.where())
	}
	if filter.shape[3] != in.shape[3] {
		return nil, fmt.Errorf("%s has %d input channels, input has %d (grouped convolution is not supported)", filter.where(), filter.shape[3], in.shape[3])
	}
	g := convGeom{n: in.shape[0], h: in.shape[1], w: in.shape[2], cin: in.shape[3],
		cout: filter.shape[0], kh: filter.shape[1], kw: filter.shape[2],
		sh: int(opt.StrideH), sw: int(opt.StrideW), dh: int(opt.DilationH), dw: int(opt.DilationW)}
	if err := g.outputSize(opt.Padding, pad); err != nil {
		return nil, err
	}
	if err := checkShape(out, []int{g.n, g.oh, g.ow, g.cout}); err != nil {
		return nil, err
	}
	g.pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.padTop == 0 && g.padLeft == 0 && !pad.any()
	if g.k() > qgemm.MaxK {
		return nil, fmt.Errorf("%w: filter of %d taps per output", ErrUnsupportedOp, g.k())
	}
	if in.typ == tflite.Float32 {
		return newFloatGemmOp(ip, in, filter, bias, out, g, opt.Activation)
	}
	return newQuantGemmOp(ip, in, filter, bias, out, g, opt.Activation)
}

func (ip *Interpreter) prepareFullyConnected(op *tflite.Operator) (kernel, error) {
	opt, ok := op.Options.(tflite.FullyConnectedOptions)
	if !ok {
		return nil, fmt.Errorf("missing FullyConnectedOptions")
	}
	if opt.WeightsFormat != 0 {
		return nil, fmt.Errorf("%w: shuffled weights format", ErrUnsupportedOp)
	}
	ins, out, err := ip.ioTensors(op, 2)
	if err != nil {
		return nil, err
	}
	in, filter, bias := ins[0], ins[1], ip.optInput(op, 2)
	if err := checkRank(filter, 2); err != nil {
		return nil, err
	}
	if !filter.constant {
		return nil, fmt.Errorf("%w: weights %s are not constant", ErrUnsupportedOp, filter.where())
	}
	k, units := filter.shape[1], filter.shape[0]
	if k == 0 || in.n%k != 0 {
		return nil, fmt.Errorf("%s has %d elements, not a multiple of the %d weights per unit", in.where(), in.n, k)
	}
	batch := in.n / k
	if out.n != batch*units {
		return nil, fmt.Errorf("%s has %d elements, the op computes %d x %d", out.where(), out.n, batch, units)
	}
	// A fully connected layer is a 1x1 convolution over a batch x 1 x 1 x k input.
	g := convGeom{n: batch, h: 1, w: 1, cin: k, kh: 1, kw: 1, cout: units, oh: 1, ow: 1,
		sh: 1, sw: 1, dh: 1, dw: 1, pointwise: true}
	if in.typ == tflite.Float32 {
		return newFloatGemmOp(ip, in, filter, bias, out, g, opt.Activation)
	}
	return newQuantGemmOp(ip, in, filter, bias, out, g, opt.Activation)
}

// im2colRow writes the patch of output pixel r (flat over n, oh, ow) into
// dst, filling taps that fall in the padding with pad.
func im2colRow[T int8 | float32](g *convGeom, src []T, r int, dst []T, pad T) {
	ox := r % g.ow
	oy := (r / g.ow) % g.oh
	b := r / (g.ow * g.oh)
	p := 0
	ix0 := ox*g.sw - g.padLeft
	// With dilation 1 and the whole filter row inside the input, the kw
	// input pixels of a filter row are contiguous: one copy instead of kw.
	rowInside := g.dw == 1 && ix0 >= 0 && ix0+g.kw <= g.w
	for ky := 0; ky < g.kh; ky++ {
		iy := oy*g.sh - g.padTop + ky*g.dh
		if rowInside && iy >= 0 && iy < g.h {
			s := ((b*g.h+iy)*g.w + ix0) * g.cin
			n := g.kw * g.cin
			// The stems of image models (7 or 3 pixels of 3 channels) copy
			// as fixed-size arrays, which compile to inline moves: a
			// memmove call per 21 bytes cost more than the GEMM using them.
			switch n {
			case 21:
				*(*[21]T)(dst[p : p+21]) = [21]T(src[s : s+21])
			case 9:
				*(*[9]T)(dst[p : p+9]) = [9]T(src[s : s+9])
			default:
				copy(dst[p:p+n], src[s:s+n])
			}
			p += n
			continue
		}
		for kx := 0; kx < g.kw; kx++ {
			ix := ix0 + kx*g.dw
			d := dst[p : p+g.cin]
			if iy < 0 || iy >= g.h || ix < 0 || ix >= g.w {
				for i := range d {
					d[i] = pad
				}
			} else {
				s := ((b*g.h+iy)*g.w + ix) * g.cin
				copy(d, src[s:s+g.cin])
			}
			p += g.cin
		}
	}
}

// convBlockRows is how many output pixels are packed and multiplied at once;
// small enough for the packed rows to stay in L2, and a multiple of the
// SIMD kernels' row strips (6 for AVX-512 VNNI, 3 for AVX2, 4 for NEON).
const convBlockRows = 48

// quantGemmOp is an int8 convolution or fully connected layer:
// acc = Σ (x - zx)(w - zw) + bias, out = clamp(MBQM(acc, m_c, s_c) + zo).
// Expanding the product gives Σxw - zw·Σx + colTerm_c, with
// colTerm_c = bias_c - zx·Σw_c + K·zx·zw_c folded at load; Σx per row is only
// needed when a filter zero point is not 0 (uint8 models).
type quantGemmOp struct {
	g        convGeom
	in, out  *rtensor
	w        []int8 // [cout][k], stored domain
	kp       int    // k rounded up to qgemm.KAlign for im2col rows
	packed   *qgemm.Packed
	rq       *vec.Requant // vectorised requantization; nil: the loop below
	colTerm  []int32
	wzp      []int32
	needRows bool
	mult     []int32
	shift    []int
	zo       int32
	lo, hi   int32
	packA    [][]int8  // per worker: convBlockRows x kp, zero past k
	acc      [][]int32 // per worker: convBlockRows x cout
	rowSum   [][]int32
	body     func(lo, hi, worker int)

	// In-place patches (inPlace): the VNNI kernel reads each output
	// pixel's patch where it lies, a segment per filter row, instead of an
	// im2col copy, and requantizes its tile in registers
	// (qgemm.GemmRowsRequant). The input is first copied into padded as
	// offset bytes (x+128, which spares the kernel the patches' sums),
	// with the border filled with the zero point once, at load, so that
	// every patch lies inside. A filter row of kw·cin values not a
	// multiple of 4 (the stem's 7·3) is read as segLen, the bytes past it
	// meeting zero weights; padded has that much slack at its end.
	inPlace    bool
	padded     []int8
	hp, wp     int           // padded input height and width
	offPacked  *qgemm.Packed // with the requantization (bias less 128·Σw)
	inRows     []qgemm.Rows
	copyRowsFn func(lo, hi, worker int)
	// The work is split into tiles of qgemm.RowsStrip output pixels by
	// BlockCols channels, strips first: nblk tiles a strip, strips of
	// them; each worker claims at least minTiles at once.
	nblk, strips, minTiles int
}

func newQuantGemmOp(ip *Interpreter, in, filter, bias, out *rtensor, g convGeom, act tflite.Activation) (kernel, error) {
	if err := checkSameType(in, out); err != nil {
		return nil, err
	}
	if filter.typ != tflite.Int8 && filter.typ != tflite.Uint8 {
		return nil, fmt.Errorf("%w: %v filter with %v input", ErrUnsupportedOp, filter.typ, in.typ)
	}
	mult, shift, err := perChannelMultipliers(in, filter, out, g.cout)
	if err != nil {
		return nil, err
	}
	wzp, err := filterZeroPoints(filter, g.cout)
	if err != nil {
		return nil, err
	}
	k := g.k()
	o := &quantGemmOp{g: g, in: in, out: out, w: filter.i8, wzp: wzp, mult: mult, shift: shift, zo: out.zp}
	if o.lo, o.hi, err = actRange(out, act); err != nil {
		return nil, err
	}
	o.colTerm = make([]int32, g.cout)
	for c := 0; c < g.cout; c++ {
		var sw int32
		for _, v := range o.w[c*k : (c+1)*k] {
			sw += int32(v)
		}
		var b int32
		if bias != nil {
			if bias.typ != tflite.Int32 || !bias.constant || bias.n != g.cout {
				return nil, fmt.Errorf("%w: bias %s must be a constant INT32 vector of %d", ErrUnsupportedOp, bias.where(), g.cout)
			}
			b = bias.i32[c]
		}
		o.colTerm[c] = b - in.zp*sw + int32(k)*in.zp*wzp[c]
		if wzp[c] != 0 {
			o.needRows = true
		}
	}
	if !o.needRows {
		// Multipliers outside a Q31 mantissa's range (a zero scale) stay
		// on the scalar path.
		if rq, err := vec.NewRequant(o.colTerm, o.mult, o.shift, o.zo, o.lo, o.hi); err == nil {
			o.rq = rq
		}
	}
	// A pointwise layer reads its rows in place from the input already;
	// going through the offset copy pays when it widens its input (the
	// copy costs cin bytes a pixel, the fused requantization saves a pass
	// over cout accumulators), not when it narrows it (MobileNetV2's
	// projections: measured slower).
	if seg := roundUp(g.kw*g.cin, qgemm.KAlign()); (!g.pointwise || g.cout >= g.cin) && g.dw == 1 && !o.needRows && o.rq != nil && qgemm.RowsInPlace(seg) {
		if err := o.setInPlace(ip.threads, seg); err != nil {
			return nil, err
		}
		return o, nil
	}
	// The weights are packed once for the kernel the dispatcher chose. An
	// im2col row is padded with zeros to the kernel's k granularity (and so
	// are the weights), which adds nothing to any sum and keeps the kernels
	// off their scalar tail; a pointwise conv reads its input in place.
	o.kp = k
	if a := qgemm.KAlign(); !g.pointwise && a > 1 {
		o.kp = roundUp(k, a)
	}
	wp := o.w
	if o.kp != k {
		wp = make([]int8, g.cout*o.kp)
		for c := 0; c < g.cout; c++ {
			copy(wp[c*o.kp:c*o.kp+k], o.w[c*k:(c+1)*k])
		}
	}
	if o.packed, err = qgemm.Pack(g.cout, o.kp, wp, o.kp); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedOp, err)
	}
	for w := 0; w < ip.threads; w++ {
		if !g.pointwise {
			o.packA = append(o.packA, make([]int8, convBlockRows*o.kp))
		}
		o.acc = append(o.acc, make([]int32, convBlockRows*g.cout))
		o.rowSum = append(o.rowSum, make([]int32, convBlockRows))
	}
	o.body = o.rows
	return o, nil
}

func roundUp(x, a int) int { return (x + a - 1) / a * a }

func (o *quantGemmOp) setInPlace(threads, segLen int) error {
	g := &o.g
	o.inPlace = true
	// The filters, each filter row padded with zeros to segLen.
	row := g.kw * g.cin
	k := g.kh * segLen
	w := make([]int8, g.cout*k)
	bias := make([]int32, g.cout)
	for c := range g.cout {
		var sw int32
		for ky := range g.kh {
			src := o.w[(c*g.kh+ky)*row : (c*g.kh+ky+1)*row]
			copy(w[c*k+ky*segLen:], src)
			for _, v := range src {
				sw += int32(v)
			}
		}
		// The kernel sums (x+128)·w: 128·Σw comes off the bias.
		bias[c] = o.colTerm[c] - 128*sw
	}
	rq, err := vec.NewRequant(bias, o.mult, o.shift, o.zo, o.lo, o.hi)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupportedOp, err)
	}
	if o.offPacked, err = qgemm.PackOffsetA(g.cout, k, w, k, rq); err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupportedOp, err)
	}
	padBottom := max(0, (g.oh-1)*g.sh+(g.kh-1)*g.dh+1-g.h-g.padTop)
	padRight := max(0, (g.ow-1)*g.sw+g.kw-g.w-g.padLeft)
	o.hp, o.wp = g.h+g.padTop+padBottom, g.w+g.padLeft+padRight
	o.padded = make([]int8, g.n*o.hp*o.wp*g.cin+segLen-row)
	zp := int8(o.in.zp) ^ -128
	for i := range o.padded {
		o.padded[i] = zp
	}
	o.copyRowsFn = o.copyRows
	// The last output pixel's patch, the furthest any row reads, must lie
	// in padded: then GemmRowsRequant cannot refuse a block at run time.
	last := ((g.n-1)*o.hp+(g.oh-1)*g.sh)*o.wp + (g.ow-1)*g.sw
	if end := last*g.cin + (g.kh-1)*g.dh*o.wp*g.cin + segLen; end > len(o.padded) {
		return fmt.Errorf("%w: in-place patches reach %d of a padded input of %d", ErrUnsupportedOp, end, len(o.padded))
	}
	for range threads {
		o.inRows = append(o.inRows, qgemm.Rows{A: o.padded, AOff: make([]int32, 0, convBlockRows),
			SegLen: segLen, Seg: g.kh, SegStride: g.dh * o.wp * g.cin})
	}
	o.nblk = (g.cout + qgemm.BlockCols - 1) / qgemm.BlockCols
	o.strips = (g.m() + qgemm.RowsStrip - 1) / qgemm.RowsStrip
	// A claim of at least some 0.4 million MACs (a microsecond or so)
	// keeps the claims' cost small beside the work they hand out.
	o.minTiles = max(1, 400_000/(qgemm.RowsStrip*qgemm.BlockCols*k))
	o.body = o.tilesInPlace
	return nil
}

func (o *quantGemmOp) run(p *parallel.Pool) {
	if o.inPlace {
		p.Run(o.g.n*o.g.h, 8, o.copyRowsFn)
		// Tiles rather than rows: ResNet18's layer3 has 196 output
		// pixels, 33 strips, where chunks of rows left one thread up to
		// a sixth of the layer behind the other; its 132 tiles, handed
		// out in shrinking claims, end within a tile of each other.
		p.RunGuided(o.strips*o.nblk, o.minTiles, o.body)
		return
	}
	// Rows handed out in shrinking claims (see RunGuided): a thread
	// descheduled for a while costs a claim, not half the layer, and a
	// cheap layer is not cut into hundreds of claims. MobileNetV2's
	// projections (112x112 pixels, k = 32, 16 channels out) were 261
	// claims of 48 rows, each an atomic on a line both threads write, for
	// 25 thousand MACs; in this shared VM's slow spells two threads ran
	// that layer slower than one, and the whole network at 2 threads
	// went from 1.82 to 1.75 ms with these claims (no change otherwise).
	p.RunGuided(o.g.m(), convMinRows(o.kp, o.g.cout), o.body)
}

// convMinRows is the fewest output pixels a claim takes: some 0.4 million
// MACs, as in-place tiles (setInPlace), in strips of 6 (the VNNI tile's
// height).
func convMinRows(k, cout int) int {
	return max(1, 400_000/(k*cout)/6) * 6
}

// copyRows copies input rows [lo, hi) (over batch and height) inside the
// padded input's border, as offset bytes.
func (o *quantGemmOp) copyRows(lo, hi, _ int) {
	g := &o.g
	row := g.w * g.cin
	for r := lo; r < hi; r++ {
		b, y := r/g.h, r%g.h
		d := ((b*o.hp+y+g.padTop)*o.wp + g.padLeft) * g.cin
		qgemm.OffsetCopy(o.padded[d:d+row], o.in.i8[r*row:(r+1)*row])
	}
}

// tilesInPlace computes tiles [lo, hi) (see nblk) with the patches read in
// place (see inPlace): runs of whole strips in blocks of up to
// convBlockRows output pixels, the partial strips at either end of the
// range for their tiles' columns only.
func (o *quantGemmOp) tilesInPlace(lo, hi, worker int) {
	const perCall = convBlockRows / qgemm.RowsStrip
	for t := lo; t < hi; {
		s, b0 := t/o.nblk, t%o.nblk
		if b0 == 0 && hi-t >= o.nblk {
			ns := min((hi-t)/o.nblk, perCall)
			o.stripsInPlace(s, ns, 0, o.nblk, worker)
			t += ns * o.nblk
			continue
		}
		b1 := min(o.nblk, b0+hi-t)
		o.stripsInPlace(s, 1, b0, b1, worker)
		t += b1 - b0
	}
}

// stripsInPlace computes ns strips from strip s on, column blocks b0..b1-1.
func (o *quantGemmOp) stripsInPlace(s, ns, b0, b1, worker int) {
	g := &o.g
	cout := g.cout
	rs := &o.inRows[worker]
	r0 := s * qgemm.RowsStrip
	nr := min(ns*qgemm.RowsStrip, g.m()-r0)
	// The output pixel's coordinates advance by one per row: stepped, not
	// divided out three times per pixel.
	ox, oy, b := r0%g.ow, (r0/g.ow)%g.oh, r0/(g.ow*g.oh)
	rs.AOff = rs.AOff[:0]
	for range nr {
		rs.AOff = append(rs.AOff, int32(((b*o.hp+oy*g.sh)*o.wp+ox*g.sw)*g.cin))
		if ox++; ox == g.ow {
			ox = 0
			if oy++; oy == g.oh {
				oy = 0
				b++
			}
		}
	}
	c0, c1 := b0*qgemm.BlockCols, min(b1*qgemm.BlockCols, cout)
	// Shapes were checked when the op was prepared.
	_ = o.offPacked.GemmRowsRequantCols(rs, c0, c1-c0, o.out.i8[r0*cout+c0:(r0+nr-1)*cout+c1], cout)
}

func (o *quantGemmOp) rows(lo, hi, worker int) {
	g := &o.g
	k, kp, cout := g.k(), o.kp, g.cout
	acc, rowSum := o.acc[worker], o.rowSum[worker]
	for r0 := lo; r0 < hi; r0 += convBlockRows {
		nr := min(convBlockRows, hi-r0)
		var a []int8
		if g.pointwise {
			a = o.in.i8[r0*k : (r0+nr)*k]
		} else {
			a = o.packA[worker]
			for i := 0; i < nr; i++ {
				im2colRow(g, o.in.i8, r0+i, a[i*kp:i*kp+k], int8(o.in.zp))
			}
		}
		// Shapes were checked when the op was prepared.
		_ = o.packed.Gemm(nr, a, kp, acc, cout)
		if o.needRows {
			qgemm.RowSums(nr, k, a, kp, rowSum)
		}
		dst := o.out.i8[r0*cout : (r0+nr)*cout]
		if o.rq != nil {
			o.rq.Rows(acc, dst, nr)
			continue
		}
		for i := 0; i < nr; i++ {
			row := acc[i*cout : (i+1)*cout]
			d := dst[i*cout : (i+1)*cout]
			for c, v := range row {
				v += o.colTerm[c]
				if o.needRows {
					v -= o.wzp[c] * rowSum[i]
				}
				v = mulByQuantizedMultiplier(v, o.mult[c], o.shift[c]) + o.zo
				d[c] = int8(clamp32(v, o.lo, o.hi))
			}
		}
	}
}

// floatGemmOp is a float32 convolution or fully connected layer.
type floatGemmOp struct {
	g       convGeom
	in, out *rtensor
	w, bias []float32
	lo, hi  float32
	packA   [][]float32
	body    func(lo, hi, worker int)
}

func newFloatGemmOp(ip *Interpreter, in, filter, bias, out *rtensor, g convGeom, act tflite.Activation) (kernel, error) {
	if err := checkSameType(in, out); err != nil {
		return nil, err
	}
	if err := checkSameType(in, filter); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedOp, err)
	}
	o := &floatGemmOp{g: g, in: in, out: out, w: filter.f32, bias: make([]float32, g.cout)}
	if bias != nil {
		if bias.typ != tflite.Float32 || !bias.constant || bias.n != g.cout {
			return nil, fmt.Errorf("%w: bias %s must be a constant FLOAT32 vector of %d", ErrUnsupportedOp, bias.where(), g.cout)
		}
		copy(o.bias, bias.f32)
	}
	var err error
	if o.lo, o.hi, err = floatRange(act); err != nil {
		return nil, err
	}
	for w := 0; w < ip.threads; w++ {
		o.packA = append(o.packA, make([]float32, g.k()))
	}
	o.body = o.rows
	return o, nil
}

func (o *floatGemmOp) run(p *parallel.Pool) { p.Run(o.g.m(), 8, o.body) }

func (o *floatGemmOp) rows(lo, hi, worker int) {
	g := &o.g
	k, cout := g.k(), g.cout
	for r := lo; r < hi; r++ {
		var a []float32
		if g.pointwise {
			a = o.in.f32[r*k : (r+1)*k]
		} else {
			a = o.packA[worker]
			im2colRow(g, o.in.f32, r, a, 0)
		}
		d := o.out.f32[r*cout : (r+1)*cout]
		for c := range d {
			w := o.w[c*k : (c+1)*k]
			s := o.bias[c]
			for i, v := range a {
				s += v * w[i]
			}
			d[c] = min(max(s, o.lo), o.hi)
		}
	}
}
