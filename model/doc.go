// Package model is what the rest of Linesight knows about backbones: the
// Backbone interface that runs a model on one input and hands out named
// tensors, and the helpers around it that do not depend on which
// implementation runs it.
//
//   - Backbone, implemented by the pure-Go engine (package model/engine)
//     and by the TensorFlow Lite C library (package model/tflitec, build
//     tag "tflite").
//   - TensorInfo, InfoOf, FindTensor and WithOutputs: describing tensors,
//     finding taps by name (or by a part of a converter's fused name), and
//     exposing intermediate tensors as outputs for runtimes that only hand
//     out outputs.
//   - Feeder: the preprocessing from a frame to the input tensor (centre
//     crop, antialiased bilinear resize, the input's type), which is part
//     of a memory bank's recipe and must be the same when the bank is built
//     and when it is used.
//   - TopK and LabelsBeside: classification outputs and their labels
//     (`linesight model run`).
//   - Describe, MACs and OpMACs: a model's summary and the multiply-
//     accumulates its convolutions do (`linesight model info`, bench
//     figures).
//
// The .tflite file format is package model/tflite; the torchvision ResNet
// builder is model/resnet, its checkpoint reader model/torchckpt, and what
// `linesight model run` does is model/runner. Package model imports none
// of them but model/tflite, and not the engine: the engine depends on
// model, not the other way round.
package model
