package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/linesight/linesight/internal/parallel"
	"math"
	"runtime"
	"sort"
	"time"
	"unsafe"

	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
)

// ErrUnsupportedOp is wrapped by load errors for operators, types or op
// versions the engine does not implement.
var ErrUnsupportedOp = errors.New("engine: unsupported operator")

// Options configure an Interpreter.
type Options struct {
	// Threads is the number of goroutines ops split their work across;
	// 0 means runtime.NumCPU(). Results are identical for any value.
	Threads int
	// Taps names the tensors to hand out (feature maps). Empty means the
	// model's outputs. Ops after the last needed tap are not run.
	Taps []string
	// Pool, when set, is the worker pool the ops run on, shared with the
	// caller's other stages (Threads is then its size), and Close leaves
	// it open. Two pools on the same cores cost time at every hand-over:
	// an idle worker of one spins for a while after its last task while
	// the other's work starts.
	Pool *parallel.Pool
	// InputH and InputW, when set, run the model at that input size
	// instead of the one stored in the file: every shape on the way to the
	// taps is computed again (model.AtInputSize) and the arena planned for
	// it. A fully convolutional backbone gives larger or non-square feature
	// maps with the same weights; an operator that needs the stored size
	// (RESHAPE, FULLY_CONNECTED) is a load error naming it.
	InputH, InputW int
}

// Interpreter runs subgraph 0 of a TFLite model with TFLite's integer
// semantics, in pure Go. Memory is planned once at load: activations share
// one arena by liveness, and Invoke allocates nothing.
//
// Quantized tensors are stored as int8 whatever their file type: a uint8
// tensor holds q-128 with zero point zp-128. Affine arithmetic is unchanged
// by the shift (q-zp is the same), so one set of int8 kernels serves both.
// Kernels whose rounding depends on the sign of a sum (average pooling,
// resize) undo the shift first.
type Interpreter struct {
	model   *tflite.Model
	tensors []*rtensor
	steps   []step
	arena   []byte
	pool    *parallel.Pool
	ownPool bool // made by NewInterpreter (not Options.Pool): Close closes it
	input   *rtensor
	outputs []*rtensor
	threads int
}

// rtensor is a tensor at run time.
type rtensor struct {
	index int
	name  string
	typ   tflite.TensorType
	shape []int
	n     int
	quant *tflite.Quantization

	// Per-tensor quantization in the stored (int8) domain.
	scale float32
	zp    int32
	u8    bool // file type is uint8: stored values are q-128

	i8  []int8
	f32 []float32
	i32 []int32
	i64 []int64

	constant bool
	first    int // step that produces it; -1 for graph inputs
	last     int // last step that reads it
	off      int // arena offset
}

func (t *rtensor) where() string { return fmt.Sprintf("tensor %d (%q)", t.index, t.name) }

func (t *rtensor) quantized() bool { return t.typ == tflite.Int8 || t.typ == tflite.Uint8 }

func (t *rtensor) storageSize() int {
	switch t.typ {
	case tflite.Int8, tflite.Uint8:
		return 1
	case tflite.Float32, tflite.Int32:
		return 4
	case tflite.Int64:
		return 8
	}
	return 0
}

type step struct {
	index int // operator index
	op    tflite.BuiltinOp
	k     kernel
	// opr is the operator as run: the model's, or a copy reading a fused
	// PAD's input (see fusePads), with pad the padding it then adds.
	opr *tflite.Operator
	pad fusedPad
}

type kernel interface{ run(p *parallel.Pool) }

