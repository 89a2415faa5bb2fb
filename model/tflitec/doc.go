// Package tflitec runs models with the real TensorFlow Lite C library, behind
// the same model.Backbone interface as the pure-Go engine.
//
// It is built only with the build tag "tflite" and cgo, against
// libtensorflowlite_c and its headers (the Makefile fetches TFLite 2.2 for
// linux x86-64 from the npm package node-tflite and sets CGO_CFLAGS and
// CGO_LDFLAGS). It serves as the conformance oracle for the Go engine, and as
// a production option on devices that ship libtensorflowlite_c.
//
// Taps (intermediate tensors) are exposed by re-writing the model with the
// tapped tensors as subgraph outputs, so TFLite keeps them alive.
package tflitec
