package testenv

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestModuleRootHoldsGoMod(t *testing.T) {
	root := ModuleRoot(t)
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "module github.com/linesight/linesight\n") {
		t.Fatalf("%s/go.mod is not Linesight's:\n%s", root, mod)
	}
}

func TestSharedIsBesideTheRepository(t *testing.T) {
	dir := Shared(t)
	if !filepath.IsAbs(dir) || filepath.Dir(dir) != filepath.Dir(ModuleRoot(t)) || filepath.Base(dir) != "shared" {
		t.Fatalf("Shared = %s, want the folder shared beside %s", dir, ModuleRoot(t))
	}
	if p := SharedFile(t, "models/mobilenet_v2"); p != filepath.Join(dir, "models", "mobilenet_v2") {
		t.Fatalf("SharedFile = %s", p)
	}
	if p, ok := FindShared("models/mobilenet_v2"); !ok || p != filepath.Join(dir, "models", "mobilenet_v2") {
		t.Fatalf("FindShared = %s, %v", p, ok)
	}
	if _, ok := FindShared("no/such/file"); ok {
		t.Fatal("FindShared found a file that does not exist")
	}
}

// TestSharedFileSkipsWhenMissing runs SharedFile in a subtest on a name
// that cannot exist: the subtest must be skipped, not failed.
func TestSharedFileSkipsWhenMissing(t *testing.T) {
	Shared(t)
	var reached atomic.Bool
	t.Run("missing", func(t *testing.T) {
		SharedFile(t, "no/such/file.tflite")
		reached.Store(true)
	})
	if reached.Load() {
		t.Fatal("SharedFile returned for a file that does not exist")
	}
}

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	start := time.Now()
	var calls int
	Eventually(t, 10*time.Second, func() bool { calls++; return time.Since(start) > 20*time.Millisecond }, "the clock stopped")
	if calls < 2 {
		t.Fatalf("condition checked %d times", calls)
	}
	var n int
	WaitUntil(t, 10*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
}

func TestWaitForGivesUp(t *testing.T) {
	start := time.Now()
	if waitFor(30*time.Millisecond, func() bool { return false }) {
		t.Fatal("waitFor reported a false condition as met")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("gave up after %v, before the timeout", d)
	}
}

func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestMosquittoOutage takes a broker through an operator's stop, a crash
// and two restarts, on one port.
func TestMosquittoOutage(t *testing.T) {
	b := Mosquitto(t, "max_packet_size 131072")
	conf, err := os.ReadFile(b.conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(conf), "\nmax_packet_size 131072\n") {
		t.Fatalf("extra configuration line missing:\n%s", conf)
	}
	if !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") || b.Port() < 20000 || !accepts(b.Addr()) {
		t.Fatalf("broker %s does not accept connections", b.URL())
	}
	b.Stop()
	if accepts(b.Addr()) {
		t.Fatal("connection accepted after Stop")
	}
	b.Restart()
	if !accepts(b.Addr()) {
		t.Fatal("no connection after Restart")
	}
	b.Kill()
	if accepts(b.Addr()) {
		t.Fatal("connection accepted after Kill")
	}
	b.Restart()
	if !accepts(b.Addr()) {
		t.Fatal("no connection after the second Restart")
	}
	if !strings.Contains(b.Log(), "mosquitto") {
		t.Errorf("no log captured: %q", b.Log())
	}
}
