package tflite

import (
	"encoding/binary"
	"fmt"
)

// The verifier walks the flatbuffer before any generated accessor touches it,
// checking every offset, vtable and vector length against the file size. The
// generated Go code trusts its input and would panic on a hostile file; after
// verify succeeds, every field our schema declares can be read safely.

type fieldKind uint8

const (
	kScalar fieldKind = iota
	kString
	kVector      // vector of scalars; size = element size
	kTable       // sub-table
	kTableVector // vector of sub-tables
	kUnionType   // u8 type tag of the union in the next slot
	kUnion       // union value; resolved through unionSpecs
)

type fieldSpec struct {
	name string
	kind fieldKind
	size int
	sub  *tableSpec
}

type tableSpec struct {
	name   string
	fields []fieldSpec
	// union returns the spec of a union member by its type tag; nil when the
	// table has no union field or the tag is unknown (then it is not read).
	union func(tag uint8) *tableSpec
}

func scalar(name string, size int) fieldSpec { return fieldSpec{name: name, kind: kScalar, size: size} }
func vector(name string, size int) fieldSpec { return fieldSpec{name: name, kind: kVector, size: size} }
func str(name string) fieldSpec              { return fieldSpec{name: name, kind: kString} }
func table(name string, s *tableSpec) fieldSpec {
	return fieldSpec{name: name, kind: kTable, sub: s}
}
func tables(name string, s *tableSpec) fieldSpec {
	return fieldSpec{name: name, kind: kTableVector, sub: s}
}

var (
	specEmpty        = &tableSpec{name: "options"}
	specCustomQuant  = &tableSpec{name: "CustomQuantization", fields: []fieldSpec{vector("custom", 1)}}
	specQuantization = &tableSpec{name: "QuantizationParameters", fields: []fieldSpec{
		vector("min", 4), vector("max", 4), vector("scale", 4), vector("zero_point", 8),
		{name: "details_type", kind: kUnionType, size: 1}, {name: "details", kind: kUnion},
		scalar("quantized_dimension", 4)},
		union: func(tag uint8) *tableSpec {
			if tag == 1 {
				return specCustomQuant
			}
			return nil
		}}
	specTensor = &tableSpec{name: "Tensor", fields: []fieldSpec{
		vector("shape", 4), scalar("type", 1), scalar("buffer", 4), str("name"),
		table("quantization", specQuantization), scalar("is_variable", 1),
		table("sparsity", specEmpty), vector("shape_signature", 4), scalar("has_rank", 1),
		tables("variant_tensors", specEmpty)}}
	specOperator = &tableSpec{name: "Operator", fields: []fieldSpec{
		scalar("opcode_index", 4), vector("inputs", 4), vector("outputs", 4),
		{name: "builtin_options_type", kind: kUnionType, size: 1}, {name: "builtin_options", kind: kUnion},
		vector("custom_options", 1), scalar("custom_options_format", 1),
		vector("mutating_variable_inputs", 1), vector("intermediates", 4)},
		union: optionsSpec}
	specSubGraph = &tableSpec{name: "SubGraph", fields: []fieldSpec{
		tables("tensors", specTensor), vector("inputs", 4), vector("outputs", 4),
		tables("operators", specOperator), str("name")}}
	specOpCode = &tableSpec{name: "OperatorCode", fields: []fieldSpec{
		scalar("deprecated_builtin_code", 1), str("custom_code"), scalar("version", 4),
		scalar("builtin_code", 4)}}
	specBuffer = &tableSpec{name: "Buffer", fields: []fieldSpec{
		vector("data", 1), scalar("offset", 8), scalar("size", 8)}}
	specMetadata = &tableSpec{name: "Metadata", fields: []fieldSpec{str("name"), scalar("buffer", 4)}}
	specModel    = &tableSpec{name: "Model", fields: []fieldSpec{
		scalar("version", 4), tables("operator_codes", specOpCode), tables("subgraphs", specSubGraph),
		str("description"), tables("buffers", specBuffer), vector("metadata_buffer", 4),
		tables("metadata", specMetadata)}}
)

