package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The differential tests: every implementation this machine runs against
// the generic twin, through the exported entries with the implementation
// switched (use), on random inputs, on lengths around every vector step
// (zero, odd tails, whole steps, unrolled steps), on operands at unaligned
// offsets and with canaries around every output, requiring identical bits.

// use makes im the implementation the exported entries call for the rest
// of the test (as LINESIGHT_VEC=name would at start).
func use(t testing.TB, im *impl) {
	saved := active
	active = im
	t.Cleanup(func() { active = saved })
}

// eachKernel runs f once per implementation, as a subtest named after it,
// with that implementation in use.
func eachKernel(t *testing.T, f func(t *testing.T)) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			use(t, im)
			f(t)
		})
	}
}

// lengths are the vector lengths every kernel is tried on: 0, the tails
// below and around each step (8 doubles, 16 floats or int32s, 64 bytes)
// and its unrolled form (4 steps), and a few longer ones.
var lengths = []int{0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 1000}

// offsets are the element offsets operands start at (unaligned starts).
var offsets = []int{0, 1, 3}

const guard = 16 // canary elements before and after every output

// guarded returns a slice of n elements inside a buffer filled with canary,
// starting off+guard elements in.
func guarded[T any](n, off int, canary T) (buf, s []T) {
	buf = make([]T, off+n+2*guard)
	for i := range buf {
		buf[i] = canary
	}
	return buf, buf[guard+off : guard+off+n]
}

// checkGuards fails when anything outside [guard+off, guard+off+n) of buf
// is no longer canary.
func checkGuards[T comparable](t *testing.T, what string, buf []T, n, off int, canary T) {
	t.Helper()
	for i, v := range buf {
		if (i < guard+off || i >= guard+off+n) && v != canary {
			t.Fatalf("%s: wrote outside the output at %d (of %d at %d)", what, i-guard-off, n, off)
		}
	}
}

// floats returns n float64 values: mostly normal ones over 20 decades,
// with zeros of both signs, subnormals and infinities mixed in.
func floats(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		switch r.IntN(16) {
		case 0:
			v[i] = math.Copysign(0, -1)
		case 1:
			v[i] = 0
		case 2:
			v[i] = math.SmallestNonzeroFloat64 * float64(r.IntN(1000))
		case 3:
			v[i] = math.Inf(1 - 2*r.IntN(2))
		default:
			v[i] = r.NormFloat64() * math.Pow(10, float64(r.IntN(20)-10))
		}
	}
	return v
}

func floats32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i, f := range floats(r, n) {
		v[i] = float32(f)
		if i%5 == 2 {
			v[i] = math.SmallestNonzeroFloat32 * float32(r.IntN(1000))
		}
	}
	return v
}

func bytes8(r *rand.Rand, n int) []int8 {
	v := make([]int8, n)
	for i := range v {
		v[i] = int8(r.IntN(256) - 128)
		switch r.IntN(8) {
		case 0:
			v[i] = -128
		case 1:
			v[i] = 127
		}
	}
	return v
}

func sameBits64(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
}

func sameBits32(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestAxpyF64EveryKernel(t *testing.T) {
	eachKernel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, n := range lengths {
			for _, off := range offsets {
				x := floats(r, n+off)[off:]
				init := floats(r, n)
				k := r.NormFloat64()
				if n%3 == 0 {
					k = []float64{0, 1, -1, math.Copysign(0, -1)}[n%4]
				}
				want := slices.Clone(init)
				axpyF64Generic(want, x, k)
				buf, acc := guarded(n, off, 7.0)
				copy(acc, init)
				AxpyF64(acc, x, k)
				if !sameBits64(acc, want) {
					t.Fatalf("n=%d off=%d k=%g: %v, want %v", n, off, k, acc, want)
				}
				checkGuards(t, fmt.Sprintf("n=%d", n), buf, n, off, 7.0)
			}
		}
	})
}

