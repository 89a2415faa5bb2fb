package patchcore

import "testing"

// TestTradeoff against a hand-worked case: ten good scores 1..10 and four
// defects. At most 0% or 5% false rejects of 10 parts allows none: the
// threshold is the highest good score, 10, and the defects at 5.5 and 9.5
// pass (50%). 10% allows one: 9, and only 5.5 passes; 20%: 8, the same.
func TestTradeoff(t *testing.T) {
	scores := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 5.5, 9.5, 11, 12}
	labels := make([]bool, len(scores))
	for i := 10; i < len(labels); i++ {
		labels[i] = true
	}
	got, err := Tradeoff(scores, labels, []float64{0, 0.05, 0.1, 0.2})
	if err != nil {
		t.Fatal(err)
	}
	want := []TradeoffPoint{{0, 10, 0, 0.5}, {0.05, 10, 0, 0.5}, {0.1, 9, 0.1, 0.25}, {0.2, 8, 0.2, 0.25}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("target %v: got %+v, want %+v", want[i].TargetFRR, got[i], want[i])
		}
	}
	if _, err := Tradeoff([]float64{1, 2}, []bool{false, false}, []float64{0}); err == nil {
		t.Error("a trade-off without defects")
	}
}
