// Package heatmap draws anomaly maps for people: a jet colormap blended over
// the frame with the threshold contour, the raw map as 8-bit grey, and
// simple line plots (ROC curves) as images.
package heatmap

import (
	"image"
	"image/color"
	"math"

	"github.com/linesight/linesight/internal/rgb"
)

// Jet maps v in [0, 1] to the classic jet colormap (blue, cyan, yellow,
// red), as OpenCV's COLORMAP_JET and matplotlib's "jet" do.
func Jet(v float64) (r, g, b uint8) {
	v = math.Max(0, math.Min(1, v))
	ch := func(x float64) uint8 {
		return uint8(math.Round(255 * math.Max(0, math.Min(1, x))))
	}
	return ch(1.5 - math.Abs(4*v-3)), ch(1.5 - math.Abs(4*v-2)), ch(1.5 - math.Abs(4*v-1))
}

// Overlay draws scale(m) (values in [0, 1]) in jet colours over frame with
// opacity alpha into dst (resized to the frame), and outlines in white the
// pixels where m crosses contour (NaN: no outline). m is frame-sized.
func Overlay(dst, frame *rgb.Image, m []float32, scale func(float32) float64, alpha float64, contour float64) {
	dst.Ensure(frame.W, frame.H)
	w, h := frame.W, frame.H
	for i := range w * h {
		r, g, b := Jet(scale(m[i]))
		p := frame.Pix[3*i : 3*i+3]
		o := dst.Pix[3*i : 3*i+3]
		o[0] = blend(p[0], r, alpha)
		o[1] = blend(p[1], g, alpha)
		o[2] = blend(p[2], b, alpha)
	}
	if math.IsNaN(contour) {
		return
	}
	c := float32(contour)
	for y := range h {
		for x := range w {
			i := y*w + x
			if m[i] <= c {
				continue
			}
			edge := x == 0 || y == 0 || x == w-1 || y == h-1 ||
				m[i-1] <= c || m[i+1] <= c || m[i-w] <= c || m[i+w] <= c
			if edge {
				o := dst.Pix[3*i : 3*i+3]
				o[0], o[1], o[2] = 255, 255, 255
			}
		}
	}
}

func blend(a, b uint8, alpha float64) uint8 {
	return uint8(math.Round((1-alpha)*float64(a) + alpha*float64(b)))
}

// Gray returns scale(m) as an 8-bit grey image (0 → 0, 1 → 255).
func Gray(m []float32, w, h int, scale func(float32) float64) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range w * h {
		g.Pix[i] = uint8(math.Round(255 * math.Max(0, math.Min(1, scale(m[i])))))
	}
	return g
}

// Box outlines a rectangle (frame pixels) in dst with colour c, 2 px wide.
func Box(dst *rgb.Image, x, y, w, h int, c color.RGBA) {
	set := func(px, py int) {
		if px < 0 || py < 0 || px >= dst.W || py >= dst.H {
			return
		}
		o := dst.Pix[3*(py*dst.W+px):]
		o[0], o[1], o[2] = c.R, c.G, c.B
	}
	for t := 0; t < 2; t++ {
		for px := x; px < x+w; px++ {
			set(px, y+t)
			set(px, y+h-1-t)
		}
		for py := y; py < y+h; py++ {
			set(x+t, py)
			set(x+w-1-t, py)
		}
	}
}

// Plot draws curves of points (x, y) in [0, 1]² into a size×size image with
// a frame, a grey diagonal and one colour per curve.
func Plot(size int, curves [][2][]float64, colours []color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	m := size / 10
	span := size - 2*m
	pt := func(x, y float64) [2]int {
		return [2]int{m + int(math.Round(x*float64(span))), size - m - int(math.Round(y*float64(span)))}
	}
	black := color.RGBA{0, 0, 0, 255}
	grey := color.RGBA{180, 180, 180, 255}
	line(img, pt(0, 0), pt(1, 0), black)
	line(img, pt(0, 0), pt(0, 1), black)
	line(img, pt(1, 0), pt(1, 1), black)
	line(img, pt(0, 1), pt(1, 1), black)
	line(img, pt(0, 0), pt(1, 1), grey)
	for k, c := range curves {
		xs, ys := c[0], c[1]
		for i := 1; i < len(xs) && i < len(ys); i++ {
			line(img, pt(xs[i-1], ys[i-1]), pt(xs[i], ys[i]), colours[k%len(colours)])
		}
	}
	return img
}

// line draws with Bresenham's algorithm, 2 px thick.
func line(img *image.RGBA, a, b [2]int, c color.RGBA) {
	x0, y0, x1, y1 := a[0], a[1], b[0], b[1]
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		img.SetRGBA(x0+1, y0, c)
		img.SetRGBA(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// Shrink scales img down by an integer factor (box filter) so that its
// width is at most w; an image already that narrow, or w <= 0, is
// returned as it is.
func Shrink(img image.Image, w int) image.Image {
	b := img.Bounds()
	if w <= 0 || b.Dx() <= w {
		return img
	}
	f := (b.Dx() + w - 1) / w
	nw, nh := b.Dx()/f, b.Dy()/f
	out := image.NewRGBA(image.Rect(0, 0, nw, nh))
	for y := 0; y < nh; y++ {
		for x := 0; x < nw; x++ {
			var r, g, bl, n uint32
			for dy := 0; dy < f; dy++ {
				for dx := 0; dx < f; dx++ {
					cr, cg, cb, _ := img.At(b.Min.X+x*f+dx, b.Min.Y+y*f+dy).RGBA()
					r, g, bl, n = r+cr>>8, g+cg>>8, bl+cb>>8, n+1
				}
			}
			out.SetRGBA(x, y, color.RGBA{uint8(r / n), uint8(g / n), uint8(bl / n), 255})
		}
	}
	return out
}
