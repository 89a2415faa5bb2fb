package qgemm

import (
	"testing"
	"time"
)

func TestPeakGMACs(t *testing.T) {
	g := PeakGMACs(20 * time.Millisecond)
	if !(g > 0) {
		t.Fatalf("PeakGMACs = %v", g)
	}
	t.Logf("%s peak: %.1f GMAC/s per core", chosen.name, g)
}
