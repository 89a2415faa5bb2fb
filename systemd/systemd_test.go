package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestUnitVerifiesAndIsHardened(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("skipping: systemd-analyze is not installed")
	}
	unit, err := os.ReadFile("linesight.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart exists: point it at a real executable.
	dir := t.TempDir()
	exe, _ := os.Executable()
	u := filepath.Join(dir, "linesight.service")
	os.WriteFile(u, []byte(strings.Replace(string(unit), "/usr/bin/linesight", exe, 1)), 0o644)
	out, err := exec.Command(sa, "verify", u).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", u).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for linesight.service: ([0-9.]+) (\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: %s %s", m[1], m[2])
	if score > 2.5 {
		t.Errorf("exposure %v %s, want <= 2.5", score, m[2])
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "StartLimitBurst=", "StateDirectory=linesight",
		"ConfigurationDirectory=linesight", "User=linesight", "SupplementaryGroups=video", "ProtectSystem=strict", "ProtectHome=yes",
		"PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=", "DeviceAllow=char-video4linux", "MemoryMax="} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}

// TestDeviceAllowNamesDevices: DeviceAllow takes device nodes or classes
// (char-drm); a directory such as /dev/dri is silently ignored by systemd,
// leaving the GPU closed under DevicePolicy=closed.
func TestDeviceAllowNamesDevices(t *testing.T) {
	unit, err := os.ReadFile("linesight.service")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(unit), "\n") {
		v, ok := strings.CutPrefix(line, "DeviceAllow=")
		if !ok {
			continue
		}
		n++
		dev := strings.Fields(v)[0]
		switch {
		case strings.HasPrefix(dev, "char-") || strings.HasPrefix(dev, "block-"):
		case strings.HasPrefix(dev, "/dev/"):
			if fi, err := os.Stat(dev); err == nil && fi.IsDir() {
				t.Errorf("DeviceAllow=%s names a directory, which systemd ignores", dev)
			}
			if filepath.Dir(dev) == "/dev/dri" || dev == "/dev/dri" {
				t.Errorf("DeviceAllow=%s: use char-drm for the GPU's nodes", dev)
			}
		default:
			t.Errorf("DeviceAllow=%s is neither a device path nor a class", dev)
		}
	}
	if n == 0 || !strings.Contains(string(unit), "DeviceAllow=char-drm") {
		t.Error("the unit does not allow the GPU (char-drm)")
	}
}
