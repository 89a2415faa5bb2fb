//go:build race

package testenv

// Race reports whether the test binary was built with the race detector.
// Tests that run a model over a whole dataset skip under it: the detector
// makes them many times slower and `make test-accept` runs them without.
const Race = true
