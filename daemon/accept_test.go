package daemon

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

func heavy(t *testing.T) {
	if testenv.Race || testing.Short() {
		t.Skip("skipping a long run under -race or -short; `make test-accept` runs it")
	}
}

// TestOutageOf60sAt10FPS: the broker is away for 60 s while a camera
// delivers up to 10 frames/s; every result arrives afterwards, in order,
// and none is lost.
func TestOutageOf60sAt10FPS(t *testing.T) {
	heavy(t)
	s := newFixture(t)
	// A broker with persistence and a recorder with a persistent session,
	// as a plant sets up a PLC gateway: a result the broker acknowledged
	// just before it stopped is delivered after its restart. (Without
	// them, such a result was lost at the broker, not at the station, and
	// the test failed now and then: "first result after the outage is seq
	// 7, last before was 5".)
	mq := testenv.Mosquitto(t, "persistence true", "persistence_location "+t.TempDir()+"/")
	img, _ := patchcore.ImageFiles(filepath.Join(s.line, "test/good"))
	cfg := s.config(t, mq.URL(), "camera.source="+img[0], "camera.max_fps=10", "maps.policy=never")
	rec := &recorder{msgs: map[string][][]byte{}, ret: map[string]bool{}}
	sub, err := mqtt.SubscribeSession(mq.URL(), "outage-recorder", "linesight/t1/result", nil, "", "", func(topic string, p []byte, retained bool) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.msgs[topic] = append(rec.msgs[topic], append([]byte(nil), p...))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	run(t, cfg)
	rec.waitFor(t, "first results", 30*time.Second, func() bool { return len(rec.results()) >= 5 })
	mq.Stop()
	t0 := time.Now()
	lastBefore := rec.results()[4].Seq
	time.Sleep(60 * time.Second)
	mq.Restart()
	outage := time.Since(t0)
	// Wait until results caught up with the live ones again.
	var rs []mqtt.Result
	rec.waitFor(t, "the outage's results", 120*time.Second, func() bool {
		rs = rec.results()
		return len(rs) > 0 && rs[len(rs)-1].Seq > lastBefore+uint64(outage.Seconds()*5) && time.Since(t0) > outage+5*time.Second
	})
	// The station delivers at QoS 2 (exactly once, the broker keeps its
	// session), but the recorder subscribes at QoS 1: a result the broker
	// was sending it as it stopped comes again after the restart; drop
	// such repeats as a PLC would.
	repeats := 0
	rs = slices.CompactFunc(rs, func(a, b mqtt.Result) bool {
		if a.Seq == b.Seq {
			repeats++
			return true
		}
		return false
	})
	for i := 1; i < len(rs); i++ {
		if rs[i].Seq != rs[i-1].Seq+1 {
			t.Fatalf("results jump from seq %d to %d: lost or out of order", rs[i-1].Seq, rs[i].Seq)
		}
	}
	if rs[0].Seq != 1 {
		t.Fatalf("the first result is seq %d", rs[0].Seq)
	}
	var during int
	for _, r := range rs {
		ts, _ := time.Parse(time.RFC3339Nano, r.Time)
		if ts.After(t0) && ts.Before(t0.Add(outage)) {
			during++
		}
	}
	t.Logf("broker away for %.1fs: %d results captured during the outage (%.1f frames/s), all delivered in order afterwards (seq %d..%d, %d repeated)",
		outage.Seconds(), during, float64(during)/outage.Seconds(), rs[0].Seq, rs[len(rs)-1].Seq, repeats)
	// The frame rate is reported, not asserted: it depends on the machine
	// and its load (make test-accept runs packages one at a time for it).
}

// TestBottleEndToEnd: the shared bottle test images through a folder
// camera and MQTT; the image AUROC of the published scores equals the one
// `linesight eval` computes for the same bank.
func TestBottleEndToEnd(t *testing.T) {
	heavy(t)
	bottle := testenv.SharedFile(t, "data/mvtec_ad/bottle")
	modelPath := testenv.SharedFile(t, "models/mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite")
	mf, err := model.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	train, _ := patchcore.ImageFiles(filepath.Join(bottle, "train/good"))
	b, _, err := patchcore.Build(context.Background(), mf, train, patchcore.BuildOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	s := &fixture{dir: t.TempDir(), model: modelPath}
	s.in, s.db = filepath.Join(s.dir, "in"), filepath.Join(s.dir, "banks.db")
	os.MkdirAll(s.in, 0o755)
	st, err := bank.OpenStore(s.db, false)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := st.Put(b)
	st.Activate(v)
	st.Close()

	d, err := patchcore.Open(b, mf, patchcore.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := patchcore.Evaluate(context.Background(), d, bottle, patchcore.EvalOptions{})
	d.Close()
	if err != nil {
		t.Fatal(err)
	}

	mq := testenv.Mosquitto(t)
	rec := record(t, mq.URL())
	run(t, s.config(t, mq.URL(), "maps.policy=fail"))
	var labels []bool
	for _, im := range ev.Images {
		data, _ := os.ReadFile(im.Path)
		name := fmt.Sprintf("%03d_%s_%s", len(labels), im.Type, filepath.Base(im.Path))
		os.WriteFile(filepath.Join(s.in, name), data, 0o644)
		labels = append(labels, im.Defective)
		time.Sleep(15 * time.Millisecond) // arrival order = feeding order
	}
	rec.waitFor(t, "all results", 180*time.Second, func() bool { return len(rec.results()) == len(labels) })
	rs := rec.results()
	scores := make([]float64, len(rs))
	for i, r := range rs {
		scores[i] = r.Score
		if math.Abs(r.Score-ev.Images[i].Score) > 1e-9 {
			t.Errorf("frame %d (%s): published score %v, eval %v", i, ev.Images[i].Path, r.Score, ev.Images[i].Score)
		}
	}
	a, err := patchcore.AUROC(scores, labels)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bottle images through MQTT: image AUROC of the published scores %.4f, linesight eval %.4f", len(rs), a, ev.ImageAUROC)
	if a != ev.ImageAUROC {
		t.Errorf("AUROC from MQTT %v != eval %v", a, ev.ImageAUROC)
	}
	_ = strings.TrimSpace
}

// TestWatchdogThroughABrokerOutage: under a real NOTIFY_SOCKET, a station
// whose broker is away for 5 minutes (LINESIGHT_OUTAGE overrides) keeps
// sending WATCHDOG=1 at least every watchdog interval, while /healthz says
// the broker is down. (Before, WATCHDOG=1 stopped with the broker, and
// systemd killed the station over and over until its start limit.)
func TestWatchdogThroughABrokerOutage(t *testing.T) {
	heavy(t)
	outage := 5 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("LINESIGHT_OUTAGE")); err == nil {
		outage = d
	}
	s := newFixture(t)
	mq := testenv.Mosquitto(t)
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const interval = 2 * time.Second
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", fmt.Sprint(interval.Microseconds()))
	pings := make(chan time.Time, 10000)
	go func() {
		buf := make([]byte, 512)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			if strings.Contains(string(buf[:n]), "WATCHDOG=1") {
				pings <- time.Now()
			}
		}
	}()
	cfg := s.config(t, mq.URL(), "camera.mode=triggered")
	run(t, cfg)
	select {
	case <-pings:
	case <-time.After(30 * time.Second):
		t.Fatal("no WATCHDOG=1 with the broker up")
	}
	mq.Stop()
	t0 := time.Now()
	last, worst, n := t0, time.Duration(0), 0
	for time.Since(t0) < outage {
		select {
		case p := <-pings:
			worst = max(worst, p.Sub(last))
			last, n = p, n+1
		case <-time.After(interval):
			t.Fatalf("no WATCHDOG=1 for %v, %v into the broker outage", interval, time.Since(t0).Round(time.Second))
		}
	}
	if _, code := getHealth(cfg.HTTP.Listen); code != 503 {
		t.Errorf("/healthz %d during the outage, want 503 (broker down)", code)
	}
	mq.Restart()
	t.Logf("broker away %v: %d WATCHDOG=1, longest gap %v (interval %v)", outage, n, worst.Round(time.Millisecond), interval)
}
