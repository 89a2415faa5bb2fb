package tflite

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/linesight/linesight/internal/testenv"
)

// sharedModels are the real MobileNetV2 files of the shared folder; the
// test skips without them.
func sharedModels(t testing.TB) []string {
	paths, _ := filepath.Glob(filepath.Join(testenv.SharedFile(t, "models/mobilenet_v2"), "*.tflite"))
	if len(paths) == 0 {
		t.Skip("skipping: the shared folder's models/mobilenet_v2 holds no .tflite file")
	}
	return paths
}

// small builds a valid one-op model by hand (no shared files needed).
func small() *Model {
	b := NewBuilder("small")
	in := b.Tensor("in", Int8, []int32{1, 4, 4, 2}, PerTensor(0.5, -3), nil)
	w := b.Tensor("w", Int8, []int32{3, 1, 1, 2}, &Quantization{Scale: []float32{0.1, 0.2, 0.3}, ZeroPoint: []int64{0, 0, 0}}, []byte{1, 2, 3, 4, 5, 6})
	bias := b.Tensor("b", Int32, []int32{3}, nil, make([]byte, 12))
	out := b.Tensor("out", Int8, []int32{1, 4, 4, 3}, PerTensor(0.25, 5), nil)
	b.Op(OpConv2D, 3, []int32{in, w, bias}, []int32{out}, Conv2DOptions{Padding: PaddingSame, StrideW: 1, StrideH: 1, DilationW: 1, DilationH: 1, Activation: ActRelu6})
	b.IO([]int32{in}, []int32{out})
	b.Metadata("min_runtime_version", []byte("1.14.0"))
	return b.Model()
}

func TestRoundTripSmall(t *testing.T) {
	m := small()
	raw, err := Write(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(m), normalize(got)) {
		t.Fatalf("round trip changed the model:\n%+v\n%+v", m, got)
	}
}

// normalize maps an empty buffer to nil, as the reader does.
func normalize(m *Model) *Model {
	c := *m
	c.Buffers = append([][]byte(nil), m.Buffers...)
	for i := range c.Buffers {
		if len(c.Buffers[i]) == 0 {
			c.Buffers[i] = nil
		}
	}
	return &c
}

func TestRoundTripSharedModels(t *testing.T) {
	for _, p := range sharedModels(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m1, err := Read(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		raw, err := Write(m1)
		if err != nil {
			t.Fatalf("%s: write: %v", p, err)
		}
		m2, err := Read(raw)
		if err != nil {
			t.Fatalf("%s: re-read: %v", p, err)
		}
		if !reflect.DeepEqual(normalize(m1), normalize(m2)) {
			t.Fatalf("%s: read -> write -> read changed the model", p)
		}
		raw2, _ := Write(m2)
		if string(raw) != string(raw2) {
			t.Fatalf("%s: writing is not deterministic", p)
		}
	}
}

func TestOperatorCodeIsLargerOfBothFields(t *testing.T) {
	m := small()
	raw, _ := Write(m)
	got, _ := Read(raw)
	if got.OperatorCodes[0].Builtin != OpConv2D {
		t.Fatalf("op = %v", got.OperatorCodes[0].Builtin)
	}
	// An op code above 127 lives only in the extended field.
	m.OperatorCodes[0].Builtin = 150
	raw, err := Write(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err = Read(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.OperatorCodes[0].Builtin != 150 {
		t.Fatalf("op = %v, want 150", got.OperatorCodes[0].Builtin)
	}
}

// mutate writes small(), lets f change the model, and reads it back.
func readMutated(t *testing.T, f func(m *Model)) error {
	t.Helper()
	m := small()
	f(m)
	mt, err := toFB(m)
	if err != nil {
		t.Fatal(err)
	}
	// Write without validation so the reader sees the bad model.
	raw := packUnchecked(mt)
	_, err = Read(raw)
	return err
}

func expectErr(t *testing.T, err error, sentinel error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted")
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not mention %q", err, w)
		}
	}
}

func TestReadRejectsShortFile(t *testing.T) {
	_, err := Read([]byte{1, 2, 3})
	expectErr(t, err, ErrTruncated)
}

func TestReadRejectsWrongIdentifier(t *testing.T) {
	raw, _ := Write(small())
	copy(raw[4:8], "XXXX")
	_, err := Read(raw)
	expectErr(t, err, ErrNotTFLite, "XXXX")
}

func TestReadRejectsRootOffsetPastEnd(t *testing.T) {
	raw, _ := Write(small())
	binary.LittleEndian.PutUint32(raw, uint32(len(raw)+100))
	_, err := Read(raw)
	expectErr(t, err, ErrMalformed, "root")
}

func TestReadRejectsTruncatedFile(t *testing.T) {
	raw, _ := Write(small())
	for _, n := range []int{len(raw) / 2, len(raw) - 7, 9} {
		if _, err := Read(raw[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
}

func TestReadRejectsOversizedVector(t *testing.T) {
	raw, _ := Write(small())
	// Find the 6-byte weight buffer's length prefix and inflate it.
	i := strings.Index(string(raw), "\x06\x00\x00\x00\x01\x02\x03\x04\x05\x06")
	if i < 0 {
		t.Fatal("weights not found")
	}
	binary.LittleEndian.PutUint32(raw[i:], 1<<30)
	_, err := Read(raw)
	expectErr(t, err, ErrMalformed, "buffers[", "data")
}

func TestReadRejectsWrongVersion(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Version = 2 })
	expectErr(t, err, ErrVersion, "version 2")
}

func TestReadRejectsBufferIndexOutOfRange(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Subgraphs[0].Tensors[1].Buffer = 99 })
	expectErr(t, err, ErrInvalid, "tensor 1", `"w"`, "buffer 99")
}

