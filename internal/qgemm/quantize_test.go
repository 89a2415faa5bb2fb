package qgemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// quantizeRef is AffineQuantize written out plainly: the definition the
// vector kernel must reproduce bit for bit.
func quantizeRef(x, scale float32, zp, qmin, qmax, shift int32) int8 {
	q := float64(x / scale)
	r := math.Round(q) // half away from zero
	v := int32(r) + zp
	if v < qmin {
		v = qmin
	}
	if v > qmax {
		v = qmax
	}
	return int8(v - shift)
}

func TestQuantizeFloatMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 9))
	specials := []float32{0, float32(math.Copysign(0, -1)), 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, -0.49999997,
		127.5, -128.5, 255.5, 1e9, -1e9, 3e9, -3e9, 2147483648, -2147483648, float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32}
	params := []struct {
		scale                 float32
		zp, qmin, qmax, shift int32
	}{
		{1, 0, -128, 127, 0},
		{0.0078125, -3, -128, 127, 0},
		{0.017, 5, 0, 255, 128},      // uint8 stored as int8
		{1.0 / 3, 127, -128, 127, 0}, // divisions that do not round-trip
		{2.5e-5, -128, -128, 127, 0},
	}
	for _, p := range params {
		for n := 0; n < 70; n++ {
			for off := 0; off < 3; off++ {
				in := make([]float32, n+off)
				for i := range in {
					switch r.IntN(4) {
					case 0:
						in[i] = specials[r.IntN(len(specials))] * p.scale
					case 1: // exact halves of the scale
						in[i] = (float32(r.IntN(600)-300) + 0.5) * p.scale
					default:
						in[i] = float32(r.NormFloat64()*200) * p.scale
					}
				}
				out := make([]int8, n+off+2)
				out[0], out[len(out)-1] = 77, 77
				QuantizeFloat(in[off:], out[1:n+1], p.scale, p.zp, p.qmin, p.qmax, p.shift)
				if out[0] != 77 || out[len(out)-1] != 77 {
					t.Fatalf("n %d: wrote outside the output", n)
				}
				for i := 0; i < n; i++ {
					x := in[off+i]
					if want := quantizeRef(x, p.scale, p.zp, p.qmin, p.qmax, p.shift); out[1+i] != want {
						t.Fatalf("scale %g zp %d: x %g (q %g): got %d, want %d (kernel %s)", p.scale, p.zp, x, x/p.scale, out[1+i], want, chosen.name)
					}
				}
			}
		}
	}
}

func FuzzQuantizeFloat(f *testing.F) {
	f.Add(float32(2.5), float32(1), int32(0))
	f.Add(float32(-1e9), float32(0.01), int32(-7))
	f.Fuzz(func(t *testing.T, x, scale float32, zp int32) {
		in := make([]float32, 17)
		for i := range in {
			in[i] = x * float32(i+1) / 7
		}
		out := make([]int8, 17)
		QuantizeFloat(in, out, scale, zp, -128, 127, 0)
		for i, v := range in {
			if want := quantizeRef(v, scale, zp, -128, 127, 0); out[i] != want {
				t.Fatalf("x %g scale %g zp %d: got %d, want %d", v, scale, zp, out[i], want)
			}
		}
	})
}
