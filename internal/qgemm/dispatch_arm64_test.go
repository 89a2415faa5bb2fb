//go:build !noasm

package qgemm

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// TestDispatchARM64: SDOT only where the CPU reports dotprod (qemu's
// Cortex-A72 does not, its Cortex-A76 does: make test-qemu runs both), and
// then it is the one Pack uses.
func TestDispatchARM64(t *testing.T) {
	avail, used := Kernels()
	has := false
	for _, k := range avail {
		has = has || k == KernelSDOT
	}
	if has != cpu.ARM64.HasASIMDDP {
		t.Fatalf("dotprod %v, kernels %v", cpu.ARM64.HasASIMDDP, avail)
	}
	want := KernelNEON
	if cpu.ARM64.HasASIMDDP {
		want = KernelSDOT
	}
	if used != want && used != KernelGeneric { // LINESIGHT_KERNEL may force generic
		t.Fatalf("Pack uses %s, want %s", used, want)
	}
	t.Logf("dotprod %v: kernels %v, using %s", cpu.ARM64.HasASIMDDP, avail, used)
}
