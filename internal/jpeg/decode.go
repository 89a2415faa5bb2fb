package jpeg

import (
	"errors"
	"fmt"
	"math"

	"github.com/linesight/linesight/internal/rgb"
)

// ErrFormat wraps every error about the data: not a JPEG, damaged, or a
// kind this package (and image/jpeg) does not decode.
var ErrFormat = errors.New("jpeg")

// ErrTooLarge: the frame header declares more pixels than the decoder's
// MaxPixels. Nothing was allocated for it.
var ErrTooLarge = errors.New("jpeg: image larger than allowed")

func errorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, a...))
}

// DefaultMaxPixels is MaxPixels when it is 0: a 16k x 16k image.
const DefaultMaxPixels = 1 << 28

// Markers (T.81 Table B.1).
const (
	mSOF0 = 0xC0 // baseline
	mSOF1 = 0xC1 // extended sequential, Huffman
	mSOF2 = 0xC2 // progressive, Huffman
	mDHT  = 0xC4
	mRST0 = 0xD0
	mSOI  = 0xD8
	mEOI  = 0xD9
	mSOS  = 0xDA
	mDQT  = 0xDB
	mDRI  = 0xDD
	mAPP0 = 0xE0
	mAPPE = 0xEE // Adobe
	mTEM  = 0x01
)

// zigzag[k] is the natural (row-major) index of the k-th coefficient in
// zig-zag order (T.81 Figure A.6).
var zigzag = [64 + 16]uint8{
	0, 1, 8, 16, 9, 2, 3, 10,
	17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34,
	27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36,
	29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46,
	53, 60, 61, 54, 47, 55, 62, 63,
	// A run that overshoots 63 lands here (harmless, then refused).
	63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
}

// component is one colour component of the frame.
type component struct {
	id     uint8
	h, v   int // sampling factors
	tq     uint8
	td, ta uint8 // Huffman tables of the current scan
	pred   int32 // DC predictor
	// The decoded samples at the output scale: stride x rows, covering
	// whole MCUs.
	plane  []uint8
	stride int
	rows   int
	// blocksW/H: blocks holding image data (a non-interleaved scan's
	// extent, A.2.2).
	blocksW, blocksH int
	// Progressive images: every block's quantized coefficients in zig-zag
	// order, (mcux*h) x (mcuy*v) blocks, built up scan by scan.
	coefs []int16
}

// Decoder decodes JPEG images into rgb.Images. Its buffers are reused from
// one image to the next: after the first frame of a stream, decoding
// another frame of the same size allocates nothing. A Decoder is not safe
// for concurrent use.
type Decoder struct {
	// Scale is the reduction: 1 (or 0), 2, 4 or 8. The output is
	// ceil(W/Scale) x ceil(H/Scale).
	Scale int
	// MaxPixels refuses images whose header declares more pixels (before
	// any allocation); 0 is DefaultMaxPixels.
	MaxPixels int
	// Fallbacks counts the images handed to image/jpeg (CMYK).
	Fallbacks int

	qt          [4][64]int32 // quantization tables, zig-zag order
	qtSet       [4]bool
	dc, ac      [4]huffTable
	dcSet       [4]bool
	acSet       [4]bool
	comps       [3]component
	ncomp       int
	w, h        int
	hmax, vmax  int
	mcux, mcuy  int
	bs          int // output block size: 8/Scale
	ri          int // restart interval in MCUs (0: none)
	sof         bool
	scans       int
	adobe       bool
	adobeXform  uint8
	blk         [64]int32
	ws          [16]int32
	br          bitReader
	scanComps   [3]*component
	nscanComps  int
	unsupported string // why the fallback decodes this image
	progressive bool
	eobrun      int // progressive AC scans: blocks left in an end-of-band run
	ss, se      int // progressive scans: the spectral band
	ah, al      int // and the successive approximation bits
}

// Config returns the width and height an image's frame header declares,
// reading no further.
func Config(data []byte) (w, h int, err error) {
	d := Decoder{MaxPixels: math.MaxInt} // nothing is allocated
	// A frame image/jpeg is to decode (errFallback) was read all the same.
	if err := d.parse(data, true); err != nil && !errors.Is(err, errFallback) {
		return 0, 0, err
	}
	return d.w, d.h, nil
}