// NewInterpreter prepares subgraph 0 of m for execution. Unsupported
// operators, types, op versions and inconsistent shapes are load errors that
// name the operator index and op.
func NewInterpreter(m *tflite.Model, opt Options) (*Interpreter, error) {
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if opt.Pool != nil {
		threads = opt.Pool.Threads()
	}
	sg := &m.Subgraphs[0]
	if len(sg.Inputs) != 1 {
		return nil, fmt.Errorf("engine: subgraph 0 has %d inputs; backbones take exactly one", len(sg.Inputs))
	}
	if opt.InputH != 0 || opt.InputW != 0 {
		rm, err := model.AtInputSize(m, opt.Taps, opt.InputH, opt.InputW)
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		m, sg = rm, &rm.Subgraphs[0]
	}
	ip := &Interpreter{model: m, threads: threads}
	ip.tensors = make([]*rtensor, len(sg.Tensors))
	for i := range sg.Tensors {
		t, err := newRTensor(m, i)
		if err != nil {
			return nil, err
		}
		ip.tensors[i] = t
	}
	ip.input = ip.tensors[sg.Inputs[0]]
	if ip.input.constant {
		return nil, fmt.Errorf("engine: input %s has constant data", ip.input.where())
	}

	outIdx, err := tapIndices(m, opt.Taps)
	if err != nil {
		return nil, err
	}
	needed := make([]bool, len(sg.Tensors))
	for _, i := range outIdx {
		needed[i] = true
		ip.outputs = append(ip.outputs, ip.tensors[i])
	}
	// Walk back from the taps: an op runs only if something needed comes out of it.
	run := make([]bool, len(sg.Operators))
	for oi := len(sg.Operators) - 1; oi >= 0; oi-- {
		for _, o := range sg.Operators[oi].Outputs {
			if needed[o] {
				run[oi] = true
			}
		}
		if run[oi] {
			for _, in := range sg.Operators[oi].Inputs {
				if in >= 0 {
					needed[in] = true
				}
			}
		}
	}
	produced := make([]bool, len(sg.Tensors))
	produced[ip.input.index] = true
	for i, t := range ip.tensors {
		if t.constant {
			produced[i] = true
		}
	}
	for oi := range sg.Operators {
		if !run[oi] {
			continue
		}
		op := &sg.Operators[oi]
		code := m.OperatorCodes[op.OpcodeIndex]
		for _, in := range op.Inputs {
			if in >= 0 && !produced[in] {
				return nil, fmt.Errorf("engine: operator %d (%v): input %s is not computed before it", oi, code.Builtin, ip.tensors[in].where())
			}
		}
		for _, o := range op.Outputs {
			if ip.tensors[o].constant || o == int32(ip.input.index) {
				return nil, fmt.Errorf("engine: operator %d (%v): writes to %s, which is constant or the input", oi, code.Builtin, ip.tensors[o].where())
			}
			produced[o] = true
		}
		ip.steps = append(ip.steps, step{index: oi, op: code.Builtin, opr: op})
	}
	for _, t := range ip.outputs {
		if !produced[t.index] {
			return nil, fmt.Errorf("engine: tap %s is never computed", t.where())
		}
	}
	ip.fusePads(outIdx)
	ip.planArena()
	ip.pool, ip.ownPool = opt.Pool, opt.Pool == nil
	if ip.ownPool {
		ip.pool = parallel.New(threads)
	}
	for si := range ip.steps {
		s := &ip.steps[si]
		code := m.OperatorCodes[s.opr.OpcodeIndex]
		k, err := ip.prepare(s.opr, code, s.pad)
		if err != nil {
			ip.Close()
			return nil, fmt.Errorf("engine: operator %d (%v v%d): %w", s.index, code.Builtin, code.Version, err)
		}
		s.k = k
	}
	return ip, nil
}

func tapIndices(m *tflite.Model, taps []string) ([]int, error) {
	if len(taps) == 0 {
		var out []int
		for _, o := range m.Subgraphs[0].Outputs {
			out = append(out, int(o))
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("engine: subgraph 0 has no outputs and no taps were asked for")
		}
		return out, nil
	}
	out := make([]int, 0, len(taps))
	for _, name := range taps {
		i, err := model.FindTensor(m, name)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, nil
}

func newRTensor(m *tflite.Model, i int) (*rtensor, error) {
	ft := &m.Subgraphs[0].Tensors[i]
	t := &rtensor{index: i, name: ft.Name, typ: ft.Type, quant: ft.Quant, first: math.MaxInt, last: -1}
	t.shape = make([]int, len(ft.Shape))
	t.n = 1
	for k, d := range ft.Shape {
		t.shape[k] = int(d)
		t.n *= int(d)
	}
	if t.storageSize() == 0 {
		return nil, fmt.Errorf("engine: %s has type %v, which the engine does not compute with: %w", t.where(), t.typ, ErrUnsupportedOp)
	}
	t.u8 = t.typ == tflite.Uint8
	if q := ft.Quant; q != nil && len(q.Scale) > 0 {
		t.scale = q.Scale[0]
		if len(q.ZeroPoint) > 0 {
			zp := q.ZeroPoint[0]
			lo, hi := int64(-128), int64(127)
			if t.u8 {
				lo, hi = 0, 255
			}
			if t.quantized() && (zp < lo || zp > hi) {
				return nil, fmt.Errorf("engine: %s: zero point %d outside %v range", t.where(), zp, t.typ)
			}
			t.zp = int32(zp)
		}
		if t.u8 {
			t.zp -= 128
		}
	} else if t.u8 {
		t.zp = -128 // unquantized uint8 still stores q-128
	}
	data := m.Buffers[ft.Buffer]
	if len(data) == 0 {
		return t, nil
	}
	t.constant = true
	switch t.typ {
	case tflite.Int8:
		t.i8 = make([]int8, t.n)
		for k := range t.i8 {
			t.i8[k] = int8(data[k])
		}
	case tflite.Uint8:
		t.i8 = make([]int8, t.n)
		for k := range t.i8 {
			t.i8[k] = int8(data[k] - 128)
		}
	case tflite.Float32:
		t.f32 = make([]float32, t.n)
		for k := range t.f32 {
			t.f32[k] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*k:]))
		}
	case tflite.Int32:
		t.i32 = make([]int32, t.n)
		for k := range t.i32 {
			t.i32[k] = int32(binary.LittleEndian.Uint32(data[4*k:]))
		}
	case tflite.Int64:
		t.i64 = make([]int64, t.n)
		for k := range t.i64 {
			t.i64[k] = int64(binary.LittleEndian.Uint64(data[8*k:]))
		}
	}
	return t, nil
}

