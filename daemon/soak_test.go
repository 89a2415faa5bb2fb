package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// TestSoak runs the station binary for LINESIGHT_SOAK (e.g. 30m; skipped
// when unset) at its maximum frame rate while its link to the broker
// flaps: every 2 minutes a proxy between the station and mosquitto cuts
// every connection and refuses new ones for 20 s. A recorder connected to
// mosquitto directly sees every result. It reports the station's resident
// memory after a 5-minute warm-up and at the end, its goroutines, and the
// results lost and repeated, and fails on any loss, any repeat (results
// go at QoS 2, exactly once, on a session the broker keeps), a seq that
// came with two different results, goroutines growing, or resident memory
// growing by 5% or more after the warm-up. LINESIGHT_SOAK_FPS caps the
// frame rate (camera.max_fps): each frame is three QoS 2 messages (result,
// verdict, score), each handed over and released in a disk transaction of
// its own, and a station whose frame rate outruns that backlogs its
// outbox (results queued at the stop count as lost here).
func TestSoak(t *testing.T) {
	total, err := time.ParseDuration(os.Getenv("LINESIGHT_SOAK"))
	if err != nil {
		t.Skip("skipping the soak: set LINESIGHT_SOAK to its duration (e.g. 30m)")
	}
	// Shorter runs (a quick check of the test itself) flap faster.
	period := min(2*time.Minute, total/4)
	down := min(20*time.Second, period/3)
	warm := min(5*time.Minute, total/3)
	s := newFixture(t)
	mq := testenv.Mosquitto(t)
	px := newFlakyProxy(t, strings.TrimPrefix(mq.URL(), "tcp://"))

	var mu sync.Mutex
	seen := map[uint64]int{}
	first := map[uint64]string{} // the payload first received for each seq
	differ := 0
	sub, err := mqtt.Subscribe(mq.URL(), "soak-recorder", "linesight/t1/result", nil, "", "", func(_ string, p []byte, _ bool) {
		var r mqtt.Result
		if json.Unmarshal(p, &r) == nil {
			mu.Lock()
			if f, ok := first[r.Seq]; ok && f != string(p) {
				differ++
			} else if !ok {
				first[r.Seq] = string(p)
			}
			seen[r.Seq]++
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	bin := filepath.Join(t.TempDir(), "linesight")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/linesight").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	img, _ := patchcore.ImageFiles(filepath.Join(s.line, "test/good"))
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	args := []string{"serve"}
	for _, kv := range []string{"station.id=t1", "camera.source=" + img[0], "model.path=" + s.model, "bank.db=" + s.db,
		"mqtt.broker=tcp://" + px.addr, "http.listen=" + listen, "maps.policy=fail", "model.threads=2", "log.level=warn"} {
		args = append(args, "--set", kv)
	}
	fpsCap := os.Getenv("LINESIGHT_SOAK_FPS")
	if fpsCap != "" {
		args = append(args, "--set", "camera.max_fps="+fpsCap)
	}
	cmd := exec.Command(bin, args...)
	logf, _ := os.Create(filepath.Join(t.TempDir(), "station.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	t0 := time.Now()
	var rssWarm, rssEnd, rssMax int64
	var gorWarm, gorEnd float64
	cuts := 0
	for next := t0.Add(period); time.Since(t0) < total; {
		time.Sleep(time.Second)
		if rss := vmRSS(t, cmd.Process.Pid); rss > rssMax {
			rssMax = rss
		}
		// Both measurements with the link up a while (paho runs a few
		// goroutines per connection).
		if rssWarm == 0 && time.Since(t0) >= warm && px.upFor() >= down {
			rssWarm, gorWarm = vmRSS(t, cmd.Process.Pid), scrape(t, listen, "go_goroutines")
		}
		if time.Now().After(next) && time.Until(t0.Add(total)) > down+30*time.Second {
			px.cut(down)
			cuts++
			next = next.Add(period)
		}
	}
	// Measured with the link up for a while, as at the warm-up.
	rssEnd, gorEnd = vmRSS(t, cmd.Process.Pid), scrape(t, listen, "go_goroutines")
	frames := scrape(t, listen, "linesight_frames_total{")
	backlog := scrape(t, listen, "linesight_outbox_results")
	if gorEnd > gorWarm+5 {
		// Go prints every goroutine's stack on SIGQUIT: show where they are.
		cmd.Process.Signal(syscall.SIGQUIT)
		cmd.Wait()
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("goroutines grew from %.0f to %.0f; the station's stacks:\n%s", gorWarm, gorEnd, b)
	}

	// A graceful stop drains the outbox; then every result must be there.
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Errorf("station exit: %v", err)
	}
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	var lo, hi uint64 = ^uint64(0), 0
	dups := 0
	for q, n := range seen {
		lo, hi = min(lo, q), max(hi, q)
		dups += n - 1
	}
	// Gaps, and results inspected (counted before the stop) that never came.
	lost := int(hi-lo+1) - len(seen) + max(0, int(frames)-int(hi-lo+1))
	growth := 100 * float64(rssEnd-rssWarm) / float64(rssWarm)
	if fpsCap != "" {
		t.Logf("frame rate capped at %s/s (LINESIGHT_SOAK_FPS)", fpsCap)
	}
	t.Logf("soak %v with %d broker cuts of %v: %.0f frames inspected (%.1f/s), %d results received (seq %d..%d), %d lost, %d repeated (identical), %.0f queued at the stop; RSS %.1f MiB after %v warm-up, %.1f MiB at the end (%+.1f%%), peak %.1f MiB; goroutines %.0f -> %.0f",
		total, cuts, down, frames, frames/total.Seconds(), len(seen), lo, hi, lost, dups, backlog,
		float64(rssWarm)/(1<<20), warm, float64(rssEnd)/(1<<20), growth, float64(rssMax)/(1<<20), gorWarm, gorEnd)
	// Results go at QoS 2 on a persistent session, and the broker here
	// keeps it (only the link is cut): a result in flight at a cut is
	// completed once, with its packet id, after the reconnection. The
	// recorder's own link is never cut, so its QoS 1 adds no repeats.
	if lost != 0 || dups != 0 || differ != 0 {
		t.Errorf("%d results lost, %d repeated, %d seqs received with different results", lost, dups, differ)
	}
	if growth >= 5 {
		t.Errorf("resident memory grew %.1f%% after the warm-up", growth)
	}
}

// vmRSS is the resident memory of process pid in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("the station is gone: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/pid/status")
	return 0
}

// scrape sums the series of the station's /metrics whose names (with
// labels) start with prefix.
func scrape(t *testing.T, listen, prefix string) float64 {
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], prefix) {
			v, _ := strconv.ParseFloat(f[1], 64)
			sum += v
		}
	}
	return sum
}

// flakyProxy forwards TCP connections to a broker and can cut them all
// and refuse new ones for a while, as a flapping network or broker does.
type flakyProxy struct {
	addr   string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	downTo time.Time
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			refuse := time.Now().Before(p.downTo)
			p.mu.Unlock()
			if refuse {
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	return p
}

// upFor is how long the proxy has been forwarding since its last cut.
func (p *flakyProxy) upFor() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Since(p.downTo)
}

// cut closes every open connection and refuses new ones for d.
func (p *flakyProxy) cut(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.downTo = time.Now().Add(d)
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}
