package patchcore

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
)

// Hand-worked cases: they need no Python and pin the conventions.

func TestPoolingByHand(t *testing.T) {
	// A 3×3 map of ones (int8 q=1, zp 0, scale 1): padding counts in the
	// average, so corners see 4/9, edges 6/9, the centre 9/9.
	tap := model.TensorInfo{Name: "x", Shape: []int{1, 3, 3, 1}, Type: tflite.Int8, Scale: []float32{1}, ZeroPoint: []int64{0}}
	raw := []byte{1, 1, 1, 1, 1, 1, 1, 1, 1}
	dst := make([]float32, 9)
	pool3x3(tap, raw, dst, make([]int32, 9))
	want := []float32{4. / 9, 6. / 9, 4. / 9, 6. / 9, 1, 6. / 9, 4. / 9, 6. / 9, 4. / 9}
	for i := range want {
		if math.Abs(float64(dst[i]-want[i])) > 1e-6 {
			t.Fatalf("pooled = %v, want %v", dst, want)
		}
	}
}

// TestPoolingMatchesWindowSums checks the separable sums against the
// definition (each 3×3 window summed directly) on random maps.
func TestPoolingMatchesWindowSums(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 40 {
		h, w, c := 1+r.IntN(9), 1+r.IntN(9), 1+r.IntN(20)
		typ := []tflite.TensorType{tflite.Int8, tflite.Uint8}[trial%2]
		zp := int64(r.IntN(256))
		if typ == tflite.Int8 {
			zp -= 128
		}
		tap := model.TensorInfo{Shape: []int{1, h, w, c}, Type: typ, Scale: []float32{0.0173}, ZeroPoint: []int64{zp}}
		raw := make([]byte, h*w*c)
		for i := range raw {
			raw[i] = byte(r.IntN(256))
		}
		got := make([]float32, len(raw))
		pool3x3(tap, raw, got, make([]int32, len(raw)))
		for y := range h {
			for x := range w {
				for ch := range c {
					var s int32
					for yy := y - 1; yy <= y+1; yy++ {
						for xx := x - 1; xx <= x+1; xx++ {
							if yy < 0 || yy >= h || xx < 0 || xx >= w {
								continue
							}
							b := raw[(yy*w+xx)*c+ch]
							v := int32(b)
							if typ == tflite.Int8 {
								v = int32(int8(b))
							}
							s += v - int32(zp)
						}
					}
					if want := float32(s) * (tap.Scale[0] / 9); got[(y*w+x)*c+ch] != want {
						t.Fatalf("%v %dx%dx%d zp %d: (%d,%d,%d) = %v, want %v", typ, h, w, c, zp, y, x, ch, got[(y*w+x)*c+ch], want)
					}
				}
			}
		}
	}
}

// blurRef is the blur written as its definition: per pixel, the taps
// summed in order with the index reflected at each tap.
func blurRef(kernel []float64, m []float32, w, h int) {
	r := len(kernel) / 2
	tmp := make([]float64, w*h)
	for y := range h {
		for x := range w {
			var s float64
			for k, kv := range kernel {
				s += float64(kv * float64(m[y*w+reflect(x+k-r, w)]))
			}
			tmp[y*w+x] = s
		}
	}
	for y := range h {
		for x := range w {
			var s float64
			for k, kv := range kernel {
				s += float64(kv * tmp[reflect(y+k-r, h)*w+x])
			}
			m[y*w+x] = float32(s)
		}
	}
}

// TestBlurMatchesDefinition: the row-at-a-time passes, alone or split
// across workers, give the definition's floats bit for bit (maps narrower
// than the kernel included).
func TestBlurMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, c := range []struct {
		w, h  int
		sigma float64
	}{{224, 224, 4}, {37, 5, 4}, {3, 40, 2}, {1, 1, 4}, {64, 48, 1.5}} {
		m := make([]float32, c.w*c.h)
		for i := range m {
			m[i] = float32(r.ExpFloat64())
		}
		want := slices.Clone(m)
		b := NewBlur(c.sigma)
		blurRef(b.kernel, want, c.w, c.h)
		for _, threads := range []int{0, 2, 3} {
			got := slices.Clone(m)
			b := NewBlur(c.sigma)
			if threads > 0 {
				b.Pool = parallel.New(threads)
			}
			b.Apply(got, c.w, c.h)
			b.Apply(slices.Clone(m), c.w, c.h) // scratch reuse
			if b.Pool != nil {
				b.Pool.Close()
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%dx%d σ=%v, %d threads: pixel %d = %v, want %v", c.w, c.h, c.sigma, threads, i, got[i], want[i])
				}
			}
		}
	}
}

func TestUpsampleByHand(t *testing.T) {
	// 2 → 4 with half-pixel centres: sources −0.25 (clamped), 0.25, 0.75, 1.25.
	dst := make([]float32, 4)
	Upsample([]float32{0, 4}, 2, 1, dst, 4, 1)
	if want := []float32{0, 1, 3, 4}; !slices.Equal(dst, want) {
		t.Errorf("upsample [0 4] to 4 = %v, want %v", dst, want)
	}
}