// Options tables with fields; every other union member is read as empty.
var optionSpecs = map[uint8]*tableSpec{
	utConv2D: {name: "Conv2DOptions", fields: []fieldSpec{scalar("padding", 1), scalar("stride_w", 4),
		scalar("stride_h", 4), scalar("fused_activation_function", 1), scalar("dilation_w_factor", 4),
		scalar("dilation_h_factor", 4), scalar("quantized_bias_type", 1)}},
	utDepthwiseConv: {name: "DepthwiseConv2DOptions", fields: []fieldSpec{scalar("padding", 1),
		scalar("stride_w", 4), scalar("stride_h", 4), scalar("depth_multiplier", 4),
		scalar("fused_activation_function", 1), scalar("dilation_w_factor", 4), scalar("dilation_h_factor", 4)}},
	utPool2D: {name: "Pool2DOptions", fields: []fieldSpec{scalar("padding", 1), scalar("stride_w", 4),
		scalar("stride_h", 4), scalar("filter_width", 4), scalar("filter_height", 4),
		scalar("fused_activation_function", 1)}},
	utFullyConnected: {name: "FullyConnectedOptions", fields: []fieldSpec{
		scalar("fused_activation_function", 1), scalar("weights_format", 1), scalar("keep_num_dims", 1),
		scalar("asymmetric_quantize_inputs", 1), scalar("quantized_bias_type", 1)}},
	utSoftmax:       {name: "SoftmaxOptions", fields: []fieldSpec{scalar("beta", 4)}},
	utConcatenation: {name: "ConcatenationOptions", fields: []fieldSpec{scalar("axis", 4), scalar("fused_activation_function", 1)}},
	utAdd:           {name: "AddOptions", fields: []fieldSpec{scalar("fused_activation_function", 1), scalar("pot_scale_int16", 1)}},
	utResizeBilinear: {name: "ResizeBilinearOptions", fields: []fieldSpec{scalar("new_height", 4),
		scalar("new_width", 4), scalar("align_corners", 1), scalar("half_pixel_centers", 1)}},
	utReshape: {name: "ReshapeOptions", fields: []fieldSpec{vector("new_shape", 4)}},
	utReducer: {name: "ReducerOptions", fields: []fieldSpec{scalar("keep_dims", 1)}},
}

// maxOptionsType is the last union member our schema declares.
const maxOptionsType = utQuantize

func optionsSpec(tag uint8) *tableSpec {
	if s, ok := optionSpecs[tag]; ok {
		return s
	}
	if tag >= 1 && tag <= maxOptionsType {
		return specEmpty
	}
	return nil
}

type verifier struct {
	buf    []byte
	budget int // tables and vectors still allowed; stops shared-reference blowups
}

// verify checks the whole file structure. path names the place in errors.
func verify(buf []byte) error {
	if len(buf) < 8 {
		return fmt.Errorf("%w: file is %d bytes, shorter than a flatbuffer header", ErrTruncated, len(buf))
	}
	if len(buf) > maxFileSize {
		return fmt.Errorf("%w: file is %d bytes; files over 2 GiB (external buffers) are not supported", ErrUnsupported, len(buf))
	}
	// Every table or vector takes at least 4 bytes of its own, so a file that
	// makes us visit more than len/4 of them shares or repeats references.
	v := &verifier{buf: buf, budget: len(buf)/4 + 16}
	root, err := v.uoffset(0, "root")
	if err != nil {
		return err
	}
	return v.table(root, specModel, "model")
}

const maxFileSize = 1<<31 - 1

func (v *verifier) u32(pos int) uint32 { return binary.LittleEndian.Uint32(v.buf[pos:]) }

func (v *verifier) charge(where string) error {
	v.budget--
	if v.budget < 0 {
		return fmt.Errorf("%w: %s: more objects than the file can hold (shared or repeated references)", ErrMalformed, where)
	}
	return nil
}

// uoffset follows the unsigned offset stored at pos and returns the target.
func (v *verifier) uoffset(pos int, where string) (int, error) {
	if pos < 0 || pos+4 > len(v.buf) {
		return 0, fmt.Errorf("%w: %s: offset at byte %d is past the end (%d bytes)", ErrTruncated, where, pos, len(v.buf))
	}
	t := uint64(pos) + uint64(v.u32(pos))
	if t+4 > uint64(len(v.buf)) {
		return 0, fmt.Errorf("%w: %s: offset at byte %d points to %d, past the end (%d bytes)", ErrMalformed, where, pos, t, len(v.buf))
	}
	return int(t), nil
}

