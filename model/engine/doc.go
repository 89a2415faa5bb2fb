// Package engine is Linesight's pure-Go inference engine: it runs subgraph
// 0 of a TensorFlow Lite model with TensorFlow Lite's semantics, and is the
// default implementation of model.Backbone (package model/tflitec, behind
// a build tag, runs the real TensorFlow Lite behind the same interface and
// is this package's conformance oracle).
//
// # Semantics
//
// Integer paths follow TensorFlow Lite's reference and optimized kernels
// rule for rule: quantized multipliers and shifts (QuantizeMultiplier),
// gemmlowp's fixed-point rounding (SaturatingRoundingDoublingHighMul,
// RoundingDivideByPOT), saturation and the fused activations' clamps, so
// that outputs are the bytes TensorFlow Lite gives, not approximations of
// them. The rules are cited at the operators. Quantized tensors are stored
// as int8 whatever their file type: a uint8 tensor holds q−128 with zero
// point zp−128, which leaves affine arithmetic unchanged, so one set of
// int8 kernels serves both; operators whose rounding depends on a sum's
// sign (average pooling, resize) undo the shift first.
//
// # Operators
//
// CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, AVERAGE_POOL_2D,
// MAX_POOL_2D, MEAN, PAD, RESHAPE, CONCATENATION, QUANTIZE, DEQUANTIZE,
// SOFTMAX and RESIZE_BILINEAR, with fused RELU and RELU6, in float32,
// uint8 (per-tensor) and int8 (per-channel weights, int32 bias), up to the
// op versions SupportedOps lists. An unsupported operator, type or op
// version, or an inconsistent shape, is a load error that names the
// operator index and op and wraps ErrUnsupportedOp.
//
// A PAD of height and width whose one reader is a VALID CONV_2D or int8
// MAX_POOL_2D is folded into it at load (fusePads): the reader pads its
// input itself, with the value the PAD would have written, and the padded
// tensor is never made. The outputs are the same bytes (TestFusedPadEqualsPad,
// and TensorFlow Lite on the optest cases and ResNet18); a PAD whose output
// is tapped is run as it is.
//
// # Memory
//
// Everything is decided at load (NewInterpreter): the operators that feed
// the tensors asked for (Options.Taps, any tensor by name; later operators
// do not run), each operator's prepared kernel (weights packed for the
// chosen GEMM kernel, per-channel requantization, tables), and one arena
// for all activations, planned by liveness: tensors whose lifetimes
// overlap get disjoint ranges, the largest placed first at the lowest
// offset that fits. Invoke allocates nothing.
//
// # Input size
//
// Options.InputH and InputW run a model at another input size than the
// file stores: model.AtInputSize computes every shape on the way to the taps
// again (convolutions, pools, PAD, element-wise ops, CONCATENATION, MEAN)
// and the arena is planned for those shapes. An operator whose output
// depends on the stored size (RESHAPE, FULLY_CONNECTED) is a load error
// naming it; operators after the taps do not run and do not matter.
//
// # Threads
//
// Operators split their work (output rows, blocks of output pixels,
// element ranges) across Options.Threads goroutines of an
// internal/parallel pool, or across a pool shared with the caller's other
// stages (Options.Pool). Every output element is computed by one worker
// with the same arithmetic, so results are identical for any thread count.
//
// # Kernels
//
// Convolutions and fully connected layers go through the int8 GEMM of
// internal/qgemm (with the AVX-512 VNNI kernel, convolutions read their
// patches in place and requantize in registers); requantization, ADD,
// QUANTIZE, the depthwise taps and max pooling use the element-wise
// kernels of internal/vec. Both dispatch on the CPU at start, and every
// kernel gives the generic Go kernel's bits.
//
// # Tests
//
// Hand-computed cases (fixed point, convolution, average pooling's
// rounding, ADD), every single-operator case of model/internal/optest on
// any thread count, pruning by taps, the arena's sharing and zero
// allocation per Invoke on the shared MobileNetV2; with
// the tflite build tag, model/tflitec checks the engine against TensorFlow
// Lite on the shared models and photos and on every optest case (`make
// test-tflite`).
package engine