func TestAxpyBytesF32EveryKernel(t *testing.T) {
	eachKernel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, n := range lengths {
			for _, off := range offsets {
				x := make([]uint8, n+off)[off:]
				for i := range x {
					x[i] = uint8(r.IntN(256))
					if i%7 == 0 {
						x[i] = 255
					}
				}
				init := floats32(r, n)
				k := float32(r.Float64())
				if n%4 == 1 {
					k = -k * 1e-30 // products in the subnormal range
				}
				want := slices.Clone(init)
				axpyBytesF32Generic(want, x, k)
				buf, acc := guarded[float32](n, off, 7)
				copy(acc, init)
				AxpyBytesF32(acc, x, k)
				if !sameBits32(acc, want) {
					t.Fatalf("n=%d off=%d k=%g: %v, want %v", n, off, k, acc, want)
				}
				checkGuards(t, fmt.Sprintf("n=%d", n), buf, n, off, float32(7))
			}
		}
	})
}

func TestLerp2x2EveryKernel(t *testing.T) {
	eachKernel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, n := range lengths {
			for _, off := range offsets {
				var rows [4][]float32
				for i := range rows {
					rows[i] = floats32(r, n+off+i)[off+i:] // each at its own offset
				}
				w := [4]float32{float32(r.Float64()), float32(r.Float64()), float32(r.Float64()), float32(r.Float64())}
				if n%3 == 0 {
					w = [4]float32{1, 0, 0.25, 0.75} // identity taps
				}
				want := make([]float32, n)
				lerp2x2Generic(want, rows[0], rows[1], rows[2], rows[3], &w)
				buf, o := guarded[float32](n, off, 7)
				Lerp2x2(o, rows[0], rows[1], rows[2], rows[3], &w)
				if !sameBits32(o, want) {
					t.Fatalf("n=%d off=%d: %v, want %v", n, off, o, want)
				}
				checkGuards(t, fmt.Sprintf("n=%d", n), buf, n, off, float32(7))
			}
		}
	})
}

func TestQuantizeFloatEveryKernel(t *testing.T) {
	eachKernel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, n := range lengths {
			for _, off := range offsets {
				scale := float32(0.001 + r.Float64()/10)
				zp := r.Int32N(256) - 128
				qmin, qmax, shift := int32(-128), int32(127), int32(0)
				if n%2 == 1 { // uint8 stored as int8
					zp, qmin, qmax, shift = r.Int32N(256), 0, 255, 128
				}
				in := floats32(r, n+off)[off:]
				for i := range in {
					if i%3 == 0 { // exact halves of the scale: the rounding ties
						in[i] = (float32(r.IntN(600)-300) + 0.5) * scale
					}
				}
				want := make([]int8, n)
				quantizeGeneric(in, want, scale, zp, qmin, qmax, shift)
				buf, out := guarded[int8](n, off, 0x5a)
				QuantizeFloat(in, out, scale, zp, qmin, qmax, shift)
				if !slices.Equal(out, want) {
					t.Fatalf("n=%d off=%d scale %g zp %d: %v, want %v", n, off, scale, zp, out, want)
				}
				checkGuards(t, fmt.Sprintf("n=%d", n), buf, n, off, int8(0x5a))
			}
		}
	})
}

func TestAddQuantEveryKernel(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	q, err := NewAddQuant(-3, 17, 5, -128, 127, 1<<30+12345, -2, 1<<30+999, -1, 1<<30+7, 0)
	if err != nil {
		t.Fatal(err)
	}
	eachKernel(t, func(t *testing.T) {
		for _, n := range lengths {
			for _, off := range offsets {
				a, b := bytes8(r, n+off)[off:], bytes8(r, n+off+1)[off+1:]
				want := make([]int8, n)
				addLUTGeneric(a, b, want, q.lut)
				buf, out := guarded[int8](n, off, 0x5a)
				q.Add(a, b, out)
				if !slices.Equal(out, want) {
					t.Fatalf("n=%d off=%d: %v, want %v", n, off, out, want)
				}
				checkGuards(t, fmt.Sprintf("n=%d", n), buf, n, off, int8(0x5a))
			}
		}
	})
}

