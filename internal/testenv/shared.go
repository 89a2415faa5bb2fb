package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// ModuleRoot returns the absolute path of the folder holding the module's
// go.mod, found by walking up from the working directory (go test runs a
// test binary in its package's folder). It fails the test when there is
// none: the test binary was started outside the source tree.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return root
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: the test is not running inside the module's source tree")
		}
		dir = parent
	}
}

// Shared returns the absolute path of the folder named "shared" beside the
// repository (../shared seen from the module root), which holds the real
// models, photos and datasets. It skips the test, saying so, when the
// folder is not there.
func Shared(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Skipf("skipping %s: it needs the shared folder beside the repository, which cannot be located: %v", t.Name(), err)
	}
	dir := filepath.Join(filepath.Dir(root), "shared")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Skipf("skipping %s: it needs the shared folder (models, photos, MVTec AD) beside the repository, and %s is absent", t.Name(), dir)
	}
	return dir
}

// SharedFile returns the absolute path of rel (slash-separated) inside the
// shared folder: a file or a folder. It skips the test, saying which, when
// the shared folder or rel in it is missing.
func SharedFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Shared(t), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Skipf("skipping %s: it needs %s from the shared folder, which is absent (%v)", t.Name(), rel, err)
	}
	return p
}

// FindShared is SharedFile for callers that go on without the file (a
// fuzz target's optional seeds): the absolute path of rel inside the shared
// folder and whether it exists.
func FindShared(rel string) (string, bool) {
	root, err := moduleRoot()
	if err != nil {
		return "", false
	}
	p := filepath.Join(filepath.Dir(root), "shared", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		return p, false
	}
	return p, true
}
