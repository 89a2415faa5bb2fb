//go:build !(tflite && cgo)

package tflitec

import (
	"errors"

	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/tflite"
)

// Available reports whether this binary was built with the TFLite backend.
const Available = false

// ErrNotBuilt is returned when the binary was built without the backend.
var ErrNotBuilt = errors.New("tflitec: this binary was built without the TensorFlow Lite backend (build with -tags tflite and libtensorflowlite_c; `make build-tflite`)")

// Version is empty without the backend.
func Version() string { return "" }

// New fails without the backend.
func New(*tflite.Model, []string, int) (model.Backbone, error) { return nil, ErrNotBuilt }