func TestMulAccPixelsEveryKernel(t *testing.T) {
	eachKernel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(8, 9))
		for _, c := range []int{0, 1, 3, 15, 16, 17, 32, 48, 96, 100} {
			for _, stride := range []int{1, 2} {
				for npix := 0; npix <= 9; npix++ {
					off := npix % 3
					xstride := stride * c
					x := bytes8(r, off+max(0, (npix-1)*xstride+c))[off:]
					w := make([]int32, c)
					for i := range w {
						w[i] = r.Int32N(512) - 256
					}
					zx := r.Int32N(256) - 128
					init := make([]int32, npix*c)
					for i := range init {
						init[i] = r.Int32N(1<<20) - 1<<19
					}
					want := slices.Clone(init)
					if npix > 0 && c > 0 {
						mulAccPixelsGeneric(want, x, w, c, npix, xstride, zx)
					}
					buf, acc := guarded[int32](npix*c, off, -0x5a5a5a5a)
					copy(acc, init)
					MulAccPixels(acc, x, w, c, npix, xstride, zx)
					if !slices.Equal(acc, want) {
						t.Fatalf("c %d stride %d npix %d: %v, want %v", c, stride, npix, acc, want)
					}
					checkGuards(t, fmt.Sprintf("c %d npix %d", c, npix), buf, npix*c, off, int32(-0x5a5a5a5a))
				}
			}
		}
	})
}

func TestMaxIntoEveryKernel(t *testing.T) {
	eachKernel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 1))
		for _, n := range lengths {
			for _, off := range offsets {
				src := bytes8(r, n+off+2)[off+2:]
				init := bytes8(r, n)
				want := slices.Clone(init)
				maxIntoGeneric(want, src)
				buf, dst := guarded[int8](n, off, 0x5a)
				copy(dst, init)
				MaxInto(dst, src)
				if !slices.Equal(dst, want) {
					t.Fatalf("n=%d off=%d: %v, want %v", n, off, dst, want)
				}
				checkGuards(t, fmt.Sprintf("n=%d", n), buf, n, off, int8(0x5a))
			}
		}
	})
}

// randomRequant is a requantization of n channels with the parameters a
// converter makes and the edge cases: the largest multiplier, exact ties
// of the doubling high multiply (2^30), left shifts and the widest right
// ones.
func randomRequant(t testing.TB, r *rand.Rand, n int) *Requant {
	bias, mult, shift := make([]int32, n), make([]int32, n), make([]int, n)
	for c := range n {
		bias[c] = r.Int32N(1<<16) - 1<<15
		mult[c] = 1<<30 + r.Int32N(1<<30)
		shift[c] = r.IntN(40) - 31
		switch c % 7 {
		case 0:
			mult[c] = math.MaxInt32
		case 1:
			mult[c] = 1 << 30
		case 3:
			shift[c] = r.IntN(4)
		case 5:
			shift[c] = -31
		}
	}
	zo := r.Int32N(256) - 128
	lo, hi := int32(-128), int32(127)
	if n%2 == 1 {
		lo = zo // a fused ReLU
	}
	q, err := NewRequant(bias, mult, shift, zo, lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// accs returns n accumulators, a third of them at the extremes.
func accs(r *rand.Rand, n int) []int32 {
	edges := []int32{math.MinInt32, math.MinInt32 + 1, -1 << 20, -1, 0, 1, 1 << 20, math.MaxInt32}
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(r.Uint32()) >> uint(r.IntN(32))
		if r.IntN(3) == 0 {
			v[i] = edges[r.IntN(len(edges))]
		}
	}
	return v
}

func TestRequantEveryKernel(t *testing.T) {
	eachKernel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, n := range lengths[1:] {
			q := randomRequant(t, r, n)
			for rows := 1; rows <= 3; rows++ {
				off := rows - 1
				acc := accs(r, off+rows*n)[off:]
				want := make([]int8, rows*n)
				requantRowsGeneric(q, acc, want, rows)
				buf, out := guarded[int8](rows*n, off, 0x5a)
				q.Rows(acc, out, rows)
				if !slices.Equal(out, want) {
					t.Fatalf("n=%d rows=%d: %v, want %v", n, rows, out, want)
				}
				checkGuards(t, fmt.Sprintf("n=%d rows=%d", n, rows), buf, rows*n, off, int8(0x5a))
			}
		}
		// Nothing to do: no rows, no channels.
		q := randomRequant(t, r, 4)
		q.Rows(nil, nil, 0)
		empty, _ := NewRequant(nil, nil, nil, 0, -128, 127)
		empty.Rows(nil, nil, 3)
	})
}