func TestReadRejectsBufferSizeMismatch(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Subgraphs[0].Tensors[1].Shape = []int32{3, 1, 1, 4} })
	expectErr(t, err, ErrInvalid, "tensor 1", "holds 6 bytes", "needs 12")
}

func TestReadRejectsNegativeDimension(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Subgraphs[0].Tensors[0].Shape = []int32{1, -4, 4, 2} })
	expectErr(t, err, ErrInvalid, "tensor 0", "dimension 1 is -4")
}

func TestReadRejectsHugeShape(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Subgraphs[0].Tensors[0].Shape = []int32{1 << 20, 1 << 20, 1 << 20} })
	expectErr(t, err, ErrInvalid, "tensor 0", "elements")
}

func TestReadRejectsQuantizationLengths(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Subgraphs[0].Tensors[1].Quant.Scale = []float32{0.1, 0.2} })
	expectErr(t, err, ErrInvalid, "tensor 1", "2 scales but 3 zero points")
	err = readMutated(t, func(m *Model) {
		m.Subgraphs[0].Tensors[1].Quant.Scale = []float32{0.1, 0.2}
		m.Subgraphs[0].Tensors[1].Quant.ZeroPoint = []int64{0, 0}
	})
	expectErr(t, err, ErrInvalid, "2 scales for dimension 0 of size 3")
	err = readMutated(t, func(m *Model) { m.Subgraphs[0].Tensors[1].Quant.QuantizedDimension = 7 })
	expectErr(t, err, ErrInvalid, "quantized_dimension 7")
}

func TestReadRejectsBadScale(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Subgraphs[0].Tensors[0].Quant.Scale = []float32{float32(-1)} })
	expectErr(t, err, ErrInvalid, "scale[0]")
}

func TestReadRejectsOperatorIndices(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Subgraphs[0].Operators[0].OpcodeIndex = 5 })
	expectErr(t, err, ErrInvalid, "operator 0", "opcode index 5")
	err = readMutated(t, func(m *Model) { m.Subgraphs[0].Operators[0].Inputs[1] = 40 })
	expectErr(t, err, ErrInvalid, "operator 0 (CONV_2D)", "input 1 is tensor 40")
	err = readMutated(t, func(m *Model) { m.Subgraphs[0].Operators[0].Outputs[0] = -1 })
	expectErr(t, err, ErrInvalid, "output 0 is tensor -1")
}

func TestReadRejectsSubgraphIO(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Subgraphs[0].Inputs = []int32{12} })
	expectErr(t, err, ErrInvalid, "input 0 is tensor 12")
}

func TestReadRejectsNoSubgraphs(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Subgraphs = nil })
	expectErr(t, err, ErrInvalid, "no subgraphs")
}

func TestReadRejectsMetadataBuffer(t *testing.T) {
	err := readMutated(t, func(m *Model) { m.Metadata[0].Buffer = 77 })
	expectErr(t, err, ErrInvalid, "metadata 0", "buffer 77")
}

func TestWriteRejectsUnmodelledOptions(t *testing.T) {
	m := small()
	m.Subgraphs[0].Operators[0].Options = OpaqueOptions{Type: 30}
	_, err := Write(m)
	expectErr(t, err, ErrUnsupported, "operator 0", "union type 30")
}

func TestVerifierBudgetStopsSharedReferences(t *testing.T) {
	// A vector whose elements all point at the same table must not make the
	// verifier walk it over and over: the budget is objects per file size.
	v := &verifier{buf: make([]byte, 64), budget: 3}
	for i := 0; i < 3; i++ {
		if err := v.charge("x"); err != nil {
			t.Fatalf("charge %d: %v", i, err)
		}
	}
	expectErr(t, v.charge("x"), ErrMalformed, "more objects")
}

func FuzzRead(f *testing.F) {
	seed, _ := Write(small())
	f.Add(seed)
	// The real models seed the corpus where the shared folder is at hand.
	var paths []string
	if dir, ok := testenv.FindShared("models/mobilenet_v2"); ok {
		paths, _ = filepath.Glob(filepath.Join(dir, "*.tflite"))
	}
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
			// Mutations: truncation and flipped bytes in the header and tables.
			f.Add(b[:len(b)/3])
			c := append([]byte(nil), b...)
			for i := 0; i < len(c); i += 997 {
				c[i] ^= 0xff
			}
			f.Add(c)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Read(data)
		if err != nil {
			return
		}
		// Whatever reads must write and read back to the same model.
		raw, err := Write(m)
		if err != nil {
			if errors.Is(err, ErrUnsupported) {
				return
			}
			t.Fatalf("read but cannot write: %v", err)
		}
		m2, err := Read(raw)
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if !reflect.DeepEqual(normalize(m), normalize(m2)) {
			t.Fatal("round trip changed the model")
		}
	})
}
