//go:build tflite && cgo

package tflitec

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/internal/optest"
	"github.com/linesight/linesight/model/tflite"
)

// diff counts elements of two raw tensors that differ, and by how much.
type diff struct {
	n, differ, over1 int
	maxLSB           int
	maxRel           float64
}

func compare(info model.TensorInfo, a, b []byte) diff {
	d := diff{n: info.Elements()}
	for i := 0; i < d.n; i++ {
		var e int
		switch info.Type {
		case tflite.Uint8:
			e = int(a[i]) - int(b[i])
		case tflite.Int8:
			e = int(int8(a[i])) - int(int8(b[i]))
		case tflite.Float32:
			x := math.Float32frombits(binary.LittleEndian.Uint32(a[4*i:]))
			y := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			rel := math.Abs(float64(x-y)) / math.Max(1, math.Abs(float64(x)))
			d.maxRel = math.Max(d.maxRel, rel)
			if rel > 0 {
				d.differ++
			}
			continue
		case tflite.Int32:
			e = int(int32(binary.LittleEndian.Uint32(a[4*i:])) - int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
		if e < 0 {
			e = -e
		}
		if e > 0 {
			d.differ++
		}
		if e > 1 {
			d.over1++
		}
		d.maxLSB = max(d.maxLSB, e)
	}
	return d
}

// ok applies the acceptance rule: identical, or at most 1 LSB apart on at
// most 0.1% of the elements; floats within 1e-5 relative.
func (d diff) ok(typ tflite.TensorType) bool {
	if typ == tflite.Float32 {
		return d.maxRel <= 1e-5
	}
	return d.over1 == 0 && d.differ*1000 <= d.n
}

// runBoth feeds the same input to both backbones and compares every output.
func runBoth(t *testing.T, goB, tfl model.Backbone, input []byte) []diff {
	t.Helper()
	for _, b := range []model.Backbone{goB, tfl} {
		if err := b.SetInput(input); err != nil {
			t.Fatal(err)
		}
		if err := b.Invoke(); err != nil {
			t.Fatal(err)
		}
	}
	var ds []diff
	for i, o := range goB.Outputs() {
		x, y := make([]byte, o.Bytes()), make([]byte, o.Bytes())
		if err := goB.ReadOutput(i, x); err != nil {
			t.Fatal(err)
		}
		if err := tfl.ReadOutput(i, y); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, compare(o, y, x))
	}
	return ds
}

func TestOracleSingleOps(t *testing.T) {
	cases := optest.Cases(1)
	exact := 0
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			tfl, err := New(c.Model, nil, 1)
			if err != nil {
				t.Fatalf("TFLite rejects the case: %v", err)
			}
			defer tfl.Close()
			ip, err := engine.NewInterpreter(c.Model, engine.Options{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer ip.Close()
			allExact := true
			for seed := uint64(0); seed < 4; seed++ {
				for _, d := range runBoth(t, ip, tfl, optest.Input(c.Model, seed)) {
					typ := ip.Outputs()[0].Type
					if !d.ok(typ) {
						t.Fatalf("seed %d: %d of %d elements differ (%d by more than 1 LSB, max %d, max rel %g)", seed, d.differ, d.n, d.over1, d.maxLSB, d.maxRel)
					}
					if d.differ > 0 {
						allExact = false
					}
				}
			}
			if allExact {
				exact++
			} else {
				t.Logf("within tolerance, not identical (%v output)", ip.Outputs()[0].Type)
			}
		})
	}
	fmt.Printf("oracle: %d single-op models, %d identical to TensorFlow Lite %s on 4 random inputs each\n", len(cases), exact, Version())
}

// sharedDir is the shared folder beside the repository; the test skips
// when it or its MobileNetV2 models are missing.
func sharedDir(t testing.TB) string {
	testenv.SharedFile(t, "models/mobilenet_v2")
	return testenv.Shared(t)
}

// TestConformanceSharedModels runs both shared MobileNetV2 models on every
// shared photo and on seeded random inputs, and compares every operator
// output (all intermediate taps) and the final output with TensorFlow Lite.
func TestConformanceSharedModels(t *testing.T) {
	shared := sharedDir(t)
	photos, _ := filepath.Glob(filepath.Join(shared, "images", "*.*"))
	var images []string
	for _, p := range photos {
		if ext := filepath.Ext(p); ext == ".bmp" || ext == ".jpg" || ext == ".png" {
			images = append(images, p)
		}
	}
	for _, name := range []string{"mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(shared, "models", "mobilenet_v2", name)
			m, err := tflite.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Every operator output is a tap; the last is the model output.
			var taps []string
			for _, op := range m.Subgraphs[0].Operators {
				taps = append(taps, m.Subgraphs[0].Tensors[op.Outputs[0]].Name)
			}
			tfl, err := New(m, taps, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer tfl.Close()
			ip, err := engine.NewInterpreter(m, engine.Options{Threads: 2, Taps: taps})
			if err != nil {
				t.Fatal(err)
			}
			defer ip.Close()
			feeder, err := model.NewFeeder(ip.Input(), 0)
			if err != nil {
				t.Fatal(err)
			}
			labels, _ := model.LabelsBeside(path)
			var inputs [][]byte
			var names []string
			for _, p := range images {
				img, err := rgb.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				raw, err := feeder.Prepare(img)
				if err != nil {
					t.Fatal(err)
				}
				inputs = append(inputs, append([]byte(nil), raw...))
				names = append(names, filepath.Base(p))
			}
			r := rand.New(rand.NewPCG(42, 1))
			for s := 0; s < 3; s++ {
				raw := make([]byte, ip.Input().Bytes())
				for i := range raw {
					raw[i] = byte(r.IntN(256))
				}
				inputs = append(inputs, raw)
				names = append(names, fmt.Sprintf("random-%d", s))
			}
			outInfo := ip.Outputs()[len(taps)-1]
			var total, differ, over1 int
			for k, in := range inputs {
				ds := runBoth(t, ip, tfl, in)
				for ti, d := range ds {
					total += d.n
					differ += d.differ
					over1 += d.over1
					if !d.ok(ip.Outputs()[ti].Type) {
						t.Errorf("%s: tap %d %q: %d of %d elements differ, %d by more than 1 LSB", names[k], ti, taps[ti], d.differ, d.n, d.over1)
					}
				}
				// Top-5 from the same input tensor must be identical.
				x, y := make([]byte, outInfo.Bytes()), make([]byte, outInfo.Bytes())
				ip.ReadOutput(len(taps)-1, x)
				tfl.ReadOutput(len(taps)-1, y)
				gt, _ := model.TopK(outInfo, x, 5, labels)
				tt, _ := model.TopK(outInfo, y, 5, labels)
				for i := range gt {
					if gt[i] != tt[i] {
						t.Errorf("%s: top-5 differ: go %v, tflite %v", names[k], gt, tt)
						break
					}
				}
				if k < len(images) {
					fmt.Printf("conformance: %s %s: top-1 %d %q %.4f (TFLite: %d %.4f)\n", name, names[k], gt[0].Index, gt[0].Label, gt[0].Score, tt[0].Index, tt[0].Score)
				}
			}
			fmt.Printf("conformance: %s: %d inputs x %d taps: %d elements compared, %d differ, %d by more than 1 LSB\n",
				name, len(inputs), len(taps), total, differ, over1)
		})
	}
}
