//go:build noasm || !(amd64 || arm64)

package qgemm

// archImpls: no SIMD kernels for this architecture or build (-tags noasm);
// the generic reference does the work.
func archImpls() []*impl { return nil }
