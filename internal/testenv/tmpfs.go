package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Tmpfs mounts a tmpfs of size (mount's syntax: "512k", "300m") on a new
// temporary folder, unmounted when the test ends, and returns the folder:
// a small disk that fills up, for tests of full disks. The test is skipped
// when it does not run as root or the mount fails.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipping %s: mounting a small tmpfs needs root", t.Name())
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipping %s: cannot mount a tmpfs here: %v %s", t.Name(), err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}
