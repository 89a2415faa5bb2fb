//go:build !noasm

package qgemm

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// TestDispatchAMD64: each kernel is offered exactly when its instructions
// exist, best first.
func TestDispatchAMD64(t *testing.T) {
	avail, _ := Kernels()
	want := []string{}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI {
		want = append(want, KernelAVX512VNNI)
	}
	if cpu.X86.HasAVX2 {
		want = append(want, KernelAVX2)
	}
	want = append(want, KernelGeneric)
	if len(avail) != len(want) {
		t.Fatalf("kernels %v, want %v", avail, want)
	}
	for i := range want {
		if avail[i] != want[i] {
			t.Fatalf("kernels %v, want %v", avail, want)
		}
	}
}