func TestMetricsByHand(t *testing.T) {
	// sklearn's documented example.
	if v, _ := AUROC([]float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}); v != 0.75 {
		t.Errorf("AUROC = %v, want 0.75", v)
	}
	// Ties count one half.
	if v, _ := AUROC([]float64{1, 1}, []bool{false, true}); v != 0.5 {
		t.Errorf("AUROC of a tie = %v, want 0.5", v)
	}
	if _, err := AUROC([]float64{1, 2}, []bool{true, true}); err == nil {
		t.Error("AUROC with one class accepted")
	}
	// Two one-pixel regions; the first is found before any false positive,
	// the second only after all of them: PRO is 0.5 over the whole range.
	maps := [][]float32{{0.9, 0.8, 0.1, 0.2}}
	masks := [][]bool{{true, false, true, false}}
	for _, fpr := range []float64{0.5, 0.25} {
		if v, err := AUPRO(maps, masks, 4, fpr); err != nil || math.Abs(v-0.5) > 1e-12 {
			t.Errorf("AUPRO up to %v = %v, %v; want 0.5", fpr, v, err)
		}
	}
	c := ConfusionAt([]float64{1, 2, 3, 4}, []bool{false, true, false, true}, 2.5)
	if c != (Confusion{TP: 1, FP: 1, TN: 1, FN: 1}) || c.F1() != 0.5 {
		t.Errorf("confusion %+v F1 %v", c, c.F1())
	}
	if th, f1 := BestF1([]float64{1, 2, 3, 4}, []bool{false, false, true, true}); f1 != 1 || th != 2.5 {
		t.Errorf("BestF1 = %v, %v; want 2.5, 1", th, f1)
	}
}

func TestEq7ByHand(t *testing.T) {
	if v := Reweight([]float64{1, 1}); v != 0.5 {
		t.Errorf("Reweight(1, 1) = %v, want 0.5", v)
	}
	// exp(d − s*) = 1 and 3: weight 1 − 1/4.
	if v := Reweight([]float64{2, 2 + math.Log(3)}); math.Abs(v-1.5) > 1e-12 {
		t.Errorf("Reweight = %v, want 1.5", v)
	}
}

func TestThresholdRules(t *testing.T) {
	s := []float64{1, 2, 3, 4}
	for _, c := range []struct {
		rule  string
		param float64
		want  float64
	}{{RuleMaxMargin, 1.1, 4.4}, {RuleQuantile, 0.5, 2.5}, {RuleSigma, 2, 2.5 + 2*math.Sqrt(1.25)}} {
		th, err := Calibrate(c.rule, c.param, s, s)
		if err != nil || math.Abs(th.Value-c.want) > 1e-12 || th.Pixel != th.Value {
			t.Errorf("%s %v: %+v %v, want %v", c.rule, c.param, th, err, c.want)
		}
		if n := Normalize(th.Value, th.Value, th.Width); n != 0.5 {
			t.Errorf("normalized score at the threshold = %v", n)
		}
		if n := Normalize(th.Stats.Mean, th.Value, th.Width); th.Value > th.Stats.Mean && math.Abs(n-0.05) > 1e-12 {
			t.Errorf("%s: normalized score of the mean good part = %v, want 0.05", c.rule, n)
		}
	}
	if _, err := Calibrate("best", 1, s, s); err == nil {
		t.Error("unknown rule accepted")
	}
	if _, err := Calibrate(RuleMaxMargin, 1.1, nil, nil); err == nil {
		t.Error("calibration without held-out images accepted")
	}
}

func TestRegionsInFrameCoordinates(t *testing.T) {
	// A 100×50 frame resized to a 10×10 input; anomalous input pixels
	// x 2..3, y 4 map to frame x 20..39, y 20..24.
	g := Geometry{FrameW: 100, FrameH: 50, W: 100, H: 50, InW: 10, InH: 10}
	m := make([]float32, 100)
	m[4*10+2], m[4*10+3] = 5, 7
	m[9*10+9] = 3 // a second, weaker region in the corner
	regs, _ := g.Regions(m, 1, nil)
	want := []Region{{X: 20, Y: 20, W: 20, H: 5, Peak: 7, Area: 2}, {X: 90, Y: 45, W: 10, H: 5, Peak: 3, Area: 1}}
	if !slices.Equal(regs, want) {
		t.Errorf("regions = %+v, want %+v", regs, want)
	}
	// With a centre crop the map lands inside the crop only.
	g = Geometry{FrameW: 8, FrameH: 4, X: 2, Y: 0, W: 4, H: 4, InW: 2, InH: 2}
	fm := make([]float32, 32)
	g.ToFrame([]float32{1, 1, 1, 1}, fm)
	for y := range 4 {
		for x := range 8 {
			want := float32(0)
			if x >= 2 && x < 6 {
				want = 1
			}
			if fm[y*8+x] != want {
				t.Fatalf("frame map at (%d,%d) = %v, want %v", x, y, fm[y*8+x], want)
			}
		}
	}
}

// TestEmbedSameOnAnyThreadCount: pooling, upsampling and projection split
// across workers give the single thread's vectors bit for bit.
func TestEmbedSameOnAnyThreadCount(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	outs := []model.TensorInfo{
		{Name: "a", Shape: []int{1, 28, 28, 24}, Type: tflite.Int8, Scale: []float32{0.05}, ZeroPoint: []int64{-3}},
		{Name: "b", Shape: []int{1, 14, 14, 40}, Type: tflite.Uint8, Scale: []float32{0.02}, ZeroPoint: []int64{128}},
	}
	fb := &fakeBackbone{outs: outs}
	for _, o := range outs {
		raw := make([]byte, o.Bytes())
		for i := range raw {
			raw[i] = byte(r.IntN(256))
		}
		fb.raw = append(fb.raw, raw)
	}
	for _, project := range []int{0, 48} {
		one, err := NewEmbedder(outs, project, 9)
		if err != nil {
			t.Fatal(err)
		}
		want, err := one.Embed(fb)
		if err != nil {
			t.Fatal(err)
		}
		for _, threads := range []int{2, 3} {
			e, _ := NewEmbedder(outs, project, 9)
			e.Pool = parallel.New(threads)
			got, err := e.Embed(fb)
			e.Pool.Close()
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("project %d, %d threads: value %d = %v, want %v", project, threads, i, got[i], want[i])
				}
			}
		}
	}
}
