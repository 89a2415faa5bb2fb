package cross

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestDebInstallUpgradeRemove installs the amd64 package with dpkg on this
// machine, checks what it put where and the user it made, upgrades it
// (state and an edited config survive), rolls it back to the older version,
// then removes it (config and state stay) and purges it (nothing stays).
// It needs root and must not meet an installed linesight package; `make
// test-deb` builds the package and runs it.
func TestDebInstallUpgradeRemove(t *testing.T) {
	deb := os.Getenv("LINESIGHT_DEB")
	if deb == "" {
		t.Skip("skipping: installs a package on this machine; `make test-deb` builds one and runs this (LINESIGHT_DEB=FILE)")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: dpkg -i needs root")
	}
	if err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "linesight").Run(); err == nil {
		t.Skip("skipping: a linesight package is already installed here; this test would replace it")
	}
	if out, _ := exec.Command("getent", "passwd", "linesight").Output(); len(out) > 0 {
		t.Skip("skipping: a linesight user already exists here; the test checks the package creates it")
	}
	t.Cleanup(func() { exec.Command("dpkg", "--purge", "linesight").Run() })
	version := strings.TrimSpace(sh(t, "dpkg-deb", "-f", deb, "Version"))

	// The contents and the control fields, before installing.
	list := sh(t, "dpkg-deb", "-c", deb)
	for _, f := range []string{"./usr/bin/linesight", "./lib/systemd/system/linesight.service", "./etc/linesight/linesight.yaml", "./usr/share/doc/linesight/copyright"} {
		if !strings.Contains(list, " "+f+"\n") {
			t.Errorf("package lacks %s", f)
		}
	}
	deps := sh(t, "dpkg-deb", "-f", deb, "Depends")
	for _, d := range []string{"libopencv-core406", "libopencv-videoio406", "libc6"} {
		if !strings.Contains(deps, d) {
			t.Errorf("Depends %q lacks %s", deps, d)
		}
	}
	if c := sh(t, "dpkg-deb", "-I", deb, "conffiles"); strings.TrimSpace(c) != "/etc/linesight/linesight.yaml" {
		t.Errorf("conffiles %q", c)
	}

	sh(t, "dpkg", "-i", deb)
	if got := sh(t, "/usr/bin/linesight", "version"); !strings.Contains(got, version) {
		t.Errorf("linesight version = %q, package %s", got, version)
	}
	example, _ := os.ReadFile(filepath.Join("..", "config", "linesight.example.yaml"))
	installed, err := os.ReadFile("/etc/linesight/linesight.yaml")
	if err != nil || !bytes.Equal(installed, example) {
		t.Errorf("/etc/linesight/linesight.yaml is not the commented example (%v)", err)
	}
	sh(t, "/usr/bin/linesight", "config", "check", "/etc/linesight/linesight.yaml")
	pw := strings.Split(strings.TrimSpace(sh(t, "getent", "passwd", "linesight")), ":")
	if len(pw) != 7 || pw[5] != "/var/lib/linesight" || pw[6] != "/usr/sbin/nologin" {
		t.Errorf("user linesight = %v, want home /var/lib/linesight and shell nologin", pw)
	}
	if groups := sh(t, "id", "-nG", "linesight"); !strings.Contains(" "+groups, " video") {
		t.Errorf("linesight is in %q, not in video", groups)
	}
	if st := sh(t, "stat", "-c", "%U:%G %a", "/var/lib/linesight"); strings.TrimSpace(st) != "linesight:linesight 750" {
		t.Errorf("/var/lib/linesight is %s", st)
	}
	// Enabled by nobody: no wants link anywhere.
	if links, _ := filepath.Glob("/etc/systemd/system/*.wants/linesight.service"); len(links) > 0 {
		t.Errorf("the package enabled the service: %v", links)
	}
	if exists("/usr/bin/systemd-analyze") {
		if out, err := exec.Command("systemd-analyze", "verify", "/lib/systemd/system/linesight.service").CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify on the installed unit: %v\n%s", err, out)
		}
	}

	// Upgrade: a newer version of the same package keeps the state and the
	// operator's edits to the config.
	state := "/var/lib/linesight/banks.db"
	if err := os.WriteFile(state, []byte("bank"), 0o640); err != nil {
		t.Fatal(err)
	}
	edited := append(installed, []byte("# edited at the line\n")...)
	if err := os.WriteFile("/etc/linesight/linesight.yaml", edited, 0o644); err != nil {
		t.Fatal(err)
	}
	newer := repack(t, deb, version+"+1")
	sh(t, "dpkg", "-i", "--force-confold", newer)
	if v := sh(t, "dpkg-query", "-W", "-f", "${Version}", "linesight"); v != version+"+1" {
		t.Errorf("after the upgrade: version %s", v)
	}
	if b, _ := os.ReadFile("/etc/linesight/linesight.yaml"); !bytes.Equal(b, edited) {
		t.Error("the upgrade lost the edited config")
	}
	if !exists(state) {
		t.Error("the upgrade lost the state folder's contents")
	}
	// Rollback: dpkg installs the older package over the newer one.
	sh(t, "dpkg", "-i", "--force-confold", deb)
	if v := sh(t, "dpkg-query", "-W", "-f", "${Version}", "linesight"); v != version {
		t.Errorf("after the rollback: version %s", v)
	}

	sh(t, "dpkg", "--remove", "linesight")
	for _, f := range []string{"/usr/bin/linesight", "/lib/systemd/system/linesight.service"} {
		if exists(f) {
			t.Errorf("remove left %s", f)
		}
	}
	if !exists("/etc/linesight/linesight.yaml") || !exists(state) {
		t.Error("remove must keep the config and the banks")
	}
	if st := sh(t, "dpkg-query", "-W", "-f", "${Status}", "linesight"); !strings.Contains(st, "config-files") {
		t.Errorf("after remove: status %q", st)
	}

	sh(t, "dpkg", "--purge", "linesight")
	for _, f := range []string{"/etc/linesight", "/var/lib/linesight", "/usr/share/doc/linesight"} {
		if exists(f) {
			t.Errorf("purge left %s", f)
		}
	}
	if out, _ := exec.Command("getent", "passwd", "linesight").Output(); len(out) > 0 {
		t.Error("purge left the linesight user")
	}
	if out, _ := exec.Command("getent", "group", "linesight").Output(); len(out) > 0 {
		t.Error("purge left the linesight group")
	}
	if err := exec.Command("dpkg-query", "-W", "linesight").Run(); err == nil {
		t.Error("dpkg still knows linesight after purge")
	}
	fmt.Printf("deb: %s: installed, upgraded to %s+1 and rolled back, removed, purged\n", filepath.Base(deb), version)
}

// repack rebuilds deb with another version, as the next release would be.
func repack(t *testing.T, deb, version string) string {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	sh(t, "dpkg-deb", "-R", deb, tree)
	control := filepath.Join(tree, "DEBIAN", "control")
	b, err := os.ReadFile(control)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Version: ") {
			l = "Version: " + version
		}
		out = append(out, l)
	}
	if err := os.WriteFile(control, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(dir, "newer.deb")
	sh(t, "dpkg-deb", "--root-owner-group", "-b", tree, newer)
	return newer
}
