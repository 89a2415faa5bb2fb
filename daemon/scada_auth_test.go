package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/internal/trust"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/mqtt/sparkplug"
	"github.com/linesight/linesight/patchcore"
)

// scadaStation is a station with the fixture's banks, its two recipes and
// an edge node that never connects: enough to run Sparkplug writes and
// recipe selections without a broker.
func scadaStation(t *testing.T, f *fixture, sets ...string) *station {
	t.Helper()
	cfg := f.scadaConfig(t, "tcp://127.0.0.1:1", sets...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	mf, err := model.Load(cfg.Model.Path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openBanks(&cfg.Config, mf, 2, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	cc, _ := cfg.CameraConfig()
	cam, err := camera.New(cc, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s := &station{cfg: &cfg.Config, log: quiet, model: mf, banks: b, cam: cam, metrics: newMetrics(), nonces: trust.NewNonces(nonceWindow, 1000)}
	s.client = mqtt.New(mqtt.Options{Broker: "tcp://127.0.0.1:1", ClientID: "never", Prefix: "linesight", Station: "t1", Log: quiet})
	s.recipes = openRecipes(s)
	s.scada = newSCADA(s)
	if s.scada.spark, err = newSpark(s, "tcp://127.0.0.1:1", "", nil); err != nil {
		t.Fatal(err)
	}
	return s
}

func auditTail(t *testing.T, f *fixture, n int) []bank.AuditEntry {
	t.Helper()
	st, err := bank.OpenStore(f.db, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.AuditLog(n)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestSparkplugWritesAreAuthorized: a recipe or threshold written from
// SCADA changes pass/fail, so it passes the station's command path: on a
// station that takes only signed changes, unsigned writes are refused (and
// audited) and change nothing, a write carrying a command signed by a
// trusted key is taken once (a replay is refused), and the unsigned
// selection by number is taken only where the plant opted in
// (recipes.plc_select), audited with who asked. Then it prints how long a
// switch between loaded recipes takes.
func TestSparkplugWritesAreAuthorized(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	keyID, err := trust.Generate(dir, "scada")
	if err != nil {
		t.Fatal(err)
	}
	s := scadaStation(t, f, "bank.allow_unsigned=false", "recipes.plc_select=false", "bank.trusted_keys="+filepath.Join(dir, "signing.pub"))
	if s.keys, err = trust.LoadKeys(filepath.Join(dir, "signing.pub")); err != nil {
		t.Fatal(err)
	}
	sp := s.scada.spark
	active := func() string {
		if rc := s.recipes.active(); rc != nil {
			return rc.Name
		}
		return ""
	}
	if active() != "bottle-a" {
		t.Fatalf("recipe at start %q, want bottle-a (bank 1 active)", active())
	}
	th0, _ := s.banks.pending().Threshold()

	for _, w := range []sparkplug.Write{
		{Name: spRecipeNo, Type: sparkplug.DataType_Int32, Value: int64(2)},
		{Name: spRecipe, Type: sparkplug.DataType_String, Value: "bottle-b"},
		{Name: spThreshold, Type: sparkplug.DataType_Double, Value: 1.5 * th0},
	} {
		err := sp.write("t1", w)
		if err == nil || !errors.Is(err, trust.ErrUnsigned) {
			t.Errorf("unsigned write %s = %v: %v, want refused as unsigned", w.Name, w.Value, err)
		}
		if e := auditTail(t, f, 1)[0]; e.Result != bank.AuditRefused || e.Action != "command" {
			t.Errorf("write %s: audit %+v, want a refused command", w.Name, e)
		}
	}
	if err := s.selectByPLC(2, "topic"); err == nil || !strings.Contains(err.Error(), "plc_select") {
		t.Errorf("unsigned selection by number with plc_select off: %v", err)
	}
	if e := auditTail(t, f, 1)[0]; e.Result != bank.AuditRefused || e.Action != "recipe" || e.Who != "plc:topic" {
		t.Errorf("refused selection by number: audit %+v", e)
	}
	if th, _ := s.banks.pending().Threshold(); active() != "bottle-a" || th != th0 {
		t.Fatalf("refused writes changed the station: recipe %q threshold %v (was %v)", active(), th, th0)
	}

	// Signed by the trusted key: taken, once.
	signer, err := trust.LoadSigner(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	sc := signer.SignCommand("t1", mqtt.CmdRecipeSelect, []byte(`{"number":2}`), time.Now())
	env, _ := json.Marshal(map[string]any{"name": mqtt.CmdRecipeSelect, "signed": sc})
	signed := sparkplug.Write{Name: spSigned, Type: sparkplug.DataType_String, Value: string(env)}
	if err := sp.write("t1", signed); err != nil {
		t.Fatalf("signed recipe/select: %v", err)
	}
	if active() != "bottle-b" {
		t.Errorf("after the signed selection: %q, want bottle-b", active())
	}
	es := auditTail(t, f, 2)
	if es[0].Action != "recipe" || es[0].Who != "key:"+keyID || es[0].Version != 2 || es[1].Action != "command" || es[1].Result != bank.AuditOK {
		t.Errorf("signed selection audited as %+v", es)
	}
	if err := sp.write("t1", signed); !errors.Is(err, trust.ErrReplay) {
		t.Errorf("the same signed write again: %v, want a replay refusal", err)
	}

	// The plant's opt-in: the number alone, audited as the PLC's.
	s2 := scadaStation(t, f, "bank.allow_unsigned=false")
	if err := s2.scada.spark.write("t1", sparkplug.Write{Name: spRecipeNo, Type: sparkplug.DataType_Int32, Value: int64(1)}); err != nil {
		t.Fatalf("selection by number with plc_select: %v", err)
	}
	if e := auditTail(t, f, 1)[0]; e.Action != "recipe" || e.Who != "plc:sparkplug" || e.Result != bank.AuditOK || e.Version != 1 {
		t.Errorf("selection by number audited as %+v", e)
	}
	if err := s2.selectByPLC(9, "topic"); err == nil {
		t.Error("an unknown recipe number was taken")
	}

	// The switch time: 40 switches between the two loaded recipes, each
	// one store transaction (activation and audit entry) and a hand-over
	// to the pipeline; printed, not asserted (timing is the machine's).
	var d []float64
	for i := range 40 {
		rc := &s2.recipes.list[(i+1)%2]
		res, err := s2.recipes.switchTo(rc, "test")
		if err != nil || !res.Changed {
			t.Fatalf("switch %d: %+v %v", i, res, err)
		}
		s2.banks.swapIn() // what the pipeline does between frames
		d = append(d, res.SwitchMs)
	}
	slices.Sort(d)
	t.Logf("recipe switch (banks loaded; one bbolt transaction with fsync): median %.2f ms, p90 %.2f ms, max %.2f ms over %d switches",
		d[len(d)/2], d[len(d)*9/10], d[len(d)-1], len(d))
}

// TestHandshakeTimingBottle: trigger -> result_ready as the PLC sees it
// (published on plc/trigger, observed on plc/result_ready through the
// broker), on MVTec AD bottle frames (900x900 PNG, read and decoded per
// trigger) with a bank built from 20 good bottles. Printed: median and
// p99 over 60 parts, beside the inspection's own latency from the JSON
// results. Not asserted.
func TestHandshakeTimingBottle(t *testing.T) {
	heavy(t)
	bottle := testenv.SharedFile(t, "data/mvtec_ad/bottle")
	modelPath := testenv.SharedFile(t, "models/mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite")
	mf, err := model.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	train, _ := patchcore.ImageFiles(filepath.Join(bottle, "train/good"))
	b, _, err := patchcore.Build(context.Background(), mf, train[:20], patchcore.BuildOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: t.TempDir(), model: modelPath}
	f.in, f.db = filepath.Join(f.dir, "in"), filepath.Join(f.dir, "banks.db")
	os.MkdirAll(f.in, 0o755)
	st, err := bank.OpenStore(f.db, false)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := st.Put(b)
	st.Activate(v)
	st.Close()
	var test []string
	for _, d := range []string{"good", "broken_large", "contamination"} {
		fs, _ := patchcore.ImageFiles(filepath.Join(bottle, "test", d))
		test = append(test, fs...)
	}
	const parts = 60
	for i := range parts {
		data, _ := os.ReadFile(test[(i*7)%len(test)])
		os.WriteFile(filepath.Join(f.in, fmt.Sprintf("%04d.png", i)), data, 0o644)
	}
	mq := testenv.Mosquitto(t)
	type seen struct {
		topic, val string
		at         time.Time
	}
	ch := make(chan seen, 4096)
	var mu sync.Mutex
	captured, arrived := map[uint64]time.Time{}, map[uint64]time.Time{}
	sub, err := mqtt.SubscribeAll(mq.URL(), "plc-sim", []string{"linesight/t1/plc/#", "linesight/t1/result"}, nil, "", "", func(topic string, p []byte, _ bool) {
		if topic == "linesight/t1/result" {
			var r mqtt.Result
			json.Unmarshal(p, &r)
			ct, _ := time.Parse(time.RFC3339Nano, r.Time)
			mu.Lock()
			captured[r.Seq], arrived[r.Seq] = ct, time.Now()
			mu.Unlock()
			return
		}
		select {
		case ch <- seen{topic, string(p), time.Now()}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// An image sequence: read on demand per trigger, with no folder polling
	// or settling in the way (a dir: source waits for files to settle).
	cfg := f.scadaConfig(t, mq.URL(), "recipes.plc_select=false", "maps.policy=fail", "camera.source="+filepath.Join(f.in, "%04d.png"))
	cfg.Recipes.List = nil // one bank: no recipes
	run(t, cfg)
	wait := func(topic, val string, d time.Duration) time.Time {
		t.Helper()
		deadline := time.After(d)
		for {
			select {
			case m := <-ch:
				if m.topic == "linesight/t1/"+topic && (val == "" || m.val == val) {
					return m.at
				}
			case <-deadline:
				t.Fatalf("no %s = %q within %v", topic, val, d)
			}
		}
	}
	wait("plc/ready", "1", 60*time.Second)
	var lat, read, inspect, handoff []float64
	msf := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for i := 1; i <= parts; i++ {
		t0 := time.Now()
		if err := sub.Publish("linesight/t1/plc/trigger", 1, false, []byte("1")); err != nil {
			t.Fatal(err)
		}
		wait("plc/result_seq", fmt.Sprint(i), 60*time.Second)
		t1 := wait("plc/result_ready", "1", 60*time.Second)
		lat = append(lat, msf(t1.Sub(t0)))
		mu.Lock()
		if c, a := captured[uint64(i)], arrived[uint64(i)]; !c.IsZero() && !a.IsZero() {
			read, inspect, handoff = append(read, msf(c.Sub(t0))), append(inspect, msf(a.Sub(c))), append(handoff, msf(t1.Sub(a)))
		}
		mu.Unlock()
		sub.Publish("linesight/t1/plc/ack", 1, false, []byte(fmt.Sprint(i)))
		wait("plc/ready", "1", 60*time.Second)
	}
	slices.Sort(lat)
	p99 := lat[min(len(lat)-1, len(lat)*99/100)]
	t.Logf("PLC handshake on %d bottle frames: trigger -> result_ready median %.1f ms, p99 %.1f ms (min %.1f, max %.1f)",
		len(lat), lat[len(lat)/2], p99, lat[0], lat[len(lat)-1])
	t.Logf("  of which (medians): trigger -> frame read and decoded (900x900 PNG) %.1f ms; -> JSON result received %.1f ms; -> result_ready received %.1f ms",
		median(read), median(inspect), median(handoff))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}
