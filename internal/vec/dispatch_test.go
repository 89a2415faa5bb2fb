package vec

import "testing"

// TestDispatch: generic is always offered, last; the one in use is one of
// those offered, and a name picks its implementation or, unknown or empty,
// the best.
func TestDispatch(t *testing.T) {
	avail, used := Kernels()
	if len(avail) == 0 || avail[len(avail)-1] != KernelGeneric {
		t.Fatalf("kernels %v: generic must come last", avail)
	}
	if Kernel() != used {
		t.Fatalf("Kernel() = %s, Kernels() says %s", Kernel(), used)
	}
	found := false
	for _, k := range avail {
		found = found || k == used
	}
	if !found {
		t.Fatalf("using %s, not among %v", used, avail)
	}
	for _, im := range impls {
		if got := pick(impls, im.name); got != im {
			t.Errorf("pick(%s) = %s", im.name, got.name)
		}
	}
	for _, want := range []string{"", "sse9", "GENERIC"} {
		if got := pick(impls, want); got != impls[0] {
			t.Errorf("pick(%q) = %s, want the best, %s", want, got.name, impls[0].name)
		}
	}
	t.Logf("vec kernels %v, using %s", avail, used)
}
