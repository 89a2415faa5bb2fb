package jpeg

import (
	"bytes"
	"image/jpeg"
	"math/bits"

	"github.com/linesight/linesight/internal/rgb"
)

// YCbCr to RGB (JFIF, full range) in 16-bit fixed point, as tables indexed
// by the chroma sample: R = Y + crR[Cr], B = Y + cbB[Cb], G = Y +
// (cbG[Cb] + crG[Cr]) >> 16, each rounded to nearest.
var crR, cbB, crG, cbG [256]int32

func init() {
	const one = 1 << 16
	for i := range 256 {
		x := int32(i - 128)
		crR[i] = (91881*x + one/2) >> 16  // 1.402 * 2^16 = 91881
		cbB[i] = (116130*x + one/2) >> 16 // 1.772 * 2^16 = 116130
		crG[i] = -46802 * x               // 0.714136 * 2^16 = 46802
		cbG[i] = -22554*x + one/2         // 0.344136 * 2^16 = 22554
	}
}

// convert writes the decoded planes to dst: ceil(W/Scale) x ceil(H/Scale)
// pixels, chroma replicated over the pixels each sample covers.
func (d *Decoder) convert(dst *rgb.Image) {
	s := 8 / d.bs
	ow, oh := (d.w+s-1)/s, (d.h+s-1)/s
	dst.Ensure(ow, oh)
	pix := dst.Pix
	if d.ncomp == 1 {
		c := &d.comps[0]
		for y := 0; y < oh; y++ {
			src := c.plane[y*c.stride : y*c.stride+ow]
			out := pix[3*y*ow : 3*(y+1)*ow]
			for x, v := range src {
				out[3*x], out[3*x+1], out[3*x+2] = v, v, v
			}
		}
		return
	}
	// Shifts from output coordinates to each plane's (ratios 1, 2, 4).
	var sx, sy [3]uint
	for i := range 3 {
		c := &d.comps[i]
		sx[i] = uint(bits.TrailingZeros(uint(d.hmax / c.h)))
		sy[i] = uint(bits.TrailingZeros(uint(d.vmax / c.v)))
	}
	c0, c1, c2 := &d.comps[0], &d.comps[1], &d.comps[2]
	rgbOrder := (d.adobe && d.adobeXform == 0) || (c0.id == 'R' && c1.id == 'G' && c2.id == 'B')
	for y := 0; y < oh; y++ {
		p0 := c0.plane[(y>>sy[0])*c0.stride:]
		p1 := c1.plane[(y>>sy[1])*c1.stride:]
		p2 := c2.plane[(y>>sy[2])*c2.stride:]
		out := pix[3*y*ow : 3*(y+1)*ow]
		switch {
		case rgbOrder:
			for x := 0; x < ow; x++ {
				out[3*x], out[3*x+1], out[3*x+2] = p0[x>>sx[0]], p1[x>>sx[1]], p2[x>>sx[2]]
			}
		case sx == [3]uint{0, 1, 1}:
			// 4:2:2 and 4:2:0, the cameras' formats: a chroma pair per
			// two pixels.
			p0 = p0[:ow]
			for x := 0; x+1 < ow; x += 2 {
				cb, cr := p1[x>>1], p2[x>>1]
				r, g, b := crR[cr], (cbG[cb]+crG[cr])>>16, cbB[cb]
				o := out[3*x : 3*x+6 : 3*x+6]
				yy := int32(p0[x])
				o[0], o[1], o[2] = clamp8(yy+r), clamp8(yy+g), clamp8(yy+b)
				yy = int32(p0[x+1])
				o[3], o[4], o[5] = clamp8(yy+r), clamp8(yy+g), clamp8(yy+b)
			}
			if ow&1 == 1 {
				x := ow - 1
				yccPixel(out[3*x:3*x+3], p0[x], p1[x>>1], p2[x>>1])
			}
		default:
			for x := 0; x < ow; x++ {
				yccPixel(out[3*x:3*x+3], p0[x>>sx[0]], p1[x>>sx[1]], p2[x>>sx[2]])
			}
		}
	}
}

func yccPixel(o []uint8, y, cb, cr uint8) {
	yy := int32(y)
	o[0] = clamp8(yy + crR[cr])
	o[1] = clamp8(yy + (cbG[cb]+crG[cr])>>16)
	o[2] = clamp8(yy + cbB[cb])
}

// fallback decodes what this package does not (CMYK) with
// image/jpeg, then reduces it to the scale by averaging s x s pixels (the
// mean the reduced DCT approximates). It allocates.
func (d *Decoder) fallback(dst *rgb.Image, data []byte) error {
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return err
	}
	full := rgb.FromImage(img)
	s := 8 / d.bs
	if s == 1 {
		dst.CopyFrom(full)
		return nil
	}
	ow, oh := (full.W+s-1)/s, (full.H+s-1)/s
	dst.Ensure(ow, oh)
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			var sum [3]int
			n := 0
			for yy := y * s; yy < min(y*s+s, full.H); yy++ {
				for xx := x * s; xx < min(x*s+s, full.W); xx++ {
					i := 3 * (yy*full.W + xx)
					sum[0] += int(full.Pix[i])
					sum[1] += int(full.Pix[i+1])
					sum[2] += int(full.Pix[i+2])
					n++
				}
			}
			o := 3 * (y*ow + x)
			for k := range 3 {
				dst.Pix[o+k] = uint8((sum[k] + n/2) / n)
			}
		}
	}
	return nil
}
