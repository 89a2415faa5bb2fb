package testenv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a broker may take to accept connections;
// stopTimeout how long it may take to exit after SIGTERM.
const (
	startTimeout = 10 * time.Second
	stopTimeout  = 10 * time.Second
)

// Broker is a mosquitto process serving MQTT on a loopback port that stays
// the same across restarts. Its methods must be called from the test's
// goroutine.
type Broker struct {
	t    testing.TB
	bin  string
	conf string
	port int

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	out    *syncBuffer   // mosquitto's log, for failure messages
}

// Mosquitto starts Debian's mosquitto on a free port of 127.0.0.1 and
// returns once it accepts connections. The configuration allows anonymous
// clients and keeps nothing on disk; extraConfig lines are appended to it
// (for example "max_packet_size 131072"). The broker is killed when the
// test ends. The test is skipped when mosquitto is not installed.
func Mosquitto(t testing.TB, extraConfig ...string) *Broker {
	t.Helper()
	bin := mosquittoBinary()
	if bin == "" {
		t.Skipf("skipping %s: it needs a real MQTT broker, and mosquitto is not installed (scripts/deps.sh test installs it)", t.Name())
	}
	b := &Broker{t: t, bin: bin, conf: filepath.Join(t.TempDir(), "mosquitto.conf")}
	t.Cleanup(b.kill)
	// The port is free when drawn but may be taken before mosquitto binds
	// it (tests run in parallel): draw another then.
	var err error
	for range 5 {
		b.port = FreePort(t)
		if err = b.writeConfig(extraConfig); err != nil {
			t.Fatalf("testenv: writing the mosquitto configuration: %v", err)
		}
		if err = b.start(); err == nil {
			return b
		}
	}
	t.Fatalf("testenv: %v", err)
	return nil
}

func mosquittoBinary() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	// Debian installs it in /usr/sbin, which is not on every PATH.
	if fi, err := os.Stat("/usr/sbin/mosquitto"); err == nil && !fi.IsDir() {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

func (b *Broker) writeConfig(extra []string) error {
	conf := []string{
		fmt.Sprintf("listener %d 127.0.0.1", b.port),
		"allow_anonymous true",
		"persistence false",
		"log_dest stderr",
	}
	if os.Geteuid() == 0 && !slices.ContainsFunc(extra, func(l string) bool { return strings.HasPrefix(l, "user ") }) {
		// Started as root (CI containers), mosquitto switches to the user
		// mosquitto, which cannot write the test's temporary directory:
		// "persistence true" then saves nothing (an error in its log only)
		// and a restart forgets every session; nor can it read files a
		// test writes there (certificates, password files). Stay root.
		conf = append(conf, "user root")
	}
	conf = append(conf, extra...)
	return os.WriteFile(b.conf, []byte(strings.Join(conf, "\n")+"\n"), 0o644)
}

// start runs mosquitto and waits until its port accepts a connection, or
// returns why it did not (the process exited, or the wait timed out).
func (b *Broker) start() error {
	b.out = &syncBuffer{}
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = b.out, b.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", b.bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.cmd, b.exited = cmd, exited
	deadline := time.Now().Add(startTimeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		select {
		case <-exited:
			b.cmd = nil
			return fmt.Errorf("mosquitto on port %d exited at start (%v):\n%s", b.port, cmd.ProcessState, b.out)
		default:
		}
		if c, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			b.kill()
			return fmt.Errorf("mosquitto did not accept connections on port %d within %v:\n%s", b.port, startTimeout, b.out)
		}
		time.Sleep(pause)
	}
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// URL is the broker's address as MQTT clients take it: tcp://host:port.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Port is the broker's TCP port.
func (b *Broker) Port() int { return b.port }

// Log is what mosquitto has printed since it was last started.
func (b *Broker) Log() string {
	if b.out == nil {
		return ""
	}
	return b.out.String()
}

// Stop shuts the broker down as an operator would (SIGTERM: mosquitto
// closes its clients' connections) and waits until it has exited. It does
// nothing when the broker is not running.
func (b *Broker) Stop() {
	b.t.Helper()
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
		b.cmd = nil
	case <-time.After(stopTimeout):
		b.kill()
		b.t.Fatalf("testenv: mosquitto on port %d did not exit within %v of SIGTERM (killed):\n%s", b.port, stopTimeout, b.out)
	}
}

// Kill ends the broker at once, as a crash or a power cut would (SIGKILL:
// clients see their connections drop without a goodbye), and waits until
// it has exited.
func (b *Broker) Kill() { b.kill() }

func (b *Broker) kill() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Kill()
	<-b.exited
	b.cmd = nil
}

// Restart starts the broker again on the same port, after Stop or Kill (a
// running broker is stopped first), and returns once it accepts
// connections: the end of an outage.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	// The old listening socket can linger for a moment after the process
	// is gone; mosquitto then fails to bind. Try again until startTimeout.
	deadline := time.Now().Add(startTimeout)
	for {
		err := b.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("testenv: restarting: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FreePort returns a TCP port of 127.0.0.1 that is free now, for a server
// the test starts afterwards. Ports are drawn from 20000-31999, below
// Linux's ephemeral range (32768-60999): a port the kernel hands out for
// ":0" may also become the source port of another test's outgoing
// connection before our server binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("testenv: no free TCP port in 20000-31999 on 127.0.0.1")
	return 0
}

// syncBuffer is a bytes.Buffer that a process's output and the test may
// use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