// Decode decodes the JPEG image in data into dst (resized with
// dst.Ensure, so its buffer is reused).
func (d *Decoder) Decode(dst *rgb.Image, data []byte) error {
	switch d.Scale {
	case 0, 1:
		d.bs = 8
	case 2, 4, 8:
		d.bs = 8 / d.Scale
	default:
		return fmt.Errorf("jpeg: scale 1/%d is not 1, 1/2, 1/4 or 1/8", d.Scale)
	}
	if err := d.parse(data, false); err != nil {
		if d.unsupported != "" && !errors.Is(err, ErrTooLarge) {
			d.Fallbacks++
			if ferr := d.fallback(dst, data); ferr != nil {
				return fmt.Errorf("jpeg: %s image: %w", d.unsupported, ferr)
			}
			return nil
		}
		return err
	}
	d.convert(dst)
	return nil
}

// errFallback stops parsing at a frame header image/jpeg is to decode.
var errFallback = errors.New("fallback")

// parse walks the marker segments (B.2), decoding the scans unless
// headerOnly (which stops at the frame header).
func (d *Decoder) parse(data []byte, headerOnly bool) error {
	d.qtSet, d.dcSet, d.acSet = [4]bool{}, [4]bool{}, [4]bool{}
	d.sof, d.scans, d.ri, d.adobe, d.unsupported, d.progressive = false, 0, 0, false, "", false
	if len(data) < 2 || data[0] != 0xFF || data[1] != mSOI {
		return errorf("missing SOI marker")
	}
	p := 2
	for {
		if p >= len(data) {
			if d.scans > 0 {
				d.finish() // no EOI: accepted, as libjpeg does
				return nil
			}
			return errorf("data ends before the first scan")
		}
		if data[p] != 0xFF {
			return errorf("byte %#02x at offset %d where a marker must be", data[p], p)
		}
		for p < len(data) && data[p] == 0xFF { // fill bytes (B.1.1.2)
			p++
		}
		if p >= len(data) {
			continue
		}
		m := data[p]
		p++
		switch {
		case m == mEOI:
			if d.scans == 0 {
				return errorf("EOI before any scan")
			}
			d.finish()
			return nil
		case m == mSOI:
			return errorf("SOI inside the image")
		case m == mTEM || (m >= mRST0 && m <= mRST0+7):
			continue // standalone
		case m == 0x00:
			return errorf("stuffed 00 outside a scan")
		}
		if p+2 > len(data) {
			return errorf("marker %#02x cut short", m)
		}
		n := int(data[p])<<8 | int(data[p+1])
		if n < 2 || p+n > len(data) {
			return errorf("marker %#02x with length %d (%d bytes left)", m, n, len(data)-p)
		}
		seg := data[p+2 : p+n]
		p += n
		var err error
		switch {
		case m == mDQT:
			err = d.parseDQT(seg)
		case m == mDHT:
			err = d.parseDHT(seg)
		case m == mDRI:
			if len(seg) != 2 {
				return errorf("DRI of length %d", len(seg))
			}
			d.ri = int(seg[0])<<8 | int(seg[1])
		case m == mAPPE:
			// Adobe APP14: "Adobe", version, flags0, flags1, transform.
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
				d.adobe, d.adobeXform = true, seg[11]
			}
		case m == mSOF0 || m == mSOF1 || m == mSOF2:
			if d.sof {
				return errorf("two frame headers")
			}
			err = d.parseSOF(seg, m == mSOF2, headerOnly)
			if errors.Is(err, errFallback) {
				return err
			}
			if err == nil && headerOnly {
				return nil
			}
		case m >= 0xC3 && m <= 0xCF && m != mDHT && m != 0xC8 && m != 0xCC:
			return errorf("unsupported coding process (SOF%d: lossless, hierarchical or arithmetic)", m-0xC0)
		case m == mSOS:
			if !d.sof {
				return errorf("scan before the frame header")
			}
			p, err = d.scan(data, seg, p)
		}
		if err != nil {
			return err
		}
	}
}

