package patchcore

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
)

// reference runs testdata/reference.py (scipy, torch, sklearn from Debian's
// /usr/bin/python3) on req and decodes its answer into out.
func reference(t *testing.T, req any, out any) {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import scipy, sklearn, torch").Run(); err != nil {
		t.Skipf("skipping the comparison with scipy/torch/sklearn: %s cannot import them (make deps installs python3-scipy, python3-sklearn, python3-torch): %v", py, err)
	}
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "testdata/reference.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference.py: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(res, out); err != nil {
		t.Fatalf("reference.py answer: %v", err)
	}
}

func randMap(rng *rand.Rand, n int) []float32 {
	m := make([]float32, n)
	for i := range m {
		m[i] = float32(rng.Float64()*4 - 1)
	}
	return m
}

func closeRel(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// fakeBackbone hands out fixed raw taps.
type fakeBackbone struct {
	outs []model.TensorInfo
	raw  [][]byte
}

func (f *fakeBackbone) Input() model.TensorInfo            { return model.TensorInfo{} }
func (f *fakeBackbone) SetInput([]byte) error              { return nil }
func (f *fakeBackbone) Invoke() error                      { return nil }
func (f *fakeBackbone) Outputs() []model.TensorInfo        { return f.outs }
func (f *fakeBackbone) ReadOutput(i int, dst []byte) error { copy(dst, f.raw[i]); return nil }
func (f *fakeBackbone) Close() error                       { return nil }

func TestAgainstReferenceLibraries(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type blurReq struct {
		Map   []float32 `json:"map"`
		W     int       `json:"w"`
		H     int       `json:"h"`
		Sigma float64   `json:"sigma"`
	}
	type upReq struct {
		Map    []float32 `json:"map"`
		W, H   int
		OW, OH int
	}
	type tapReq struct {
		Q     []int   `json:"q"`
		H     int     `json:"h"`
		W     int     `json:"w"`
		C     int     `json:"c"`
		ZP    int     `json:"zp"`
		Scale float32 `json:"scale"`
	}
	type aurocReq struct {
		Scores []float64 `json:"scores"`
		Labels []int     `json:"labels"`
	}
	type auproReq struct {
		Maps   [][]float32 `json:"maps"`
		Masks  [][]int     `json:"masks"`
		W      int         `json:"w"`
		H      int         `json:"h"`
		MaxFPR float64     `json:"max_fpr"`
	}
	type eq7Req struct {
		Dists []float64 `json:"dists"`
	}
	req := struct {
		Blur     []blurReq           `json:"blur"`
		Upsample []map[string]any    `json:"upsample"`
		Embed    map[string][]tapReq `json:"embed"`
		AUROC    []aurocReq          `json:"auroc"`
		AUPRO    []auproReq          `json:"aupro"`
		Eq7      []eq7Req            `json:"eq7"`
	}{}

	// Gaussian blur: small maps (the kernel is wider than the map: repeated
	// reflection) and the real size.
	for _, c := range []struct {
		w, h  int
		sigma float64
	}{{37, 29, 4}, {9, 6, 4}, {224, 224, 4}, {20, 31, 1.5}} {
		req.Blur = append(req.Blur, blurReq{randMap(rng, c.w*c.h), c.w, c.h, c.sigma})
	}
	// Bilinear upsampling, integer and fractional factors.
	ups := []struct{ w, h, ow, oh int }{{5, 7, 20, 28}, {14, 14, 224, 224}, {5, 3, 13, 11}, {28, 28, 224, 224}}
	var upIn [][]float32
	for _, u := range ups {
		m := randMap(rng, u.w*u.h)
		upIn = append(upIn, m)
		req.Upsample = append(req.Upsample, map[string]any{"map": m, "w": u.w, "h": u.h, "ow": u.ow, "oh": u.oh})
	}
	// Embedding: an int8 28×28 tap and a uint8 14×14 tap.
	taps := []model.TensorInfo{
		{Name: "a", Shape: []int{1, 12, 10, 3}, Type: tflite.Int8, Scale: []float32{0.05}, ZeroPoint: []int64{-7}},
		{Name: "b", Shape: []int{1, 6, 5, 4}, Type: tflite.Uint8, Scale: []float32{0.11}, ZeroPoint: []int64{130}},
	}
	fb := &fakeBackbone{outs: taps}
	for _, tp := range taps {
		n := tp.Elements()
		raw := make([]byte, n)
		q := make([]int, n)
		for i := range raw {
			raw[i] = byte(rng.IntN(256))
			q[i] = int(raw[i])
			if tp.Type == tflite.Int8 {
				q[i] = int(int8(raw[i]))
			}
		}
		fb.raw = append(fb.raw, raw)
		req.Embed = map[string][]tapReq{"taps": append(req.Embed["taps"], tapReq{q, tp.Shape[1], tp.Shape[2], tp.Shape[3], int(tp.ZeroPoint[0]), tp.Scale[0]})}
	}
	// AUROC with ties.
	for n := range 3 {
		a := aurocReq{}
		for i := 0; i < 50+40*n; i++ {
			a.Scores = append(a.Scores, float64(rng.IntN(20))/4)
			a.Labels = append(a.Labels, rng.IntN(2))
		}
		req.AUROC = append(req.AUROC, a)
	}
	// AUPRO: maps that partly agree with masks of several regions.
	for c := range 2 {
		a := auproReq{W: 24, H: 20, MaxFPR: 0.3}
		if c == 1 {
			a.MaxFPR = 0.05
		}
		for range 3 {
			mask := make([]int, a.W*a.H)
			m := make([]float32, a.W*a.H)
			for r := 0; r < 1+rng.IntN(3); r++ {
				x0, y0 := rng.IntN(a.W-5), rng.IntN(a.H-5)
				for y := y0; y < y0+2+rng.IntN(4); y++ {
					for x := x0; x < x0+2+rng.IntN(4); x++ {
						mask[y*a.W+x] = 1
					}
				}
			}
			for i := range m {
				m[i] = float32(rng.IntN(50)) / 10
				if mask[i] == 1 {
					m[i] += float32(rng.IntN(40)) / 10
				}
			}
			a.Maps, a.Masks = append(a.Maps, m), append(a.Masks, mask)
		}
		req.AUPRO = append(req.AUPRO, a)
	}
	req.Eq7 = []eq7Req{{[]float64{3.2, 3.5, 4, 4.1, 5, 5.5, 6, 7, 8}}, {[]float64{1, 1, 1}}, {[]float64{40, 41, 60}}}

	var res struct {
		Blur     [][]float64 `json:"blur"`
		Upsample [][]float64 `json:"upsample"`
		Embed    []float64   `json:"embed"`
		AUROC    []float64   `json:"auroc"`
		AUPRO    []float64   `json:"aupro"`
		Eq7      []float64   `json:"eq7"`
	}
	reference(t, req, &res)

	for i, b := range req.Blur {
		m := append([]float32(nil), b.Map...)
		NewBlur(b.Sigma).Apply(m, b.W, b.H)
		for k := range m {
			if !closeRel(float64(m[k]), res.Blur[i][k], 1e-5) {
				t.Fatalf("blur %dx%d σ=%v: pixel %d = %v, scipy %v", b.W, b.H, b.Sigma, k, m[k], res.Blur[i][k])
			}
		}
	}
	for i, u := range ups {
		dst := make([]float32, u.ow*u.oh)
		Upsample(upIn[i], u.w, u.h, dst, u.ow, u.oh)
		for k := range dst {
			if !closeRel(float64(dst[k]), res.Upsample[i][k], 1e-5) {
				t.Fatalf("upsample %dx%d→%dx%d: pixel %d = %v, torch %v", u.w, u.h, u.ow, u.oh, k, dst[k], res.Upsample[i][k])
			}
		}
	}
	e, err := NewEmbedder(taps, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Embed(fb)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(res.Embed) {
		t.Fatalf("embedding has %d values, torch %d", len(got), len(res.Embed))
	}
	for k := range got {
		if !closeRel(float64(got[k]), res.Embed[k], 1e-5) {
			t.Fatalf("embedding value %d = %v, torch %v", k, got[k], res.Embed[k])
		}
	}
	for i, a := range req.AUROC {
		labels := make([]bool, len(a.Labels))
		for k, l := range a.Labels {
			labels[k] = l == 1
		}
		v, err := AUROC(a.Scores, labels)
		if err != nil || !closeRel(v, res.AUROC[i], 1e-12) {
			t.Errorf("AUROC case %d = %v (%v), sklearn %v", i, v, err, res.AUROC[i])
		}
	}
	for i, a := range req.AUPRO {
		masks := make([][]bool, len(a.Masks))
		for k, m := range a.Masks {
			masks[k] = make([]bool, len(m))
			for p, v := range m {
				masks[k][p] = v == 1
			}
		}
		v, err := AUPRO(a.Maps, masks, a.W, a.MaxFPR)
		if err != nil || !closeRel(v, res.AUPRO[i], 1e-9) {
			t.Errorf("AUPRO case %d (max FPR %v) = %v (%v), reference %v", i, a.MaxFPR, v, err, res.AUPRO[i])
		}
	}
	for i, r := range req.Eq7 {
		if v := Reweight(r.Dists); !closeRel(v, res.Eq7[i], 1e-12) {
			t.Errorf("Eq. 7 case %v = %v, torch (anomalib's formula) %v", r.Dists, v, res.Eq7[i])
		}
	}
	t.Logf("matched scipy (%d blurs), torch (%d upsamplings, %d embedding values, %d Eq. 7), sklearn (%d AUROC), reference AUPRO (%d)",
		len(req.Blur), len(ups), len(got), len(req.Eq7), len(req.AUROC), len(req.AUPRO))
}
