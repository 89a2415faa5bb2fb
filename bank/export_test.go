package bank

// Test-only access for the external tests (package bank_test), which run
// whole detectors from package patchcore on real data.

// SetSearcherHook makes NewSearcher call h with every Searcher it makes
// (nil: none).
func SetSearcherHook(h func(*Searcher)) { searcherHook = h }

// SetExhaustive makes s search by brute force (true) or as NewSearcher
// chose (false).
func (s *Searcher) SetExhaustive(on bool) { s.exhaustive = on }

// Clustered reports whether s has a cluster index.
func (s *Searcher) Clustered() bool { return s.ci != nil }
