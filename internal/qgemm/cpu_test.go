package qgemm

import (
	"runtime"
	"strings"
	"testing"
)

// TestCPUFeatures: the line names the architecture first, then each
// feature marked present or absent.
func TestCPUFeatures(t *testing.T) {
	f := strings.Fields(CPUFeatures())
	if len(f) == 0 || f[0] != runtime.GOARCH {
		t.Fatalf("CPUFeatures() = %q, want it to start with %s", CPUFeatures(), runtime.GOARCH)
	}
	for _, x := range f[1:] {
		if x[0] != '+' && x[0] != '-' {
			t.Errorf("feature %q is not marked + or -", x)
		}
	}
	avail, used := Kernels()
	t.Logf("cpu: %s; gemm kernels %v, using %s", CPUFeatures(), avail, used)
}