func (d *Decoder) parseDQT(seg []byte) error {
	for len(seg) > 0 {
		pq, tq := seg[0]>>4, seg[0]&15
		if tq > 3 || pq > 1 {
			return errorf("DQT table %d of precision %d", tq, pq)
		}
		n := 64 << pq
		if len(seg) < 1+n {
			return errorf("DQT cut short")
		}
		for k := 0; k < 64; k++ {
			if pq == 0 {
				d.qt[tq][k] = int32(seg[1+k])
			} else {
				d.qt[tq][k] = int32(seg[1+2*k])<<8 | int32(seg[2+2*k])
			}
		}
		d.qtSet[tq] = true
		seg = seg[1+n:]
	}
	return nil
}

func (d *Decoder) parseDHT(seg []byte) error {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return errorf("DHT cut short")
		}
		tc, th := seg[0]>>4, seg[0]&15
		if tc > 1 || th > 3 {
			return errorf("DHT class %d table %d", tc, th)
		}
		var counts [16]uint8
		copy(counts[:], seg[1:17])
		total := 0
		for _, c := range counts {
			total += int(c)
		}
		if total > 256 || len(seg) < 17+total {
			return errorf("DHT with %d symbols in %d bytes", total, len(seg)-17)
		}
		t, set := &d.dc[th], &d.dcSet[th]
		if tc == 1 {
			t, set = &d.ac[th], &d.acSet[th]
		}
		if err := t.build(&counts, seg[17:17+total]); err != nil {
			return err
		}
		*set = true
		seg = seg[17+total:]
	}
	return nil
}

// parseSOF reads the frame header (B.2.2), refuses absurd sizes before
// allocating, and sizes the component planes.
func (d *Decoder) parseSOF(seg []byte, progressive, headerOnly bool) error {
	if len(seg) < 6 {
		return errorf("frame header cut short")
	}
	prec := seg[0]
	d.h = int(seg[1])<<8 | int(seg[2])
	d.w = int(seg[3])<<8 | int(seg[4])
	nc := int(seg[5])
	if d.w == 0 || d.h == 0 {
		return errorf("image of %dx%d pixels (a height given by DNL is not supported)", d.w, d.h)
	}
	limit := d.MaxPixels
	if limit <= 0 {
		limit = DefaultMaxPixels
	}
	// Config (headerOnly) allocates nothing and reports any size.
	if !headerOnly && int64(d.w)*int64(d.h) > int64(limit) {
		return fmt.Errorf("%w: %dx%d pixels, at most %d allowed", ErrTooLarge, d.w, d.h, limit)
	}
	if len(seg) != 6+3*nc {
		return errorf("frame header of %d components in %d bytes", nc, len(seg))
	}
	if prec != 8 {
		return errorf("%d-bit samples (only 8-bit are supported)", prec)
	}
	d.sof = true
	d.progressive = progressive
	switch {
	case nc == 4:
		d.unsupported = "4-component (CMYK)"
		return errFallback
	case nc != 1 && nc != 3:
		return errorf("%d components", nc)
	}
	d.ncomp = nc
	d.hmax, d.vmax = 1, 1
	for i := 0; i < nc; i++ {
		c := &d.comps[i]
		b := seg[6+3*i:]
		c.id, c.h, c.v, c.tq = b[0], int(b[1]>>4), int(b[1]&15), b[2]
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return errorf("component %d with sampling factors %dx%d", c.id, c.h, c.v)
		}
		if c.tq > 3 {
			return errorf("component %d uses quantization table %d", c.id, c.tq)
		}
		for j := 0; j < i; j++ {
			if d.comps[j].id == c.id {
				return errorf("two components with id %d", c.id)
			}
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
	}
	if nc == 1 {
		// A single component's MCU is one block whatever its factors
		// (A.2.2).
		d.comps[0].h, d.comps[0].v, d.hmax, d.vmax = 1, 1, 1, 1
	}
	for i := 0; i < nc; i++ {
		c := &d.comps[i]
		// Ratios of 1, 2 or 4 only: what replication upsampling handles
		// with shifts (and all that cameras and encoders write).
		if rx, ry := d.hmax/c.h, d.vmax/c.v; d.hmax%c.h != 0 || d.vmax%c.v != 0 || rx == 3 || ry == 3 {
			return errorf("sampling factors %dx%d against %dx%d", c.h, c.v, d.hmax, d.vmax)
		}
	}
	d.mcux = (d.w + 8*d.hmax - 1) / (8 * d.hmax)
	d.mcuy = (d.h + 8*d.vmax - 1) / (8 * d.vmax)
	if headerOnly {
		return nil
	}
	for i := 0; i < nc; i++ {
		c := &d.comps[i]
		c.stride = d.mcux * c.h * d.bs
		c.rows = d.mcuy * c.v * d.bs
		if n := c.stride * c.rows; cap(c.plane) < n {
			c.plane = make([]uint8, n)
		} else {
			c.plane = c.plane[:n]
		}
		// A.2.2: a component's own size rounded up to whole blocks.
		cw := (d.w*c.h + d.hmax - 1) / d.hmax
		ch := (d.h*c.v + d.vmax - 1) / d.vmax
		c.blocksW, c.blocksH = (cw+7)/8, (ch+7)/8
		if progressive {
			n := d.mcux * c.h * d.mcuy * c.v * 64
			if cap(c.coefs) < n {
				c.coefs = make([]int16, n)
			} else {
				c.coefs = c.coefs[:n]
				clear(c.coefs)
			}
		}
	}
	return nil
}