// FuzzKernels: every implementation equals the generic twin on lengths,
// offsets, values and parameters taken from the input, for the integer
// kernels (whose inputs are every byte pattern).
func FuzzKernels(f *testing.F) {
	f.Add([]byte{17, 0, 3, 0x80, 0x7f, 1, 2, 3, 4, 5})
	f.Add([]byte{64, 1, 16, 0xff, 0x00, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		n, off, c := int(data[0]), int(data[1]%4), int(data[2])%40+1
		vals := data[3:]
		v := func(i int) int8 { return int8(vals[i%len(vals)] + byte(i/len(vals))) }
		a, b := make([]int8, off+n), make([]int8, n)
		for i := range b {
			a[off+i], b[i] = v(i), v(i*7+1)
		}
		a = a[off:]
		bias, mult, shift := make([]int32, c), make([]int32, c), make([]int, c)
		for i := range c {
			bias[i] = int32(v(i)) * int32(v(i+1)) * 97
			mult[i] = 1<<30 | int32(uint8(v(i+2)))<<22 | int32(uint8(v(i+3)))
			shift[i] = int(uint8(v(i+4)))%40 - 31
		}
		q, err := NewRequant(bias, mult, shift, int32(v(5)), -128, 127)
		if err != nil {
			t.Fatal(err)
		}
		aq, err := NewAddQuant(int32(v(0)), int32(v(1)), int32(v(2)), -128, 127, mult[0], -1-int(uint8(v(3)))%12, mult[len(mult)-1], -1-int(uint8(v(4)))%12, 1<<30+int32(v(5)), int(uint8(v(6)))%8-4)
		if err != nil {
			t.Fatal(err)
		}
		npix := n / c
		w := make([]int32, c)
		for i := range w {
			w[i] = int32(v(i*3)) * int32(v(i*5))
		}
		acc := make([]int32, npix*c)
		for i := range acc {
			acc[i] = int32(v(i)) << (uint(i) % 24)
		}
		run := func() (maxd, sum []int8, macc []int32, rq []int8) {
			maxd, sum = slices.Clone(b), make([]int8, n)
			MaxInto(maxd, a)
			aq.Add(a, b, sum)
			macc = slices.Clone(acc)
			MulAccPixels(macc, a, w, c, npix, c, int32(v(9)))
			rq = make([]int8, npix*c)
			q.Rows(acc, rq, npix)
			return
		}
		saved := active
		defer func() { active = saved }()
		active = generic
		m0, s0, a0, r0 := run()
		for _, im := range impls {
			active = im
			m1, s1, a1, r1 := run()
			if !slices.Equal(m0, m1) || !slices.Equal(s0, s1) || !slices.Equal(a0, a1) || !slices.Equal(r0, r1) {
				t.Fatalf("%s differs from generic on n=%d c=%d", im.name, n, c)
			}
		}
	})
}

// TestKernelsAllocateNothing: with every implementation, the entries
// allocate nothing even when their operands live on the caller's stack
// (the anomaly map's upsampling passes Lerp2x2 a local array of weights
// per pixel): the dispatch must not make arguments escape.
func TestKernelsAllocateNothing(t *testing.T) {
	q, err := NewRequant(make([]int32, 32), slices.Repeat([]int32{1 << 30}, 32), make([]int, 32), 0, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	aq, err := NewAddQuant(0, 0, 0, -128, 127, 1<<30, -1, 1<<30, -1, 1<<30, 0)
	if err != nil {
		t.Fatal(err)
	}
	eachKernel(t, func(t *testing.T) {
		allocs := testing.AllocsPerRun(20, func() {
			var f64, g64 [40]float64
			AxpyF64(f64[:], g64[:], 0.5)
			var f32, g32, h32, i32, j32 [40]float32
			var u8 [40]uint8
			AxpyBytesF32(f32[:], u8[:], 0.5)
			w := [4]float32{0.25, 0.75, 0.5, 0.5}
			Lerp2x2(f32[:], g32[:], h32[:], i32[:], j32[:], &w)
			Lerp2x2(f32[:1], g32[:], h32[:], i32[:], j32[:], &w)
			var a, b, c [70]int8
			QuantizeFloat(f32[:], a[:40], 0.5, 0, -128, 127, 0)
			aq.Add(a[:], b[:], c[:])
			MaxInto(a[:], b[:])
			var acc [64]int32
			var wt [32]int32
			MulAccPixels(acc[:], a[:], wt[:], 32, 2, 32, 1)
			q.Rows(acc[:], c[:64], 2)
		})
		if allocs != 0 {
			t.Fatalf("%v allocations per run of every kernel", allocs)
		}
	})
}