// planArena places every non-constant tensor the steps touch in one arena:
// tensors whose lifetimes (first write to last read) overlap get disjoint
// ranges; the largest are placed first, each at the lowest offset that fits.
func (ip *Interpreter) planArena() {
	ip.input.first = -1
	ip.input.last = max(ip.input.last, -1)
	for si, s := range ip.steps {
		op := s.opr
		for _, in := range op.Inputs {
			if in >= 0 {
				t := ip.tensors[in]
				t.last = max(t.last, si)
			}
		}
		for _, o := range op.Outputs {
			t := ip.tensors[o]
			t.first = min(t.first, si)
			t.last = max(t.last, si)
		}
	}
	for _, t := range ip.outputs {
		t.last = len(ip.steps) // outputs live past the last step
	}
	var live []*rtensor
	for _, t := range ip.tensors {
		if !t.constant && t.last >= t.first && (t.first != math.MaxInt || t == ip.input) {
			live = append(live, t)
		}
	}
	sort.SliceStable(live, func(a, b int) bool { return live[a].n*live[a].storageSize() > live[b].n*live[b].storageSize() })
	const align = 64
	total := 0
	var placed []*rtensor
	for _, t := range live {
		size := (t.n*t.storageSize() + align - 1) / align * align
		var clash []*rtensor
		for _, p := range placed {
			if p.first <= t.last && t.first <= p.last {
				clash = append(clash, p)
			}
		}
		sort.Slice(clash, func(a, b int) bool { return clash[a].off < clash[b].off })
		off := 0
		for _, p := range clash {
			psize := (p.n*p.storageSize() + align - 1) / align * align
			if off+size <= p.off {
				break
			}
			off = max(off, p.off+psize)
		}
		t.off = off
		total = max(total, off+size)
		placed = append(placed, t)
	}
	// A uint64 backing array keeps every 64-aligned offset aligned for float32.
	backing := make([]uint64, (total+align)/8)
	ip.arena = unsafe.Slice((*byte)(unsafe.Pointer(&backing[0])), len(backing)*8)
	for _, t := range live {
		p := unsafe.Pointer(&ip.arena[t.off])
		switch t.typ {
		case tflite.Int8, tflite.Uint8:
			t.i8 = unsafe.Slice((*int8)(p), t.n)
		case tflite.Float32:
			t.f32 = unsafe.Slice((*float32)(p), t.n)
		case tflite.Int32:
			t.i32 = unsafe.Slice((*int32)(p), t.n)
		case tflite.Int64:
			t.i64 = unsafe.Slice((*int64)(p), t.n)
		}
	}
}

// ArenaBytes is the size of the activation arena.
func (ip *Interpreter) ArenaBytes() int { return len(ip.arena) }

// Threads is the number of goroutines the interpreter uses.
func (ip *Interpreter) Threads() int { return ip.threads }

// Model is the model the interpreter runs.
func (ip *Interpreter) Model() *tflite.Model { return ip.model }

// Input describes the input tensor.
func (ip *Interpreter) Input() model.TensorInfo { return model.InfoOf(ip.model, ip.input.index) }

// Outputs describes the taps.
func (ip *Interpreter) Outputs() []model.TensorInfo {
	out := make([]model.TensorInfo, len(ip.outputs))
	for i, t := range ip.outputs {
		out[i] = model.InfoOf(ip.model, t.index)
	}
	return out
}