// scan decodes one scan (B.2.3, F.2) whose header is seg and whose
// entropy-coded data starts at data[p]; it returns where the next marker
// is.
func (d *Decoder) scan(data, seg []byte, p int) (int, error) {
	if len(seg) < 1 {
		return 0, errorf("scan header cut short")
	}
	ns := int(seg[0])
	if ns < 1 || ns > d.ncomp || len(seg) != 4+2*ns {
		return 0, errorf("scan header of %d components in %d bytes", ns, len(seg))
	}
	for i := 0; i < ns; i++ {
		id, t := seg[1+2*i], seg[2+2*i]
		var c *component
		for j := 0; j < d.ncomp; j++ {
			if d.comps[j].id == id {
				c = &d.comps[j]
			}
		}
		if c == nil {
			return 0, errorf("scan of component %d, not in the frame", id)
		}
		for j := 0; j < i; j++ {
			if d.scanComps[j] == c {
				return 0, errorf("component %d twice in a scan", id)
			}
		}
		c.td, c.ta = t>>4, t&15
		if c.td > 3 || c.ta > 3 {
			return 0, errorf("component %d uses Huffman tables %d/%d", id, c.td, c.ta)
		}
		if !d.qtSet[c.tq] {
			return 0, errorf("component %d uses quantization table %d, not defined", id, c.tq)
		}
		c.pred = 0
		d.scanComps[i] = c
	}
	d.nscanComps = ns
	d.ss, d.se, d.ah, d.al = int(seg[1+2*ns]), int(seg[2+2*ns]), int(seg[3+2*ns]>>4), int(seg[3+2*ns]&15)
	if err := d.checkScan(); err != nil {
		return 0, err
	}
	d.eobrun = 0
	// Blocks per "MCU" and MCUs: an interleaved scan's MCU holds h x v
	// blocks of each component; a single component's is one block.
	mcuW, mcuH := d.mcux, d.mcuy
	if ns == 1 {
		mcuW, mcuH = d.scanComps[0].blocksW, d.scanComps[0].blocksH
	}
	d.br.reset(data, p)
	total := mcuW * mcuH
	next := 0 // expected RSTn
	for i := 0; i < total; i++ {
		if d.ri > 0 && i > 0 && i%d.ri == 0 {
			if err := d.restart(next); err != nil {
				return 0, err
			}
			next = (next + 1) & 7
		}
		mx, my := i%mcuW, i/mcuW
		if ns == 1 {
			c := d.scanComps[0]
			if err := d.block(c, mx, my); err != nil {
				return 0, err
			}
		} else {
			for j := 0; j < ns; j++ {
				c := d.scanComps[j]
				for by := 0; by < c.v; by++ {
					for bx := 0; bx < c.h; bx++ {
						if err := d.block(c, mx*c.h+bx, my*c.v+by); err != nil {
							return 0, err
						}
					}
				}
			}
		}
		if d.br.overrun() {
			return 0, errorf("scan data ends after %d of %d MCUs", i, total)
		}
	}
	d.scans++
	// The next marker: skip what is left of the scan (the last byte's
	// padding bits, and bytes a careless encoder left, as libjpeg does).
	q := d.br.pos
	for q+1 < len(data) && (data[q] != 0xFF || data[q+1] == 0x00 || (data[q+1] >= mRST0 && data[q+1] <= mRST0+7)) {
		q++
	}
	if q+1 >= len(data) {
		q = len(data)
	}
	return q, nil
}

