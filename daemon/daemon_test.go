package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/internal/sampleline"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// fixture is a bank built from a sample line with the shared MobileNetV2,
// and a folder camera.
type fixture struct {
	dir, line, in, db string
	model             string // the shared tf2 MobileNetV2
	fed               int    // files written so far: names stay unique
}

func newFixture(t *testing.T) *fixture {
	if testing.Short() {
		t.Skip("skipping the daemon integration tests in -short mode")
	}
	s := &fixture{dir: t.TempDir(), model: testenv.SharedFile(t, "models/mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite")}
	mf, err := model.Load(s.model)
	if err != nil {
		t.Fatal(err)
	}
	s.line, s.in, s.db = filepath.Join(s.dir, "line"), filepath.Join(s.dir, "in"), filepath.Join(s.dir, "banks.db")
	os.MkdirAll(s.in, 0o755)
	if err := sampleline.Write(s.line, sampleline.Counts{Train: 10, TestGood: 3, PerDefect: 2}, 3); err != nil {
		t.Fatal(err)
	}
	imgs, _ := patchcore.ImageFiles(filepath.Join(s.line, "train/good"))
	st, err := bank.OpenStore(s.db, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var last *bank.Bank
	for seed := uint64(1); seed <= 2; seed++ { // two versions, for activation
		b, _, err := patchcore.Build(context.Background(), mf, imgs, patchcore.BuildOptions{Threads: 2, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		v, err := st.Put(b)
		if err != nil {
			t.Fatal(err)
		}
		if seed == 1 {
			st.Activate(v)
		}
		last = b
	}
	// Version 3 claims another model: it must be refused while serving.
	meta := last.Meta
	meta.Model.SHA256 = strings.Repeat("0", 64)
	other, err := bank.New(meta, append([]int8(nil), last.Vectors...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(other); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *fixture) config(t *testing.T, broker string, sets ...string) *config.Loaded {
	base := []string{"station.id=t1", "camera.source=dir:" + s.in, "camera.folder.settle=50ms", "camera.folder.poll=20ms",
		"model.path=" + s.model, "bank.db=" + s.db, "mqtt.broker=" + broker, fmt.Sprintf("http.listen=127.0.0.1:%d", testenv.FreePort(t)), "bank.allow_unsigned=true",
		"maps.policy=always", "model.threads=2"}
	l, err := config.Load("", append(base, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// feed copies test images into the camera folder, one every gap.
func (s *fixture) feed(t *testing.T, n int, gap time.Duration) []string {
	var files []string
	for _, d := range []string{"good", "hole", "scratch", "stain"} {
		fs, _ := patchcore.ImageFiles(filepath.Join(s.line, "test", d))
		files = append(files, fs...)
	}
	var kinds []string
	for i := 0; i < n; i++ {
		f := files[i%len(files)]
		b, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(s.in, fmt.Sprintf("%04d.png", s.fed)), b, 0o644)
		s.fed++
		kinds = append(kinds, filepath.Base(filepath.Dir(f)))
		time.Sleep(gap)
	}
	return kinds
}

// recorder subscribes to everything under the station.
type recorder struct {
	mu   sync.Mutex
	msgs map[string][][]byte
	ret  map[string]bool
	sub  *mqtt.Subscriber
}

func record(t *testing.T, broker string) *recorder {
	r := &recorder{msgs: map[string][][]byte{}, ret: map[string]bool{}}
	sub, err := mqtt.Subscribe(broker, fmt.Sprintf("rec-%d", time.Now().UnixNano()), "linesight/t1/#", nil, "", "", func(topic string, p []byte, retained bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.msgs[topic] = append(r.msgs[topic], append([]byte(nil), p...))
		r.ret[topic] = retained
	})
	if err != nil {
		t.Fatal(err)
	}
	r.sub = sub
	t.Cleanup(sub.Close)
	return r
}

func (r *recorder) results() []mqtt.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resultsLocked()
}

// resultsLocked is results with r.mu held.
func (r *recorder) resultsLocked() []mqtt.Result {
	var out []mqtt.Result
	for _, p := range r.msgs["linesight/t1/result"] {
		var x mqtt.Result
		json.Unmarshal(p, &x)
		out = append(out, x)
	}
	return out
}

func (r *recorder) waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	var st []string
	for _, p := range r.msgs["linesight/t1/status"] {
		st = append(st, string(p[:min(len(p), 60)]))
	}
	r.mu.Unlock()
	t.Fatalf("timed out waiting for %s (status messages seen: %q)", what, st)
}

func run(t *testing.T, cfg *config.Loaded) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestResultsRetainedTopicsAndCommands(t *testing.T) {
	s := newFixture(t)
	mq := testenv.Mosquitto(t)
	rec := record(t, mq.URL())
	cfg := s.config(t, mq.URL())
	stop := run(t, cfg)
	rec.waitFor(t, "online status", 10*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		ps := rec.msgs["linesight/t1/status"]
		return len(ps) > 0 && strings.Contains(string(ps[len(ps)-1]), `"state":"online"`)
	})
	kinds := s.feed(t, 6, 50*time.Millisecond)
	rec.waitFor(t, "6 results", 30*time.Second, func() bool { return len(rec.results()) == 6 })
	for i, r := range rec.results() {
		if r.Seq != uint64(i+1) || r.Station != "t1" || (r.Verdict != "PASS" && r.Verdict != "FAIL") || r.BankVersion != 1 || r.Threshold <= 0 {
			t.Errorf("result %d: %+v", i, r)
		}
		if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil {
			t.Errorf("result %d time %q: %v", i, r.Time, err)
		}
		// A map is skipped (and counted as a drop) when the encoder is
		// still busy with two earlier ones: under -race on a loaded CI
		// machine that happens to a frame 50 ms behind another. The
		// first frame's map is never skipped.
		if r.Latency.Total <= 0 || r.Latency.Backbone <= 0 || (i == 0 && r.Map == nil) || r.Frame != [2]int{256, 256} {
			t.Errorf("result %d: latency %+v map %v frame %v", i, r.Latency, r.Map, r.Frame)
		}
		if (kinds[i] == "good") != (r.Verdict == "PASS") {
			t.Logf("result %d (%s): %s score %.3f threshold %.3f", i, kinds[i], r.Verdict, r.Score, r.Threshold)
		}
	}
	// Every map a result names is published (on the topic it names).
	rec.waitFor(t, "the maps the results name", 10*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, r := range rec.resultsLocked() {
			if r.Map != nil && len(rec.msgs[r.Map.Topic]) != 1 {
				return false
			}
		}
		return true
	})
	rec.mu.Lock()
	if m := rec.msgs["linesight/t1/map/1"]; len(m) != 1 || !strings.HasPrefix(string(m[0]), "\x89PNG") {
		t.Errorf("map/1 is not a PNG")
	}
	rec.mu.Unlock()
	// Verdict and score are latest values, published once the result they
	// come from is with the broker (not through the outbox): wait for the
	// last result's, or a late subscriber could get the previous ones
	// retained and then these live.
	last := rec.results()[5]
	lastScore := strconv.FormatFloat(last.Score, 'g', 6, 64)
	rec.waitFor(t, "the last result's verdict and score", 10*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		v, sc := rec.msgs["linesight/t1/verdict"], rec.msgs["linesight/t1/score"]
		return len(v) > 0 && len(sc) > 0 && string(v[len(v)-1]) == last.Verdict && string(sc[len(sc)-1]) == lastScore
	})
	// A late subscriber (a PLC after a restart) gets the retained values.
	late := record(t, mq.URL())
	late.waitFor(t, "retained verdict, score and status", 5*time.Second, func() bool {
		late.mu.Lock()
		defer late.mu.Unlock()
		v, sc := late.msgs["linesight/t1/verdict"], late.msgs["linesight/t1/score"]
		return len(v) == 1 && len(sc) == 1 && late.ret["linesight/t1/verdict"] && late.ret["linesight/t1/status"]
	})
	late.mu.Lock()
	if v := string(late.msgs["linesight/t1/verdict"][0]); v != last.Verdict {
		t.Errorf("retained verdict %q, last result %s", v, last.Verdict)
	}
	if sc := string(late.msgs["linesight/t1/score"][0]); sc != lastScore {
		t.Errorf("retained score %q, last result %s", sc, lastScore)
	}
	late.mu.Unlock()

	// Commands: replies carry the id; bad ones change nothing.
	cmd := func(name, payload string) map[string]any {
		t.Helper()
		topic := "linesight/t1/cmd/" + name + "/reply"
		rec.mu.Lock()
		n := len(rec.msgs[topic])
		rec.mu.Unlock()
		if err := rec.sub.Publish("linesight/t1/cmd/"+name, 1, false, []byte(payload)); err != nil {
			t.Fatal(err)
		}
		var reply map[string]any
		rec.waitFor(t, "reply to "+name, 10*time.Second, func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.msgs[topic]) > n {
				json.Unmarshal(rec.msgs[topic][n], &reply)
				return true
			}
			return false
		})
		return reply
	}
	if r := cmd("threshold", "{not json"); r["ok"] != false || !strings.Contains(fmt.Sprint(r["error"]), "malformed") {
		t.Errorf("malformed command reply %v", r)
	}
	if r := cmd("explode", `{"id":"x1"}`); r["ok"] != false || r["id"] != "x1" || !strings.Contains(fmt.Sprint(r["error"]), "unknown command") {
		t.Errorf("unknown command reply %v", r)
	}
	if r := cmd("threshold", `{"id":"t1","set":-3}`); r["ok"] != false {
		t.Errorf("negative threshold accepted: %v", r)
	}
	if r := cmd("threshold", `{"id":"t2","set":40.5}`); r["ok"] != true || r["result"].(map[string]any)["threshold"] != 40.5 {
		t.Errorf("threshold set reply %v", r)
	}
	if r := cmd("trigger", `{"id":"g"}`); r["ok"] != false {
		t.Errorf("trigger in continuous mode: %v", r)
	}
	if r := cmd("bank/activate", `{"id":"b1","version":9}`); r["ok"] != false {
		t.Errorf("activating a missing version: %v", r)
	}
	if r := cmd("bank/activate", `{"id":"b3","version":3}`); r["ok"] != false || !strings.Contains(fmt.Sprint(r["error"]), "do not match") {
		t.Errorf("a bank of another model was not refused: %v", r)
	}
	if r := cmd("bank/activate", `{"id":"b2","version":2}`); r["ok"] != true {
		t.Errorf("bank/activate 2: %v", r)
	}
	s.feed(t, 1, 0)
	rec.waitFor(t, "a result from bank 2 with the override", 30*time.Second, func() bool {
		rs := rec.results()
		return len(rs) == 7 && rs[6].BankVersion == 2 && rs[6].Threshold == 40.5 && rs[6].Verdict == "PASS"
	})
	if r := cmd("bank/rollback", `{"id":"r"}`); r["ok"] != true || r["result"].(map[string]any)["version"] != 1.0 {
		t.Errorf("bank/rollback: %v", r)
	}
	// Health and metrics over HTTP.
	resp, err := http.Get("http://" + cfg.HTTP.Listen + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var hz map[string]any
	json.NewDecoder(resp.Body).Decode(&hz)
	resp.Body.Close()
	if resp.StatusCode != 200 || hz["ok"] != true || hz["broker_connected"] != true {
		t.Errorf("healthz %d %v", resp.StatusCode, hz)
	}
	// Results, and the audit entries of the bank commands, go through
	// the outbox; one counts there until the broker completed it (QoS 2
	// PUBCOMP), a moment after the command's reply: wait for that.
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err = http.Get("http://" + cfg.HTTP.Listen + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "\nlinesight_outbox_results 0\n") || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{"linesight_frames_total{verdict=", "linesight_stage_seconds_bucket{stage=\"backbone\"", "linesight_outbox_results 0", `linesight_outbox_dropped_total{reason="full"} 0`, `linesight_outbox_dropped_total{reason="write"} 0`, `linesight_outbox_dropped_total{reason="damaged"} 0`, "linesight_mqtt_session_lost_total 0", "linesight_mqtt_resent_total 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The broker goes away: health says so with 503.
	mq.Stop()
	rec.waitFor(t, "healthz 503 without the broker", 10*time.Second, func() bool {
		r, err := http.Get("http://" + cfg.HTTP.Listen + "/healthz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 503
	})
	rec.mu.Lock()
	seen := len(rec.msgs["linesight/t1/status"])
	rec.mu.Unlock()
	mq.Restart()
	rec.waitFor(t, "online again after the broker came back", 30*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		ps := rec.msgs["linesight/t1/status"]
		return len(ps) > seen && strings.Contains(string(ps[len(ps)-1]), `"state":"online"`)
	})
	stop()
	rec.waitFor(t, "offline status on shutdown", 5*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		ps := rec.msgs["linesight/t1/status"]
		return len(ps) > 0 && strings.Contains(string(ps[len(ps)-1]), `"state":"offline"`)
	})
}

func TestBrokerOutageLosesNoResult(t *testing.T) {
	s := newFixture(t)
	mq := testenv.Mosquitto(t)
	cfg := s.config(t, mq.URL(), "maps.policy=fail")
	run(t, cfg)
	rec := record(t, mq.URL())
	s.feed(t, 3, 30*time.Millisecond)
	rec.waitFor(t, "3 results", 30*time.Second, func() bool { return len(rec.results()) == 3 })
	// The broker goes away while frames keep coming.
	mq.Stop()
	rec.sub.Close()
	s.feed(t, 12, 100*time.Millisecond)
	time.Sleep(2 * time.Second)
	mq.Restart()
	rec2 := record(t, mq.URL())
	rec2.waitFor(t, "the 12 results from the outage", 60*time.Second, func() bool { return len(rec2.results()) >= 12 })
	rs := rec2.results()
	for i, r := range rs[:12] {
		if r.Seq != uint64(4+i) {
			t.Fatalf("after the outage result %d has seq %d, want %d (in order, none lost)", i, r.Seq, 4+i)
		}
	}
}

func TestLastWillOnKilledDaemon(t *testing.T) {
	s := newFixture(t)
	mq := testenv.Mosquitto(t)
	bin := filepath.Join(t.TempDir(), "linesight")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/linesight").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rec := record(t, mq.URL())
	args := []string{"serve"}
	for _, kv := range []string{"station.id=t1", "camera.source=dir:" + s.in, "model.path=" + s.model, "bank.db=" + s.db, "mqtt.broker=" + mq.URL(), "http.listen="} {
		args = append(args, "--set", kv)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	rec.waitFor(t, "online", 20*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		ps := rec.msgs["linesight/t1/status"]
		return len(ps) > 0 && strings.Contains(string(ps[len(ps)-1]), `"online"`)
	})
	// SIGHUP (a closed terminal, `systemctl kill -s HUP`) must not end the
	// station: Go's default for it is to exit with status 129, no drain.
	cmd.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-exited:
		t.Fatalf("the station ended on SIGHUP: %v", err)
	case <-time.After(time.Second):
	}
	cmd.Process.Kill() // no chance to say goodbye: the broker sends the will
	<-exited
	rec.waitFor(t, "the last will (offline)", 20*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		ps := rec.msgs["linesight/t1/status"]
		return len(ps) > 0 && strings.Contains(string(ps[len(ps)-1]), `"state":"offline"`)
	})
}

