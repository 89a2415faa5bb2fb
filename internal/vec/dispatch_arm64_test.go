//go:build !noasm && gc

package vec

import (
	"slices"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestDispatchARM64: the NEON kernels are offered exactly when the CPU
// reports ASIMD (every arm64 CPU does; qemu's Cortex-A72 and A76 both),
// whatever qgemm chose.
func TestDispatchARM64(t *testing.T) {
	avail, _ := Kernels()
	want := []string{KernelGeneric}
	if cpu.ARM64.HasASIMD {
		want = []string{KernelNEON, KernelGeneric}
	}
	if !slices.Equal(avail, want) {
		t.Fatalf("kernels %v, want %v", avail, want)
	}
}
