package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The definitions, written the plain way from their sources, that the
// generic twins (and with them every implementation) must equal.

// requantDef is TFLite's MultiplyByQuantizedMultiplier written out:
// gemmlowp's SaturatingRoundingDoublingHighMul with its nudge and a
// truncating division, then RoundingDivideByPOT with its remainder test.
func requantDef(x, m int32, shift int) int32 {
	left, right := 0, 0
	if shift > 0 {
		left = shift
	} else {
		right = -shift
	}
	a := x * (1 << uint(left))
	ab := int64(a) * int64(m)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - (1 << 30)
	}
	v := int32((ab + nudge) / (1 << 31))
	mask := int32(1)<<uint(right) - 1
	rem, th := v&mask, mask>>1
	if v < 0 {
		th++
	}
	r := v >> uint(right)
	if rem > th {
		r++
	}
	return r
}

// TestRequantMatchesDefinition: Row and Rows equal the definition on every
// tail length and on extreme accumulators, shifts and multipliers, with
// every implementation.
func TestRequantMatchesDefinition(t *testing.T) {
	eachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 9))
		edges := []int32{math.MinInt32, math.MinInt32 + 1, -1 << 20, -1, 0, 1, 1 << 20, math.MaxInt32}
		for n := 1; n <= 67; n++ {
			bias, mult, shift := make([]int32, n), make([]int32, n), make([]int, n)
			for c := range n {
				bias[c] = int32(rng.IntN(1<<16)) - 1<<15
				mult[c] = 1<<30 + int32(rng.IntN(1<<30))
				if c%5 == 0 {
					mult[c] = math.MaxInt32
				}
				if c%5 == 1 {
					// acc·2^30 is an exact tie of the doubling high multiply
					// for every odd acc, of either sign.
					mult[c] = 1 << 30
				}
				shift[c] = rng.IntN(40) - 31
				if c%7 == 3 {
					shift[c] = rng.IntN(4) // left shifts
				}
			}
			zo := int32(rng.IntN(256)) - 128
			q, err := NewRequant(bias, mult, shift, zo, -128, 127)
			if err != nil {
				t.Fatal(err)
			}
			for trial := range 50 {
				acc := make([]int32, n)
				for c := range acc {
					acc[c] = int32(rng.Uint32()) >> uint(rng.IntN(32))
					if trial%3 == 0 {
						acc[c] = edges[rng.IntN(len(edges))]
					}
				}
				out := make([]int8, n)
				q.Row(acc, out)
				// The same row three times through Rows gives it three times.
				acc3, out3 := append(append(append([]int32{}, acc...), acc...), acc...), make([]int8, 3*n)
				q.Rows(acc3, out3, 3)
				for r := range 3 {
					for c := range n {
						if out3[r*n+c] != out[c] {
							t.Fatalf("n=%d: Rows row %d channel %d = %d, Row gives %d", n, r, c, out3[r*n+c], out[c])
						}
					}
				}
				for c := range n {
					v := requantDef(acc[c]+bias[c], mult[c], shift[c]) + zo
					want := int8(min(max(v, -128), 127))
					if out[c] != want {
						t.Fatalf("n=%d channel %d: acc %d bias %d mult %d shift %d: got %d, want %d", n, c, acc[c], bias[c], mult[c], shift[c], out[c], want)
					}
				}
			}
		}
	})
}

func TestNewRequantRejects(t *testing.T) {
	for _, c := range []struct {
		name  string
		bias  []int32
		mult  []int32
		shift []int
	}{
		{"fewer biases", []int32{0}, []int32{1 << 30, 1 << 30}, []int{0, 0}},
		{"fewer shifts", []int32{0, 0}, []int32{1 << 30, 1 << 30}, []int{0}},
		{"zero multiplier", []int32{0}, []int32{0}, []int{0}},
		{"negative multiplier", []int32{0}, []int32{-1 << 30}, []int{0}},
		{"left shift 32", []int32{0}, []int32{1 << 30}, []int{32}},
		{"right shift 32", []int32{0}, []int32{1 << 30}, []int{-32}},
	} {
		if _, err := NewRequant(c.bias, c.mult, c.shift, 0, -128, 127); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// quantizeDef is AffineQuantize written out plainly.
func quantizeDef(x, scale float32, zp, qmin, qmax, shift int32) int8 {
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

// TestQuantizeFloatMatchesDefinition: every implementation equals the
// definition on rounding ties, signed zeros, values out of range, the
// infinities and NaN, for int8 and uint8 outputs.
func TestQuantizeFloatMatchesDefinition(t *testing.T) {
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
	eachKernel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 9))
		for _, p := range params {
			for n := 0; n < 70; n++ {
				in := make([]float32, n)
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
				out := make([]int8, n)
				QuantizeFloat(in, out, p.scale, p.zp, p.qmin, p.qmax, p.shift)
				for i, x := range in {
					if want := quantizeDef(x, p.scale, p.zp, p.qmin, p.qmax, p.shift); out[i] != want {
						t.Fatalf("scale %g zp %d: x %g (q %g): got %d, want %d", p.scale, p.zp, x, x/p.scale, out[i], want)
					}
				}
			}
		}
	})
}

