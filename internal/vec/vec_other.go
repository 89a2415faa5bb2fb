//go:build noasm || !gc || !(amd64 || arm64)

package vec

// archImpls: no SIMD kernels for this architecture or build (-tags noasm);
// the generic twins do the work.
func archImpls() []*impl { return nil }
