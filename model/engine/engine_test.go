package engine

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/model/internal/optest"
	"github.com/linesight/linesight/model/tflite"
)

func TestFixedPointHandComputed(t *testing.T) {
	// srdhm(a, b) = round(a*b / 2^31); gemmlowp's nudge makes ties go up
	// (1.5 -> 2, -1.5 -> -1), worked by hand from its definition.
	cases := []struct{ a, b, want int32 }{
		{1 << 30, 1 << 30, 1 << 29},
		{-(1 << 30), 1 << 30, -(1 << 29)},
		{3, 1 << 30, 2},
		{-3, 1 << 30, -1},
		{-5, 1 << 30, -2},                             // -2.5 -> -2
		{math.MinInt32, math.MinInt32, math.MaxInt32}, // the one overflow saturates
	}
	for _, c := range cases {
		if got := srdhm(c.a, c.b); got != c.want {
			t.Errorf("srdhm(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	// rdbpot: 5/2 = 2.5 -> 3, -5/2 = -2.5 -> -3, 7/4 = 1.75 -> 2, -6/4 = -1.5 -> -2.
	for _, c := range []struct {
		x    int32
		e    int
		want int32
	}{{5, 1, 3}, {-5, 1, -3}, {7, 2, 2}, {-6, 2, -2}, {4, 2, 1}, {-1, 3, 0}} {
		if got := rdbpot(c.x, c.e); got != c.want {
			t.Errorf("rdbpot(%d, %d) = %d, want %d", c.x, c.e, got, c.want)
		}
	}
	// 0.75 = 0.75 * 2^0: mantissa round(0.75 * 2^31), shift 0.
	if m, s := quantizeMultiplier(0.75); m != 1610612736 || s != 0 {
		t.Errorf("quantizeMultiplier(0.75) = %d, %d", m, s)
	}
	// 0.1 -> frexp 0.8 * 2^-3.
	if m, s := quantizeMultiplier(0.1); m != 1717986918 || s != -3 {
		t.Errorf("quantizeMultiplier(0.1) = %d, %d", m, s)
	}
	// 1000 * 0.1 = 100 exactly after rounding.
	m, s := quantizeMultiplier(0.1)
	if got := mulByQuantizedMultiplier(1000, m, s); got != 100 {
		t.Errorf("1000 * 0.1 = %d", got)
	}
	// exp(0) = 1 (saturated Q0 one); exp(-1) in Q5 input is ~0.3679 in Q0.
	if got := expOnNegativeValues(0, 5); got != math.MaxInt32 {
		t.Errorf("exp(0) = %d", got)
	}
	got := float64(expOnNegativeValues(-(1<<26), 5)) / (1 << 31)
	if math.Abs(got-math.Exp(-1)) > 1e-6 {
		t.Errorf("exp(-1) = %v", got)
	}
	// 1/(1+0.5) = 2/3.
	if got := float64(oneOverOnePlusX(1<<30)) / (1 << 31); math.Abs(got-2.0/3) > 1e-7 {
		t.Errorf("1/1.5 = %v", got)
	}
}

// run1 runs a one-op model on raw input and returns the raw output.
func run1(t *testing.T, m *tflite.Model, in []byte, threads int) []byte {
	t.Helper()
	ip, err := NewInterpreter(m, Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	if err := ip.SetInput(in); err != nil {
		t.Fatal(err)
	}
	if err := ip.Invoke(); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, ip.Outputs()[0].Bytes())
	if err := ip.ReadOutput(0, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func i8(v ...int8) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	return b
}

// sumConv2x2 is a one-op model: a 2x2 filter of ones over a 1x3x3x1 int8
// input (zp 1, scale 1), VALID, stride 1, output scale 1 zp 0.
func sumConv2x2() *tflite.Model {
	b := tflite.NewBuilder("conv")
	in := b.Tensor("in", tflite.Int8, []int32{1, 3, 3, 1}, tflite.PerTensor(1, 1), nil)
	w := b.Tensor("w", tflite.Int8, []int32{1, 2, 2, 1}, &tflite.Quantization{Scale: []float32{1}, ZeroPoint: []int64{0}}, i8(1, 1, 1, 1))
	out := b.Tensor("out", tflite.Int8, []int32{1, 2, 2, 1}, tflite.PerTensor(1, 0), nil)
	b.Op(tflite.OpConv2D, 3, []int32{in, w, -1}, []int32{out}, tflite.Conv2DOptions{Padding: tflite.PaddingValid, StrideW: 1, StrideH: 1, DilationW: 1, DilationH: 1})
	b.IO([]int32{in}, []int32{out})
	return b.Model()
}

func TestConvHandComputed(t *testing.T) {
	// 1x3x3x1 int8 input (zp 1, scale 1), a 2x2 filter of ones (scale 1),
	// VALID, stride 1, output scale 1 zp 0: each output is the sum of its
	// 2x2 window minus 4*zp. SAME padding adds taps of value zp, which count 0.
	got := run1(t, sumConv2x2(), i8(1, 2, 3, 4, 5, 6, 7, 8, 9), 1)
	// windows: (1+2+4+5)-4=8, (2+3+5+6)-4=12, (4+5+7+8)-4=20, (5+6+8+9)-4=24
	if !bytes.Equal(got, i8(8, 12, 20, 24)) {
		t.Fatalf("got %v", got)
	}
}

func TestAveragePoolRounding(t *testing.T) {
	// uint8 rounds half up; int8 rounds half away from zero: averages of
	// {0,1} -> 1 (uint8); {-1,-2} -> -2 and {1,2} -> 2 (int8).
	for _, c := range []struct {
		typ  tflite.TensorType
		in   []byte
		want []byte
	}{
		{tflite.Uint8, []byte{0, 1}, []byte{1}},
		{tflite.Int8, i8(-1, -2), i8(-2)},
		{tflite.Int8, i8(1, 2), i8(2)},
	} {
		b := tflite.NewBuilder("pool")
		in := b.Tensor("in", c.typ, []int32{1, 1, 2, 1}, tflite.PerTensor(1, 0), nil)
		out := b.Tensor("out", c.typ, []int32{1, 1, 1, 1}, tflite.PerTensor(1, 0), nil)
		b.Op(tflite.OpAveragePool2D, 2, []int32{in}, []int32{out}, tflite.Pool2DOptions{Padding: tflite.PaddingValid, StrideW: 1, StrideH: 1, FilterWidth: 2, FilterHeight: 1})
		b.IO([]int32{in}, []int32{out})
		if got := run1(t, b.Model(), c.in, 1); !bytes.Equal(got, c.want) {
			t.Errorf("%v %v: got %v, want %v", c.typ, c.in, got, c.want)
		}
	}
}

func TestAddHandComputed(t *testing.T) {
	// int8, scales 0.5 + 0.25 -> 0.5, zero points 0: 10*0.5 + 8*0.25 = 7 -> q 14.
	b := tflite.NewBuilder("add")
	x := b.Tensor("x", tflite.Int8, []int32{1, 1}, tflite.PerTensor(0.5, 0), nil)
	y := b.Tensor("y", tflite.Int8, []int32{1, 1}, tflite.PerTensor(0.25, 0), i8(8))
	out := b.Tensor("out", tflite.Int8, []int32{1, 1}, tflite.PerTensor(0.5, 0), nil)
	b.Op(tflite.OpAdd, 2, []int32{x, y}, []int32{out}, tflite.AddOptions{})
	b.IO([]int32{x}, []int32{out})
	if got := run1(t, b.Model(), i8(10), 1); !bytes.Equal(got, i8(14)) {
		t.Fatalf("got %v", got)
	}
	// Saturation: 127*0.5 + 127*0.25 = 95.25 -> 190 clamps to 127.
	b.Model().Buffers[1] = i8(127)
	if got := run1(t, b.Model(), i8(127), 1); !bytes.Equal(got, i8(127)) {
		t.Fatalf("saturation: got %v", got)
	}
}

func TestAllOpCasesRunIdenticallyOnAnyThreadCount(t *testing.T) {
	for _, c := range optest.Cases(3) {
		in := optest.Input(c.Model, 1)
		one := run1(t, c.Model, in, 1)
		for _, th := range []int{2, 3} {
			if got := run1(t, c.Model, in, th); !bytes.Equal(got, one) {
				t.Fatalf("%s: %d threads differ from 1", c.Name, th)
			}
		}
	}
}

func TestUnsupportedOpNamesIndexAndOp(t *testing.T) {
	b := tflite.NewBuilder("tanh")
	in := b.Tensor("in", tflite.Float32, []int32{1, 4}, nil, nil)
	mid := b.Tensor("mid", tflite.Float32, []int32{1, 4}, nil, nil)
	out := b.Tensor("out", tflite.Float32, []int32{1, 4}, nil, nil)
	b.Op(tflite.OpReshape, 1, []int32{in}, []int32{mid}, nil)
	b.Op(28, 1, []int32{mid}, []int32{out}, nil) // TANH
	b.IO([]int32{in}, []int32{out})
	_, err := NewInterpreter(b.Model(), Options{Threads: 1})
	if !errors.Is(err, ErrUnsupportedOp) || !strings.Contains(err.Error(), "operator 1 (BUILTIN_28") {
		t.Fatalf("err = %v", err)
	}
	// A too-new version of a supported op is refused too.
	b.Model().OperatorCodes[0].Version = 9
	_, err = NewInterpreter(b.Model(), Options{Threads: 1, Taps: []string{"mid"}})
	if !errors.Is(err, ErrUnsupportedOp) || !strings.Contains(err.Error(), "operator 0 (RESHAPE v9)") {
		t.Fatalf("err = %v", err)
	}
}

func TestTapsPruneLaterOps(t *testing.T) {
	// With a tap on "mid", the unsupported op after it is never prepared.
	b := tflite.NewBuilder("prune")
	in := b.Tensor("in", tflite.Float32, []int32{1, 4}, nil, nil)
	mid := b.Tensor("mid", tflite.Float32, []int32{1, 4}, nil, nil)
	out := b.Tensor("out", tflite.Float32, []int32{1, 4}, nil, nil)
	b.Op(tflite.OpReshape, 1, []int32{in}, []int32{mid}, nil)
	b.Op(28, 1, []int32{mid}, []int32{out}, nil)
	b.IO([]int32{in}, []int32{out})
	ip, err := NewInterpreter(b.Model(), Options{Threads: 1, Taps: []string{"mid"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	if len(ip.steps) != 1 {
		t.Fatalf("%d steps, want 1", len(ip.steps))
	}
}

func sharedModel(t testing.TB, name string) *tflite.Model {
	p := filepath.Join("..", "..", "..", "shared", "models", "mobilenet_v2", name)
	m, err := tflite.ReadFile(p)
	if err != nil {
		t.Skipf("skipping: %s not readable (../shared beside the checkout?): %v", p, err)
	}
	return m
}

func TestInvokeAllocatesNothing(t *testing.T) {
	m := sharedModel(t, "tf2_mobilenet_v2_1.0_224_ptq.tflite")
	ip, err := NewInterpreter(m, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	ip.Invoke()
	if n := testing.AllocsPerRun(3, func() { ip.Invoke() }); n != 0 {
		t.Fatalf("Invoke allocates %v times per run", n)
	}
}

func TestArenaSharesMemory(t *testing.T) {
	m := sharedModel(t, "tf2_mobilenet_v2_1.0_224_ptq.tflite")
	ip, err := NewInterpreter(m, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	sum := 0
	for _, tt := range ip.tensors {
		if !tt.constant {
			sum += tt.n * tt.storageSize()
		}
	}
	// Liveness planning must beat one buffer per tensor by a wide margin.
	if ip.ArenaBytes()*4 > sum {
		t.Fatalf("arena %d bytes for %d bytes of activations", ip.ArenaBytes(), sum)
	}
	t.Logf("arena %d bytes for %d bytes of activations", ip.ArenaBytes(), sum)
}

// The branch-free srdhm and rdbpot equal gemmlowp's definitions, written
// out here the plain way, on edge values and on random ones.
func TestFixedPointBranchFreeMatchesDefinition(t *testing.T) {
	srdhmDef := func(a, b int32) int32 {
		if a == b && a == math.MinInt32 {
			return math.MaxInt32
		}
		ab := int64(a) * int64(b)
		nudge := int64(1 << 30)
		if ab < 0 {
			nudge = 1 - (1 << 30)
		}
		return int32((ab + nudge) / (1 << 31))
	}
	rdbpotDef := func(x int32, exp int) int32 {
		mask := int32(1)<<uint(exp) - 1
		rem, threshold := x&mask, mask>>1
		if x < 0 {
			threshold++
		}
		r := x >> uint(exp)
		if rem > threshold {
			r++
		}
		return r
	}
	edges := []int32{math.MinInt32, math.MinInt32 + 1, -1 << 30, -3, -2, -1, 0, 1, 2, 3, 1 << 30, math.MaxInt32 - 1, math.MaxInt32}
	rng := rand.New(rand.NewPCG(5, 5))
	vals := append([]int32{}, edges...)
	for range 20000 {
		vals = append(vals, int32(rng.Uint32()), int32(rng.Uint32())>>uint(rng.IntN(31)))
	}
	for i, a := range vals {
		for _, b := range []int32{vals[(i*7+1)%len(vals)], edges[i%len(edges)], 1 << 30, math.MaxInt32} {
			if got, want := srdhm(a, b), srdhmDef(a, b); got != want {
				t.Fatalf("srdhm(%d, %d) = %d, want %d", a, b, got, want)
			}
		}
		for e := 0; e <= 31; e++ {
			if got, want := rdbpot(a, e), rdbpotDef(a, e); got != want {
				t.Fatalf("rdbpot(%d, %d) = %d, want %d", a, e, got, want)
			}
		}
	}
}

// TestSharedPool: an interpreter on a caller's pool (Options.Pool) takes the
// pool's size, gives the same outputs, and leaves the pool open at Close.
func TestSharedPool(t *testing.T) {
	pool := parallel.New(3)
	defer pool.Close()
	ip, err := NewInterpreter(sumConv2x2(), Options{Threads: 1, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	if ip.Threads() != 3 {
		t.Errorf("Threads() = %d, want the pool's 3", ip.Threads())
	}
	for range 2 {
		if err := ip.SetInput(i8(1, 2, 3, 4, 5, 6, 7, 8, 9)); err != nil {
			t.Fatal(err)
		}
		if err := ip.Invoke(); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4)
		if err := ip.ReadOutput(0, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, i8(8, 12, 20, 24)) {
			t.Fatalf("got %v", got)
		}
	}
	ip.Close()
	var sum atomic.Int64
	pool.Run(100, 1, func(lo, hi, _ int) { sum.Add(int64(hi - lo)) })
	if sum.Load() != 100 {
		t.Fatalf("pool after Close ran %d of 100", sum.Load())
	}
}

// TestInputSizeHandComputed: sumConv2x2 is stored for a 3x3 input; run at
// 4x3 (H×W) the same filter gives a 3x2 map, each value the sum of its 2x2
// window minus 4·zp, worked by hand.
func TestInputSizeHandComputed(t *testing.T) {
	ip, err := NewInterpreter(sumConv2x2(), Options{Threads: 2, InputH: 4, InputW: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	if got := ip.Input().Shape; !slicesEq(got, []int{1, 4, 3, 1}) {
		t.Fatalf("input shape %v", got)
	}
	if got := ip.Outputs()[0].Shape; !slicesEq(got, []int{1, 3, 2, 1}) {
		t.Fatalf("output shape %v", got)
	}
	// rows: 1 2 3 / 4 5 6 / 7 8 9 / 10 11 12
	if err := ip.SetInput(i8(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)); err != nil {
		t.Fatal(err)
	}
	if err := ip.Invoke(); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 6)
	if err := ip.ReadOutput(0, out); err != nil {
		t.Fatal(err)
	}
	// (1+2+4+5)-4=8, (2+3+5+6)-4=12, (4+5+7+8)-4=20, (5+6+8+9)-4=24,
	// (7+8+10+11)-4=32, (8+9+11+12)-4=36
	if !bytes.Equal(out, i8(8, 12, 20, 24, 32, 36)) {
		t.Fatalf("got %v", out)
	}
	if allocs := testing.AllocsPerRun(10, func() { ip.Invoke() }); allocs != 0 {
		t.Errorf("Invoke at a re-planned size allocates %v times", allocs)
	}
}

// TestInputSizeRefusesStoredSizeOps: a RESHAPE to a fixed shape after the
// convolution cannot follow a new input size; the error names it. Tapping
// the convolution (before the RESHAPE) runs.
func TestInputSizeRefusesStoredSizeOps(t *testing.T) {
	b := tflite.NewBuilder("conv+reshape")
	in := b.Tensor("in", tflite.Int8, []int32{1, 3, 3, 1}, tflite.PerTensor(1, 1), nil)
	w := b.Tensor("w", tflite.Int8, []int32{1, 2, 2, 1}, &tflite.Quantization{Scale: []float32{1}, ZeroPoint: []int64{0}}, i8(1, 1, 1, 1))
	c := b.Tensor("conv", tflite.Int8, []int32{1, 2, 2, 1}, tflite.PerTensor(1, 0), nil)
	r := b.Tensor("flat", tflite.Int8, []int32{1, 4}, tflite.PerTensor(1, 0), nil)
	b.Op(tflite.OpConv2D, 3, []int32{in, w, -1}, []int32{c}, tflite.Conv2DOptions{Padding: tflite.PaddingValid, StrideW: 1, StrideH: 1, DilationW: 1, DilationH: 1})
	b.Op(tflite.OpReshape, 1, []int32{c}, []int32{r}, tflite.ReshapeOptions{NewShape: []int32{1, 4}})
	b.IO([]int32{in}, []int32{r})
	m := b.Model()
	_, err := NewInterpreter(m, Options{Threads: 1, InputH: 5, InputW: 5})
	if err == nil || !strings.Contains(err.Error(), "operator 1 (RESHAPE)") || !strings.Contains(err.Error(), "stored input size") {
		t.Fatalf("err = %v, want a refusal naming operator 1 (RESHAPE)", err)
	}
	ip, err := NewInterpreter(m, Options{Threads: 1, InputH: 5, InputW: 5, Taps: []string{"conv"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	if got := ip.Outputs()[0].Shape; !slicesEq(got, []int{1, 4, 4, 1}) {
		t.Fatalf("tap shape %v", got)
	}
	if _, err := NewInterpreter(m, Options{Threads: 1, InputH: 1, InputW: 5, Taps: []string{"conv"}}); err == nil {
		t.Fatal("an input smaller than the filter was accepted")
	}
}

func slicesEq(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