func FuzzQuantizeFloat(f *testing.F) {
	f.Add(float32(2.5), float32(1), int32(0))
	f.Add(float32(-1e9), float32(0.01), int32(-7))
	f.Fuzz(func(t *testing.T, x, scale float32, zp int32) {
		in := make([]float32, 37) // two whole steps of 16 and a tail
		for i := range in {
			in[i] = x * float32(i+1) / 7
		}
		saved := active
		defer func() { active = saved }()
		for _, im := range impls {
			active = im
			out := make([]int8, len(in))
			QuantizeFloat(in, out, scale, zp, -128, 127, 0)
			for i, v := range in {
				if want := quantizeDef(v, scale, zp, -128, 127, 0); out[i] != want {
					t.Fatalf("%s: x %g scale %g zp %d: got %d, want %d", im.name, v, scale, zp, out[i], want)
				}
			}
		}
	})
}

// TestAddQuantMatchesDefinition: the table (gathered by the vector kernel,
// read by the generic one) equals the definition element by element
// (TFLite's, checked against TensorFlow Lite through the engine's
// conformance tests) for every length, zero points and multipliers like a
// converter makes (scales 2^-8..2^0, so right shifts of 1..12 and, for the
// output, small left shifts too), and for every pair of inputs.
func TestAddQuantMatchesDefinition(t *testing.T) {
	eachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(6, 6))
		for trial := range 300 {
			n := 1 + rng.IntN(100)
			zp := func() int32 { return rng.Int32N(256) - 128 }
			m := func() int32 { return 1<<30 + rng.Int32N(1<<30) }
			s1, s2, so := -1-rng.IntN(12), -1-rng.IntN(12), rng.IntN(40)-31
			lo, hi := int32(-128), int32(127)
			if trial%3 == 0 {
				lo = zp() / 2 // a fused ReLU
			}
			q, err := NewAddQuant(zp(), zp(), zp(), lo, hi, m(), s1, m(), s2, m(), so)
			if err != nil {
				t.Fatal(err)
			}
			a, b := make([]int8, n), make([]int8, n)
			for i := range a {
				a[i], b[i] = int8(rng.IntN(256)-128), int8(rng.IntN(256)-128)
			}
			if trial%50 == 0 { // every pair, including the table's last entries
				n = 1 << 16
				a, b = make([]int8, n), make([]int8, n)
				for i := range n {
					a[i], b[i] = int8(i>>8), int8(i)
				}
			}
			got := make([]int8, n)
			q.Add(a, b, got)
			for i := range got {
				if want := q.one(a[i], b[i]); got[i] != want {
					t.Fatalf("trial %d n=%d shifts %d %d %d: out[%d] = %d, want %d", trial, n, s1, s2, so, i, got[i], want)
				}
			}
		}
	})
	if _, err := NewAddQuant(0, 0, 0, -128, 127, 1<<30, 32, 1<<30, 0, 1<<30, 0); err == nil {
		t.Error("NewAddQuant accepted a shift of 32")
	}
}

// TestFixedPointHandComputed: SRDHM and RDBPOT on cases worked by hand
// from gemmlowp's definitions.
func TestFixedPointHandComputed(t *testing.T) {
	// SRDHM(a, b) = round(a*b / 2^31), ties up (1.5 -> 2, -1.5 -> -1).
	for _, c := range []struct{ a, b, want int32 }{
		{1 << 30, 1 << 30, 1 << 29},
		{-(1 << 30), 1 << 30, -(1 << 29)},
		{3, 1 << 30, 2},
		{-3, 1 << 30, -1},
		{-5, 1 << 30, -2},                             // -2.5 -> -2
		{math.MinInt32, math.MinInt32, math.MaxInt32}, // the one overflow saturates
	} {
		if got := SRDHM(c.a, c.b); got != c.want {
			t.Errorf("SRDHM(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	// RDBPOT: 5/2 = 2.5 -> 3, -5/2 = -2.5 -> -3, 7/4 = 1.75 -> 2, -6/4 = -1.5 -> -2.
	for _, c := range []struct {
		x    int32
		e    int
		want int32
	}{{5, 1, 3}, {-5, 1, -3}, {7, 2, 2}, {-6, 2, -2}, {4, 2, 1}, {-1, 3, 0}, {math.MinInt32, 31, -1}, {math.MaxInt32, 31, 1}} {
		if got := RDBPOT(c.x, c.e); got != c.want {
			t.Errorf("RDBPOT(%d, %d) = %d, want %d", c.x, c.e, got, c.want)
		}
	}
}