// restart expects RSTn after the bits of the last interval (F.2.1.3.1)
// and resets the predictors.
func (d *Decoder) restart(n int) error {
	q := d.br.pos
	data := d.br.data
	for q+1 < len(data) && (data[q] != 0xFF || data[q+1] == 0x00 || data[q+1] == 0xFF) {
		q++
	}
	if q+1 >= len(data) || data[q+1] != byte(mRST0+n) {
		return errorf("restart marker RST%d missing", n)
	}
	d.br.reset(data, q+2)
	for j := 0; j < d.nscanComps; j++ {
		d.scanComps[j].pred = 0
	}
	d.eobrun = 0
	return nil
}

// block decodes one block of c (F.2.2) and writes its inverse DCT at block
// (bx, by) of c's plane.
func (d *Decoder) block(c *component, bx, by int) error {
	if d.progressive {
		return d.progressiveBlock(c, bx, by)
	}
	br := &d.br
	q := &d.qt[c.tq]
	// DC: the difference to the predictor.
	s, err := br.decode(&d.dc[c.td])
	if err != nil {
		return err
	}
	if s > 11 {
		return errorf("DC difference of %d bits", s)
	}
	if s > 0 {
		c.pred += br.receiveExtend(s)
	}
	blk := &d.blk
	blk[0] = c.pred * q[0]
	// AC, in zig-zag order, dequantized into natural order.
	ac := &d.ac[c.ta]
	last := 0
	for k := 1; k < 64; k++ {
		if br.n < 32 { // a code and its bits are at most 16+10 bits
			br.fill()
		}
		if e := ac.acFast[br.acc>>(64-lookBits)]; e != 0 {
			br.acc <<= uint(e & 0xFF)
			br.n -= uint(e & 0xFF)
			if k += int(e>>8) & 15; k > 63 {
				return errorf("AC coefficients past the end of a block")
			}
			blk[zigzag[k]] = (e >> 16) * q[k]
			last = k
			continue
		}
		rs, err := br.decode(ac)
		if err != nil {
			return err
		}
		r, s := int(rs>>4), rs&15
		if s == 0 {
			if r != 15 {
				break // EOB
			}
			k += 15
			continue
		}
		k += r
		if k > 63 {
			return errorf("AC coefficients past the end of a block")
		}
		blk[zigzag[k]] = br.receiveExtend(s) * q[k]
		last = k
	}
	d.transform(c, bx, by, last)
	return nil
}

// transform writes the inverse DCT of d.blk (dequantized, natural order;
// last is the zig-zag index of its last nonzero coefficient) at block (bx,
// by) of c's plane, at the output scale, and clears d.blk.
func (d *Decoder) transform(c *component, bx, by, last int) {
	blk := &d.blk
	off := by*d.bs*c.stride + bx*d.bs
	dst := c.plane[off:]
	switch {
	case d.bs == 1:
		dst[0] = dcValue(blk[0])
	case last == 0:
		fill(dst, c.stride, d.bs, dcValue(blk[0]))
	case d.bs == 8:
		idct8(blk, dst, c.stride)
	case d.bs == 4:
		idctN(blk, dst, c.stride, 4, idctM4, d.ws[:])
	default:
		idctN(blk, dst, c.stride, 2, idctM2, d.ws[:])
	}
	if last > 0 {
		*blk = [64]int32{}
	}
}
