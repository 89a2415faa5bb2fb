package rgb

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportsNoGEMM: the image code (and with it the heatmaps built on it)
// takes its kernels from internal/vec, not from the GEMM package, directly
// or through another package of the module. Read from the source files, so
// it needs no go command and runs under qemu too.
func TestImportsNoGEMM(t *testing.T) {
	const module = "github.com/linesight/linesight/"
	root, _ := filepath.Abs("../..")
	seen := map[string]bool{}
	var walk func(path, dir string)
	walk = func(path, dir string) {
		if seen[path] {
			return
		}
		seen[path] = true
		if path == module+"internal/qgemm" {
			t.Errorf("rgb depends on %s", path)
			return
		}
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				walk(imp, filepath.Join(root, filepath.FromSlash(rel)))
			}
		}
	}
	walk(module+"internal/rgb", ".")
}
