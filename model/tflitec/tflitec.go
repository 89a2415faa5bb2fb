//go:build tflite && cgo

package tflitec

/*
#cgo LDFLAGS: -ltensorflowlite_c
#include <stdlib.h>
#include <string.h>
#include "tensorflow/lite/c/c_api.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
)

// Available reports whether this binary was built with the TFLite backend.
const Available = true

// Version is the TensorFlow Lite library version.
func Version() string { return C.GoString(C.TfLiteVersion()) }

// Backbone is a model running in TensorFlow Lite.
type Backbone struct {
	model   *C.TfLiteModel
	opts    *C.TfLiteInterpreterOptions
	interp  *C.TfLiteInterpreter
	data    unsafe.Pointer // the model bytes, which TFLite reads in place
	input   model.TensorInfo
	outputs []model.TensorInfo
}

var _ model.Backbone = (*Backbone)(nil)

// New loads m into TensorFlow Lite with the given taps (tensor names; empty
// means the model's outputs) and thread count.
func New(m *tflite.Model, taps []string, threads int) (model.Backbone, error) {
	var outIdx []int
	if len(taps) == 0 {
		for _, o := range m.Subgraphs[0].Outputs {
			outIdx = append(outIdx, int(o))
		}
	} else {
		for _, name := range taps {
			i, err := model.FindTensor(m, name)
			if err != nil {
				return nil, err
			}
			outIdx = append(outIdx, i)
		}
	}
	if len(m.Subgraphs[0].Inputs) != 1 {
		return nil, fmt.Errorf("tflitec: model has %d inputs; backbones take one", len(m.Subgraphs[0].Inputs))
	}
	raw, err := tflite.Write(model.WithOutputs(m, outIdx))
	if err != nil {
		return nil, fmt.Errorf("tflitec: re-writing the model with taps as outputs: %w", err)
	}
	b := &Backbone{input: model.InfoOf(m, int(m.Subgraphs[0].Inputs[0]))}
	for _, i := range outIdx {
		b.outputs = append(b.outputs, model.InfoOf(m, i))
	}
	b.data = C.CBytes(raw)
	b.model = C.TfLiteModelCreate(b.data, C.size_t(len(raw)))
	if b.model == nil {
		b.Close()
		return nil, fmt.Errorf("tflitec: TensorFlow Lite %s rejected the model", Version())
	}
	b.opts = C.TfLiteInterpreterOptionsCreate()
	if threads > 0 {
		C.TfLiteInterpreterOptionsSetNumThreads(b.opts, C.int32_t(threads))
	}
	b.interp = C.TfLiteInterpreterCreate(b.model, b.opts)
	if b.interp == nil {
		b.Close()
		return nil, fmt.Errorf("tflitec: TensorFlow Lite %s could not build an interpreter for the model", Version())
	}
	if C.TfLiteInterpreterAllocateTensors(b.interp) != C.kTfLiteOk {
		b.Close()
		return nil, fmt.Errorf("tflitec: allocating tensors failed")
	}
	if n := int(C.TfLiteInterpreterGetOutputTensorCount(b.interp)); n != len(b.outputs) {
		b.Close()
		return nil, fmt.Errorf("tflitec: interpreter has %d outputs, want %d", n, len(b.outputs))
	}
	return b, nil
}

// Input describes the input tensor.
func (b *Backbone) Input() model.TensorInfo { return b.input }

// Outputs describes the taps.
func (b *Backbone) Outputs() []model.TensorInfo { return b.outputs }

// SetInput copies raw input bytes in the input's own type.
func (b *Backbone) SetInput(raw []byte) error {
	t := C.TfLiteInterpreterGetInputTensor(b.interp, 0)
	if int(C.TfLiteTensorByteSize(t)) != len(raw) || len(raw) == 0 {
		return fmt.Errorf("tflitec: input takes %d bytes, got %d", int(C.TfLiteTensorByteSize(t)), len(raw))
	}
	if C.TfLiteTensorCopyFromBuffer(t, unsafe.Pointer(&raw[0]), C.size_t(len(raw))) != C.kTfLiteOk {
		return fmt.Errorf("tflitec: copying the input failed")
	}
	return nil
}

// Invoke runs the model.
func (b *Backbone) Invoke() error {
	if C.TfLiteInterpreterInvoke(b.interp) != C.kTfLiteOk {
		return fmt.Errorf("tflitec: invoke failed")
	}
	return nil
}

// ReadOutput copies tap i into dst.
func (b *Backbone) ReadOutput(i int, dst []byte) error {
	if i < 0 || i >= len(b.outputs) {
		return fmt.Errorf("tflitec: output %d of %d", i, len(b.outputs))
	}
	t := C.TfLiteInterpreterGetOutputTensor(b.interp, C.int32_t(i))
	if int(C.TfLiteTensorByteSize(t)) != len(dst) || len(dst) == 0 {
		return fmt.Errorf("tflitec: output %d holds %d bytes, buffer has %d", i, int(C.TfLiteTensorByteSize(t)), len(dst))
	}
	if C.TfLiteTensorCopyToBuffer(t, unsafe.Pointer(&dst[0]), C.size_t(len(dst))) != C.kTfLiteOk {
		return fmt.Errorf("tflitec: copying output %d failed", i)
	}
	return nil
}

// Close frees the interpreter, options and model.
func (b *Backbone) Close() error {
	if b.interp != nil {
		C.TfLiteInterpreterDelete(b.interp)
		b.interp = nil
	}
	if b.opts != nil {
		C.TfLiteInterpreterOptionsDelete(b.opts)
		b.opts = nil
	}
	if b.model != nil {
		C.TfLiteModelDelete(b.model)
		b.model = nil
	}
	if b.data != nil {
		C.free(b.data)
		b.data = nil
	}
	return nil
}
