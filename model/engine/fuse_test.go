package engine

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/linesight/linesight/model/internal/optest"
	"github.com/linesight/linesight/model/tflite"
)

// TestFusedPadEqualsPad: every PAD-then-reader case of optest run with the
// PAD folded into its reader and, as the reference, with the PAD's output
// also an output of the model (which keeps the PAD a step of its own, the
// padded tensor written and then read), on 1 and 2 threads. The cases
// include windows partly and wholly in the padding, inputs below the zero
// point (which a padded max-pool window must not drop) and float.
// make test-tflite compares the same cases with TensorFlow Lite itself.
func TestFusedPadEqualsPad(t *testing.T) {
	n := 0
	for _, c := range optest.Cases(5) {
		if !strings.HasPrefix(c.Name, "pad_") {
			continue
		}
		n++
		kept := *c.Model
		kept.Subgraphs = slices.Clone(kept.Subgraphs)
		sg := &kept.Subgraphs[0]
		sg.Outputs = append(slices.Clone(sg.Outputs), sg.Operators[0].Outputs[0])
		for _, threads := range []int{1, 2} {
			fused, err := NewInterpreter(c.Model, Options{Threads: threads})
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			unfused, err := NewInterpreter(&kept, Options{Threads: threads})
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			if fused.StepCount() != 1 || unfused.StepCount() != 2 {
				t.Fatalf("%s: %d and %d steps, want the PAD folded (1) and kept (2)", c.Name, fused.StepCount(), unfused.StepCount())
			}
			for seed := range uint64(3) {
				in := optest.Input(c.Model, seed)
				got, want := invokeRaw(t, fused, in), invokeRaw(t, unfused, in)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s, %d threads, seed %d: byte %d of %d is %d with the PAD folded, %d with PAD then reader", c.Name, threads, seed, i, len(want), got[i], want[i])
					}
				}
			}
			fused.Close()
			unfused.Close()
		}
	}
	if n < 10 {
		t.Fatalf("only %d PAD cases", n)
	}
}

// TestPadNotFoldedWhenShared: a PAD whose output two operators read stays
// a step (folding it into one would leave the other without its input).
func TestPadNotFoldedWhenShared(t *testing.T) {
	b := tflite.NewBuilder("shared pad")
	q := tflite.PerTensor(0.5, -3)
	in := b.Tensor("in", tflite.Int8, []int32{1, 4, 4, 2}, q, nil)
	pt := b.Tensor("pads", tflite.Int32, []int32{4, 2}, nil, i32s(0, 0, 1, 1, 1, 1, 0, 0))
	mid := b.Tensor("padded", tflite.Int8, []int32{1, 6, 6, 2}, q, nil)
	b.Op(tflite.OpPad, 2, []int32{in, pt}, []int32{mid}, tflite.PadOptions{})
	o1 := b.Tensor("max", tflite.Int8, []int32{1, 5, 5, 2}, q, nil)
	o2 := b.Tensor("max2", tflite.Int8, []int32{1, 3, 3, 2}, q, nil)
	opt := tflite.Pool2DOptions{Padding: tflite.PaddingValid, StrideW: 1, StrideH: 1, FilterWidth: 2, FilterHeight: 2}
	b.Op(tflite.OpMaxPool2D, 2, []int32{mid}, []int32{o1}, opt)
	opt.StrideW, opt.StrideH = 2, 2
	b.Op(tflite.OpMaxPool2D, 2, []int32{mid}, []int32{o2}, opt)
	b.IO([]int32{in}, []int32{o1, o2})
	ip, err := NewInterpreter(b.Model(), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	if ip.StepCount() != 3 {
		t.Fatalf("%d steps, want 3 (the shared PAD kept)", ip.StepCount())
	}
	// Every input at -128, below the zero point: each 2x2 window at a
	// corner or edge holds padding, so takes the zero point.
	raw := bytes.Repeat([]byte{0x80}, 32)
	got := invokeRaw(t, ip, raw)
	for y := range 5 {
		for x := range 5 {
			want := int8(-128)
			if y == 0 || y == 4 || x == 0 || x == 4 {
				want = -3
			}
			if v := int8(got[(y*5+x)*2]); v != want {
				t.Fatalf("max at %d,%d = %d, want %d", y, x, v, want)
			}
		}
	}
}

func invokeRaw(t *testing.T, ip *Interpreter, in []byte) []byte {
	t.Helper()
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

func i32s(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
	}
	return b
}
