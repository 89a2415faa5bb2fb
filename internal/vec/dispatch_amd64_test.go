//go:build !noasm && gc

package vec

import (
	"slices"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestDispatchAMD64: the AVX-512 kernels are offered exactly when the CPU
// has AVX-512F and AVX-512BW, whatever qgemm chose.
func TestDispatchAMD64(t *testing.T) {
	avail, _ := Kernels()
	want := []string{KernelGeneric}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW {
		want = []string{KernelAVX512, KernelGeneric}
	}
	if !slices.Equal(avail, want) {
		t.Fatalf("kernels %v, want %v", avail, want)
	}
}
