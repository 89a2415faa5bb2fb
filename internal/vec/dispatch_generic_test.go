//go:build noasm || !gc || !(amd64 || arm64)

package vec

import (
	"slices"
	"testing"
)

// TestDispatchGenericOnly: without assembly (-tags noasm, or an
// architecture without vector kernels here) the generic twins are all
// there is.
func TestDispatchGenericOnly(t *testing.T) {
	if avail, used := Kernels(); !slices.Equal(avail, []string{KernelGeneric}) || used != KernelGeneric {
		t.Fatalf("kernels %v, using %s", avail, used)
	}
}
