//go:build tflite && cgo

package tflitec

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/resnet"
	"github.com/linesight/linesight/model/tflite"
)

// builtResNet18 builds the random-init ResNet18 to layer3 (int8, or float)
// calibrated on a few bottle images, written and read back through our
// file writer and reader as a user's file would be.
func builtResNet18(t testing.TB, float bool) (*tflite.Model, []string) {
	bottle := testenv.SharedFile(t, "data/mvtec_ad/bottle")
	calib, _ := filepath.Glob(filepath.Join(bottle, "train/good/0[0-4]0.png"))
	m, _, err := resnet.Build(resnet.RandomStateDict(resnet.Archs["resnet18"], 1), resnet.Options{
		Calib: calib, Random: true, Source: "random-init", Threads: 2, Float: float})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tflite.Write(m)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = tflite.Read(raw); err != nil {
		t.Fatal(err)
	}
	test, _ := filepath.Glob(filepath.Join(bottle, "test/*/00[0-1].png"))
	return m, test
}

// readerTaps names every operator's output but the PADs': the engine folds
// a PAD into the convolution or max-pool that reads it unless its output
// is tapped, and the station taps none, so the convolutions and pools
// compared here are the ones it runs (the PAD op itself is compared in
// TestOracleSingleOps).
func readerTaps(m *tflite.Model) []string {
	var taps []string
	for _, op := range m.Subgraphs[0].Operators {
		if m.OperatorCodes[op.OpcodeIndex].Builtin != tflite.OpPad {
			taps = append(taps, m.Subgraphs[0].Tensors[op.Outputs[0]].Name)
		}
	}
	return taps
}

// TestConformanceBuiltResNet18: TensorFlow Lite loads the builder's int8
// file, and every activation equals our engine's.
func TestConformanceBuiltResNet18(t *testing.T) {
	m, images := builtResNet18(t, false)
	taps := readerTaps(m)
	tfl, err := New(m, taps, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer tfl.Close()
	ip, err := engine.NewInterpreter(m, engine.Options{Threads: 2, Taps: taps})
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	feeder, _ := model.NewFeeder(ip.Input(), 0)
	var inputs [][]byte
	for _, p := range images {
		img, err := rgb.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := feeder.Prepare(img)
		inputs = append(inputs, append([]byte(nil), raw...))
	}
	r := rand.New(rand.NewPCG(7, 1))
	raw := make([]byte, ip.Input().Bytes())
	for i := range raw {
		raw[i] = byte(r.IntN(256))
	}
	inputs = append(inputs, raw)
	var total, differ, over1 int
	for k, in := range inputs {
		for ti, d := range runBoth(t, ip, tfl, in) {
			total, differ, over1 = total+d.n, differ+d.differ, over1+d.over1
			if !d.ok(ip.Outputs()[ti].Type) {
				t.Errorf("input %d: %q: %d of %d elements differ, %d by more than 1 LSB", k, taps[ti], d.differ, d.n, d.over1)
			}
		}
	}
	fmt.Printf("conformance: built resnet18 int8 (random-init): %d inputs x %d taps: %d elements compared, %d differ, %d by more than 1 LSB\n",
		len(inputs), len(taps), total, differ, over1)
	if float64(differ) > 0.001*float64(total) || over1 > 0 {
		t.Errorf("more than 0.1%% of elements differ (%d of %d) or some by more than 1 LSB (%d)", differ, total, over1)
	}
}

func BenchmarkResNet18Layer3(b *testing.B) {
	m, _ := builtResNet18(b, false)
	in := make([]byte, 224*224*3)
	for i := range in {
		in[i] = byte(i * 7)
	}
	for _, threads := range []int{1, 2} {
		ip, err := engine.NewInterpreter(m, engine.Options{Threads: threads})
		if err != nil {
			b.Fatal(err)
		}
		tfl, err := New(m, nil, threads)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range []struct {
			name string
			bb   model.Backbone
		}{{"go", ip}, {"tflite", tfl}} {
			b.Run(fmt.Sprintf("%s/threads=%d", e.name, threads), func(b *testing.B) {
				e.bb.SetInput(in)
				e.bb.Invoke()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					e.bb.Invoke()
				}
			})
		}
		ip.Close()
		tfl.Close()
	}
}

// TestConformanceResNet18AtInputSize: the engine runs the builder's 224x224
// ResNet18 at 160x288 (H×W, non-square, not the stored size) by re-planning
// at load; TensorFlow Lite runs the same weights from a file our writer
// wrote with every shape at 160x288 (model.AtInputSize, written and read
// back). Every tap of every layer must agree by the conformance rule.
func TestConformanceResNet18AtInputSize(t *testing.T) {
	m, images := builtResNet18(t, false)
	const h, w = 160, 288
	taps := readerTaps(m)
	resized, err := model.AtInputSize(m, taps, h, w)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tflite.Write(resized)
	if err != nil {
		t.Fatal(err)
	}
	written, err := tflite.Read(raw)
	if err != nil {
		t.Fatal(err)
	}
	tfl, err := New(written, taps, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer tfl.Close()
	ip, err := engine.NewInterpreter(m, engine.Options{Threads: 2, Taps: taps, InputH: h, InputW: w})
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	if got := ip.Input().Shape; got[1] != h || got[2] != w {
		t.Fatalf("engine input %v", got)
	}
	for i, o := range ip.Outputs() {
		if want := tfl.Outputs()[i].Shape; fmt.Sprint(o.Shape) != fmt.Sprint(want) {
			t.Fatalf("tap %q: engine shape %v, TensorFlow Lite %v", o.Name, o.Shape, want)
		}
	}
	feeder, _ := model.NewFeeder(ip.Input(), 0)
	var total, differ, over1 int
	for k, p := range images {
		img, err := rgb.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := feeder.Prepare(img)
		for ti, d := range runBoth(t, ip, tfl, in) {
			total, differ, over1 = total+d.n, differ+d.differ, over1+d.over1
			if !d.ok(ip.Outputs()[ti].Type) {
				t.Errorf("input %d: %q: %d of %d elements differ, %d by more than 1 LSB", k, taps[ti], d.differ, d.n, d.over1)
			}
		}
	}
	last := ip.Outputs()[len(taps)-1].Shape
	fmt.Printf("conformance: resnet18 int8 stored 224x224 run at %dx%d (last tap %v): %d inputs x %d taps: %d elements compared, %d differ, %d by more than 1 LSB\n",
		w, h, last, len(images), len(taps), total, differ, over1)
}
