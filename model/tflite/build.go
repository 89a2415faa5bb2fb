package tflite

// Builder assembles a single-subgraph model: tensors with optional constant
// data, operators, inputs and outputs. It is how Linesight writes models of
// its own (the ResNet18 builder, single-op conformance models).
type Builder struct {
	m     Model
	codes map[[2]int32]uint32
}

// NewBuilder starts an empty model with the sentinel buffer 0.
func NewBuilder(description string) *Builder {
	return &Builder{m: Model{Version: 3, Description: description, Buffers: [][]byte{nil},
		Subgraphs: []Subgraph{{Name: "main"}}}, codes: map[[2]int32]uint32{}}
}

// Tensor adds a tensor; data, when not nil, becomes its constant buffer.
// It returns the tensor's index.
func (b *Builder) Tensor(name string, typ TensorType, shape []int32, q *Quantization, data []byte) int32 {
	t := Tensor{Name: name, Type: typ, Shape: shape, Quant: q}
	if data != nil {
		t.Buffer = uint32(len(b.m.Buffers))
		b.m.Buffers = append(b.m.Buffers, data)
	}
	sg := &b.m.Subgraphs[0]
	sg.Tensors = append(sg.Tensors, t)
	return int32(len(sg.Tensors) - 1)
}

// Op appends an operator of the given code and version.
func (b *Builder) Op(op BuiltinOp, version int32, inputs, outputs []int32, opts Options) {
	key := [2]int32{int32(op), version}
	idx, ok := b.codes[key]
	if !ok {
		idx = uint32(len(b.m.OperatorCodes))
		b.m.OperatorCodes = append(b.m.OperatorCodes, OperatorCode{Builtin: op, Version: version})
		b.codes[key] = idx
	}
	sg := &b.m.Subgraphs[0]
	sg.Operators = append(sg.Operators, Operator{OpcodeIndex: idx, Inputs: inputs, Outputs: outputs, Options: opts})
}

// IO sets the subgraph's inputs and outputs.
func (b *Builder) IO(inputs, outputs []int32) {
	b.m.Subgraphs[0].Inputs, b.m.Subgraphs[0].Outputs = inputs, outputs
}

// Metadata attaches a named metadata buffer.
func (b *Builder) Metadata(name string, data []byte) {
	b.m.Metadata = append(b.m.Metadata, Metadata{Name: name, Buffer: uint32(len(b.m.Buffers))})
	b.m.Buffers = append(b.m.Buffers, data)
}

// Model returns the model built so far (validate it, or Write it).
func (b *Builder) Model() *Model { return &b.m }

// PerTensor is per-tensor quantization with one scale and zero point.
func PerTensor(scale float32, zp int64) *Quantization {
	return &Quantization{Scale: []float32{scale}, ZeroPoint: []int64{zp}}
}
