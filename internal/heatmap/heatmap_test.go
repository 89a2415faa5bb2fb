package heatmap

import (
	"image/color"
	"math"
	"testing"

	"github.com/linesight/linesight/internal/rgb"
)

func TestJetMatchesTheColormap(t *testing.T) {
	// Matplotlib's jet: dark blue at 0, light green at 0.5, dark red at 1.
	for _, c := range []struct {
		v       float64
		r, g, b uint8
	}{{0, 0, 0, 128}, {0.5, 128, 255, 128}, {1, 128, 0, 0}, {-3, 0, 0, 128}, {0.25, 0, 128, 255}, {0.75, 255, 128, 0}} {
		r, g, b := Jet(c.v)
		if r != c.r || g != c.g || b != c.b {
			t.Errorf("Jet(%v) = %d,%d,%d, want %d,%d,%d", c.v, r, g, b, c.r, c.g, c.b)
		}
	}
}

func TestOverlayBlendsAndOutlines(t *testing.T) {
	frame := rgb.New(4, 4) // black
	m := make([]float32, 16)
	m[5], m[6], m[9], m[10] = 1, 1, 1, 1 // a 2x2 blob inside
	var dst rgb.Image
	Overlay(&dst, frame, m, func(v float32) float64 { return float64(v) }, 0.5, 0.5)
	// Outside: half of jet(0) = (0, 0, 64). Blob pixels are all on its edge: white.
	if p := dst.At(0, 0); p != (color.RGBA{0, 0, 64, 255}) {
		t.Errorf("background pixel %v", p)
	}
	if p := dst.At(1, 1); p != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("contour pixel %v", p)
	}
	Overlay(&dst, frame, m, func(v float32) float64 { return float64(v) }, 0.5, math.NaN())
	if p := dst.At(1, 1); p != (color.RGBA{64, 0, 0, 255}) {
		t.Errorf("blob pixel without contour %v, want half of jet(1)", p)
	}
}