// TestTLSAndPassword: a mosquitto that only takes TLS with a password; the
// daemon connects with the test CA and a password file.
func TestTLSAndPassword(t *testing.T) {
	s := newFixture(t)
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("skipping: openssl is not installed")
	}
	pw, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("skipping: mosquitto_passwd is not installed")
	}
	dir := t.TempDir()
	sh := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA", "-keyout", p("ca.key"), "-out", p("ca.pem"))
	sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", p("srv.key"), "-out", p("srv.csr"))
	os.WriteFile(p("ext.cnf"), []byte("subjectAltName=IP:127.0.0.1\n"), 0o644)
	sh("openssl", "x509", "-req", "-in", p("srv.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", p("ext.cnf"), "-out", p("srv.pem"))
	sh(pw, "-c", "-b", p("passwd"), "station", "s3cret")
	os.WriteFile(p("password"), []byte("s3cret\n"), 0o600)

	// (testenv keeps a mosquitto started as root running as root, so it
	// can read these files in the test's private temp dir.)
	conf := []string{"cafile " + p("ca.pem"), "certfile " + p("srv.pem"), "keyfile " + p("srv.key"),
		"allow_anonymous false", "password_file " + p("passwd")}
	mq := testenv.Mosquitto(t, conf...)
	url := fmt.Sprintf("ssl://127.0.0.1:%d", mq.Port())

	caPEM, _ := os.ReadFile(p("ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	var mu sync.Mutex
	var results int
	sub, err := mqtt.Subscribe(url, "tls-rec", "linesight/t1/result", &tls.Config{RootCAs: pool}, "station", "s3cret", func(string, []byte, bool) {
		mu.Lock()
		results++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	run(t, s.config(t, url, "mqtt.tls.ca="+p("ca.pem"), "mqtt.username=station", "mqtt.password_file="+p("password")))
	s.feed(t, 2, 50*time.Millisecond)
	testenv.Eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return results == 2
	}, "two results over TLS with a password")
}

// TestSystemdNotifyAndFreeBankDatabase: READY after loading, WATCHDOG
// pings, STOPPING on shutdown, through a real NOTIFY_SOCKET; and the bank
// database stays free for the CLI while the daemon serves.
func TestSystemdNotifyAndFreeBankDatabase(t *testing.T) {
	s := newFixture(t)
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "400000") // ping every 200ms
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 512)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	stop := run(t, s.config(t, "embedded", fmt.Sprintf("mqtt.embedded_listen=127.0.0.1:%d", testenv.FreePort(t))))
	expect := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.Contains(m, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s on NOTIFY_SOCKET", want)
			}
		}
	}
	expect("READY=1")
	expect("WATCHDOG=1")
	// `linesight bank ...` while serving: the database is not locked.
	t0 := time.Now()
	st, err := bank.OpenStore(s.db, false)
	if err != nil {
		t.Fatalf("bank database locked while serving: %v", err)
	}
	st.Close()
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Errorf("opening the bank database took %v while serving", d)
	}
	stop()
	expect("STOPPING=1")
}