// SetInput copies raw input bytes in the input tensor's own type.
func (ip *Interpreter) SetInput(raw []byte) error {
	return writeRaw(ip.input, raw)
}

// InputInt8 returns the stored input buffer of a quantized input, for
// callers that quantize straight into it: uint8 inputs hold q-128.
func (ip *Interpreter) InputInt8() []int8 { return ip.input.i8 }

// ReadOutput copies tap i in its own type into dst.
func (ip *Interpreter) ReadOutput(i int, dst []byte) error {
	if i < 0 || i >= len(ip.outputs) {
		return fmt.Errorf("engine: output %d of %d", i, len(ip.outputs))
	}
	return readRaw(ip.outputs[i], dst)
}

// OutputInt8 returns the stored values of quantized tap i without copying,
// with their stored-domain zero point and scale (uint8 taps hold q-128 and
// zp-128). The slice is overwritten by the next Invoke.
func (ip *Interpreter) OutputInt8(i int) (data []int8, zp int32, scale float32) {
	t := ip.outputs[i]
	return t.i8, t.zp, t.scale
}

// Invoke runs the planned steps.
func (ip *Interpreter) Invoke() error {
	for i := range ip.steps {
		ip.steps[i].k.run(ip.pool)
	}
	return nil
}

// StepCount is the number of operators Invoke runs.
func (ip *Interpreter) StepCount() int { return len(ip.steps) }

// StepInfo describes step i for per-operator timings: its operator index,
// builtin name and output shape.
func (ip *Interpreter) StepInfo(i int) (index int, op string, shape []int) {
	s := &ip.steps[i]
	o := s.opr
	if len(o.Outputs) > 0 && o.Outputs[0] >= 0 {
		shape = append(shape, ip.tensors[o.Outputs[0]].shape...)
	}
	return s.index, s.op.String(), shape
}

// InvokeTimed runs the steps like Invoke and adds each step's wall time to
// times[i] (len(times) must be StepCount()), so a caller can see where a
// forward pass spends its time without a profiler.
func (ip *Interpreter) InvokeTimed(times []time.Duration) error {
	if len(times) != len(ip.steps) {
		return fmt.Errorf("engine: InvokeTimed needs %d durations, got %d", len(ip.steps), len(times))
	}
	t0 := time.Now()
	for i := range ip.steps {
		ip.steps[i].k.run(ip.pool)
		t1 := time.Now()
		times[i] += t1.Sub(t0)
		t0 = t1
	}
	return nil
}

// Close stops the worker goroutines.
func (ip *Interpreter) Close() error {
	if ip.ownPool {
		ip.pool.Close()
	}
	return nil
}

func writeRaw(t *rtensor, raw []byte) error {
	if want := t.n * t.typ.Size(); len(raw) != want {
		return fmt.Errorf("engine: %s takes %d bytes, got %d", t.where(), want, len(raw))
	}
	switch t.typ {
	case tflite.Uint8:
		for k, v := range raw {
			t.i8[k] = int8(v - 128)
		}
	case tflite.Int8:
		for k, v := range raw {
			t.i8[k] = int8(v)
		}
	case tflite.Float32:
		for k := range t.f32 {
			t.f32[k] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:]))
		}
	case tflite.Int32:
		for k := range t.i32 {
			t.i32[k] = int32(binary.LittleEndian.Uint32(raw[4*k:]))
		}
	case tflite.Int64:
		for k := range t.i64 {
			t.i64[k] = int64(binary.LittleEndian.Uint64(raw[8*k:]))
		}
	}
	return nil
}

func readRaw(t *rtensor, dst []byte) error {
	if want := t.n * t.typ.Size(); len(dst) != want {
		return fmt.Errorf("engine: %s holds %d bytes, buffer has %d", t.where(), want, len(dst))
	}
	switch t.typ {
	case tflite.Uint8:
		for k, v := range t.i8 {
			dst[k] = byte(v) + 128
		}
	case tflite.Int8:
		for k, v := range t.i8 {
			dst[k] = byte(v)
		}
	case tflite.Float32:
		for k, v := range t.f32 {
			binary.LittleEndian.PutUint32(dst[4*k:], math.Float32bits(v))
		}
	case tflite.Int32:
		for k, v := range t.i32 {
			binary.LittleEndian.PutUint32(dst[4*k:], uint32(v))
		}
	case tflite.Int64:
		for k, v := range t.i64 {
			binary.LittleEndian.PutUint64(dst[8*k:], uint64(v))
		}
	}
	return nil
}
