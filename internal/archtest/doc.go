// Package archtest keeps Linesight's architecture true by test: who may
// import whom (docs/ARCHITECTURE.md, "Who may import whom") and a package doc on
// every package. The rules are this package's tests and run with the rest
// under `make test`; a change that breaks one fails with the package, the
// forbidden dependency and the chain of imports that brings it in, so the
// fix is plain.
//
// The rules read the import graph the go command reports (`go list -e
// -deps -json`) for the builds that matter: the release build with cgo and
// the default tags, the optional TensorFlow Lite backend (tag "tflite"),
// and the pure-Go core with CGO_ENABLED=0 on every target architecture.
// They look at what a build compiles, not at test files: tests may reach
// further (a broker for an integration test, PyTorch for a comparison).
//
// [List] and [Graph.Reach] are the small library the rules are written
// with; the rules themselves are in archtest_test.go.
package archtest
