package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestARM64Encodings: every instruction the arm64 generators emit as a
// WORD is assembled from its comment by GNU as (binutils'
// aarch64-linux-gnu-as, an independent encoder) and must give the same
// word. Skipped where the cross binutils are not installed.
func TestARM64Encodings(t *testing.T) {
	as, err := exec.LookPath("aarch64-linux-gnu-as")
	if err != nil {
		t.Skip("aarch64-linux-gnu-as not installed (binutils-aarch64-linux-gnu)")
	}
	objdump, err := exec.LookPath("aarch64-linux-gnu-objdump")
	if err != nil {
		t.Skip("aarch64-linux-gnu-objdump not installed")
	}
	word := regexp.MustCompile(`WORD \$0x([0-9a-f]{8}) // (.*)$`)
	var words []uint32
	var src strings.Builder
	src.WriteString(".arch armv8.2-a+dotprod\n")
	for _, gen := range []func() []byte{arm64Kernels, vecARM64} {
		for _, line := range strings.Split(string(gen()), "\n") {
			m := word.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			w, err := strconv.ParseUint(m[1], 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			words = append(words, uint32(w))
			src.WriteString(strings.ToLower(m[2]) + "\n")
		}
	}
	if len(words) < 50 {
		t.Fatalf("only %d WORDs found in the generated arm64 assembly", len(words))
	}
	dir := t.TempDir()
	s, o := filepath.Join(dir, "w.s"), filepath.Join(dir, "w.o")
	if err := os.WriteFile(s, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(as, "-o", o, s).CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	dump, err := exec.Command(objdump, "-d", o).Output()
	if err != nil {
		t.Fatalf("objdump: %v", err)
	}
	// Lines like "   4:	4e209400 	sdot	v0.4s, v0.16b, v0.16b".
	insn := regexp.MustCompile(`^\s*[0-9a-f]+:\s+([0-9a-f]{8})\s+(.*)$`)
	var got []uint32
	var text []string
	for _, line := range bytes.Split(dump, []byte("\n")) {
		if m := insn.FindSubmatch(line); m != nil {
			w, _ := strconv.ParseUint(string(m[1]), 16, 32)
			got = append(got, uint32(w))
			text = append(text, string(m[2]))
		}
	}
	if len(got) != len(words) {
		t.Fatalf("as gave %d instructions for %d WORDs", len(got), len(words))
	}
	srcLines := strings.Split(src.String(), "\n")[1:]
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("%s: WORD $0x%08x, as encodes $0x%08x (%s)", srcLines[i], words[i], got[i], text[i])
		}
	}
	t.Logf("%d WORD encodings agree with GNU as", len(words))
}
