package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedFilesCurrent: the committed assembly is what the generators
// write now (an edit to a generator without `go generate`, or to a .s file
// by hand, fails here).
func TestGeneratedFilesCurrent(t *testing.T) {
	for _, c := range []struct {
		path string
		gen  func() []byte
	}{
		{"../qgemm/gemm_amd64.s", gemmAMD64},
		{"../qgemm/gemm_arm64.s", arm64Kernels},
		{"../vec/vec_amd64.s", vecAMD64},
		{"../vec/vec_arm64.s", vecARM64},
	} {
		have, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, c.gen()) {
			t.Errorf("%s differs from its generator's output: run go generate in its folder", c.path)
		}
	}
}