// vector checks a vector at pos with elements of size bytes and returns the
// position of its first element and its length.
func (v *verifier) vector(pos, size int, where string) (int, int, error) {
	if err := v.charge(where); err != nil {
		return 0, 0, err
	}
	n := uint64(v.u32(pos))
	end := uint64(pos) + 4 + n*uint64(size)
	if end > uint64(len(v.buf)) {
		return 0, 0, fmt.Errorf("%w: %s: vector of %d elements at byte %d runs past the end (%d bytes)", ErrMalformed, where, n, pos, len(v.buf))
	}
	return pos + 4, int(n), nil
}

func (v *verifier) table(pos int, spec *tableSpec, where string) error {
	if err := v.charge(where); err != nil {
		return err
	}
	if pos+4 > len(v.buf) {
		return fmt.Errorf("%w: %s: table at byte %d is past the end", ErrMalformed, where, pos)
	}
	vt := int64(pos) - int64(int32(v.u32(pos)))
	if vt < 0 || vt+4 > int64(len(v.buf)) {
		return fmt.Errorf("%w: %s: vtable of table at byte %d is out of the file", ErrMalformed, where, pos)
	}
	vtab := int(vt)
	vtSize := int(binary.LittleEndian.Uint16(v.buf[vtab:]))
	tblSize := int(binary.LittleEndian.Uint16(v.buf[vtab+2:]))
	if vtSize < 4 || vtSize%2 != 0 || vtab+vtSize > len(v.buf) {
		return fmt.Errorf("%w: %s: vtable at byte %d has bad size %d", ErrMalformed, where, vtab, vtSize)
	}
	if tblSize < 4 || pos+tblSize > len(v.buf) {
		return fmt.Errorf("%w: %s: table at byte %d of %d bytes runs past the end", ErrMalformed, where, pos, tblSize)
	}
	var unionTag uint8
	for slot, f := range spec.fields {
		fwhere := where + "." + f.name
		if 4+2*slot+2 > vtSize {
			break // fields past the vtable are absent
		}
		off := int(binary.LittleEndian.Uint16(v.buf[vtab+4+2*slot:]))
		if off == 0 {
			if f.kind == kUnionType {
				unionTag = 0
			}
			continue
		}
		size := f.size
		if f.kind != kScalar && f.kind != kUnionType {
			size = 4
		}
		if off+size > tblSize {
			return fmt.Errorf("%w: %s: field at offset %d overruns its table (%d bytes)", ErrMalformed, fwhere, off, tblSize)
		}
		fpos := pos + off
		switch f.kind {
		case kScalar:
		case kUnionType:
			unionTag = v.buf[fpos]
		case kString, kVector:
			t, err := v.uoffset(fpos, fwhere)
			if err != nil {
				return err
			}
			es := f.size
			if f.kind == kString {
				es = 1
			}
			if _, _, err := v.vector(t, es, fwhere); err != nil {
				return err
			}
		case kTable:
			t, err := v.uoffset(fpos, fwhere)
			if err != nil {
				return err
			}
			if err := v.table(t, f.sub, fwhere); err != nil {
				return err
			}
		case kTableVector:
			t, err := v.uoffset(fpos, fwhere)
			if err != nil {
				return err
			}
			first, n, err := v.vector(t, 4, fwhere)
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				ew := fmt.Sprintf("%s[%d]", fwhere, i)
				et, err := v.uoffset(first+4*i, ew)
				if err != nil {
					return err
				}
				if err := v.table(et, f.sub, ew); err != nil {
					return err
				}
			}
		case kUnion:
			sub := spec.union(unionTag)
			if sub == nil {
				continue // unknown member: never unpacked
			}
			t, err := v.uoffset(fpos, fwhere)
			if err != nil {
				return err
			}
			if err := v.table(t, sub, fwhere); err != nil {
				return err
			}
		}
	}
	return nil
}
