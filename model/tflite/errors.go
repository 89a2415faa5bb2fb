package tflite

import "errors"

// Sentinel errors; every error from Read wraps exactly one of them.
var (
	// ErrTruncated: the file ends before a structure it declares.
	ErrTruncated = errors.New("tflite: truncated file")
	// ErrNotTFLite: the file identifier is not "TFL3".
	ErrNotTFLite = errors.New("tflite: not a TensorFlow Lite file")
	// ErrVersion: the schema version is not 3.
	ErrVersion = errors.New("tflite: unsupported schema version")
	// ErrMalformed: the flatbuffer structure is broken (offsets, vtables).
	ErrMalformed = errors.New("tflite: malformed flatbuffer")
	// ErrInvalid: the structure is sound but the model is inconsistent
	// (index out of range, shape does not match its buffer, ...).
	ErrInvalid = errors.New("tflite: invalid model")
	// ErrUnsupported: a valid feature this package does not handle
	// (sparse tensors, external buffers, writing unmodelled options).
	ErrUnsupported = errors.New("tflite: unsupported")
)
