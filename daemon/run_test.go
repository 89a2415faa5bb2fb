package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/internal/trust"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestRunStopsEverythingItStarted: a station on the embedded broker starts,
// serves a frame and stops, leaving no goroutine behind; so does a start
// that fails half-way (the HTTP port is taken), after the model, the bank,
// the broker, the outbox and the MQTT client have started.
func TestRunStopsEverythingItStarted(t *testing.T) {
	s := newFixture(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := s.config(t, "embedded", fmt.Sprintf("mqtt.embedded_listen=127.0.0.1:%d", testenv.FreePort(t)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, quiet) }()
	s.feed(t, 1, 0)
	waitHealthy(t, cfg.HTTP.Listen)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg = s.config(t, "embedded", fmt.Sprintf("mqtt.embedded_listen=127.0.0.1:%d", testenv.FreePort(t)), "http.listen="+taken.Addr().String())
	if err := Run(context.Background(), cfg, quiet); err == nil || !strings.Contains(err.Error(), "http.listen") {
		t.Fatalf("Run with a taken HTTP port = %v, want an http.listen error", err)
	}
}

// waitHealthy waits until /healthz at addr answers 200 and has seen a frame.
func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if hz, code := getHealth(addr); code == 200 && hz["last_frame_age_s"].(float64) >= 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the station did not become healthy with a frame inspected")
}

// getHealth reads /healthz at addr: its body and status code (0 when it
// does not answer).
func getHealth(addr string) (map[string]any, int) {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	var hz map[string]any
	json.NewDecoder(resp.Body).Decode(&hz)
	return hz, resp.StatusCode
}

// image is the fixture line's first good test part.
func (s *fixture) image(t *testing.T) *rgb.Image {
	t.Helper()
	files, err := patchcore.ImageFiles(filepath.Join(s.line, "test/good"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no good test parts: %v", err)
	}
	img, err := rgb.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// commandStation is a station with its banks, camera and an MQTT client
// that never connects: enough to run commands without a broker.
func commandStation(t *testing.T, f *fixture) *station {
	t.Helper()
	cfg := f.config(t, "tcp://127.0.0.1:1")
	mf, err := model.Load(cfg.Model.Path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openBanks(&cfg.Config, mf, 2, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	cc, err := cfg.CameraConfig()
	if err != nil {
		t.Fatal(err)
	}
	cam, err := camera.New(cc, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s := &station{cfg: &cfg.Config, log: quiet, model: mf, banks: b, cam: cam, metrics: newMetrics()}
	s.client = mqtt.New(mqtt.Options{Broker: "tcp://127.0.0.1:1", ClientID: "never", Prefix: "linesight", Station: "t1", Log: quiet})
	return s
}

// TestCommandsWithoutABroker runs every command against the station's own
// handlers: replies, refusals that change nothing, and the threshold and
// bank they leave in force.
func TestCommandsWithoutABroker(t *testing.T) {
	f := newFixture(t)
	s := commandStation(t, f)
	req := func(payload string) mqtt.Request {
		var r mqtt.Request
		if err := json.Unmarshal([]byte(payload), &r); err != nil {
			t.Fatal(err)
		}
		r.Raw = json.RawMessage(payload)
		return r
	}
	bankThreshold := s.banks.current().Bank().Meta.Threshold.Value

	if _, err := s.command("explode", req(`{}`)); err == nil || !strings.Contains(err.Error(), "bank/activate, bank/append, bank/enroll, bank/push, bank/rollback, recipe/list, recipe/select, status, threshold, trigger") {
		t.Errorf("unknown command: %v", err)
	}
	if _, err := s.command(mqtt.CmdTrigger, req(`{}`)); err == nil || !strings.Contains(err.Error(), "continuous") {
		t.Errorf("trigger in continuous mode: %v", err)
	}
	for _, bad := range []string{`{"set":-3}`, `{"set":0}`, `{"set":1e10}`, `{"set":"high"}`} {
		if _, err := s.command(mqtt.CmdThreshold, req(bad)); err == nil {
			t.Errorf("threshold %s accepted", bad)
		}
	}
	if th, over := s.banks.current().Threshold(); th != bankThreshold || over {
		t.Errorf("refused thresholds changed it to %v (override %v)", th, over)
	}
	res, err := s.command(mqtt.CmdThreshold, req(`{"set":40.5}`))
	if want := (mqtt.ThresholdReply{Threshold: 40.5, BankThreshold: bankThreshold, Override: true}); err != nil || res != want {
		t.Errorf("threshold set: %+v, %v; want %+v", res, err, want)
	}
	st, _ := s.command(mqtt.CmdStatus, req(`{}`))
	if o := st.(mqtt.Status).ThresholdOverride; o == nil || *o != 40.5 {
		t.Errorf("status threshold_override %v", o)
	}

	// A bank of another model is refused; version 2 is taken, swapped in
	// between frames, and keeps the operator's threshold.
	for _, v := range []string{`{"version":3}`, `{"version":9}`, `{"version":0}`, `{}`} {
		if _, err := s.command(mqtt.CmdBankActivate, req(v)); err == nil {
			t.Errorf("bank/activate %s accepted", v)
		}
	}
	if s.banks.swapIn() {
		t.Error("a refused activation left a bank waiting")
	}
	if res, err := s.command(mqtt.CmdBankActivate, req(`{"version":2}`)); err != nil || res != (mqtt.VersionReply{Version: 2}) {
		t.Fatalf("bank/activate 2: %+v, %v", res, err)
	}
	if !s.banks.swapIn() {
		t.Fatal("no bank waiting after bank/activate")
	}
	det := s.banks.current()
	if th, _ := det.Threshold(); det.Bank().Meta.Version != 2 || th != 40.5 {
		t.Errorf("after activation: version %d, threshold %v", det.Bank().Meta.Version, th)
	}
	var r patchcore.Result
	img := f.image(t)
	if err := det.InspectInto(img, &r); err != nil {
		t.Fatal(err)
	}
	if r.Threshold != 40.5 || r.Fail != (r.Score > 40.5) {
		t.Errorf("the detector's verdict ignores the override: %+v", r)
	}
	if res, err := s.command(mqtt.CmdBankRollback, req(`{}`)); err != nil || res != (mqtt.VersionReply{Version: 1}) {
		t.Errorf("bank/rollback: %+v, %v", res, err)
	}
	if _, err := s.command(mqtt.CmdThreshold, req(`{"reset":true}`)); err != nil {
		t.Fatal(err)
	}
	s.banks.swapIn()
	if th, over := s.banks.current().Threshold(); over || s.banks.current().Bank().Meta.Version != 1 || th != bankThreshold {
		t.Errorf("after rollback and reset: version %d, threshold %v (override %v)", s.banks.current().Bank().Meta.Version, th, over)
	}
}

// FuzzCommandPayload feeds command payloads through what decodes them
// before anything changes: the MQTT client's request parsing, the
// signature check and the strict decoding of each command's fields.
// Errors, never panics; a payload is only taken signed by the trusted key.
func FuzzCommandPayload(f *testing.F) {
	dir := f.TempDir()
	trust.Generate(dir, "fuzz")
	keys, _ := trust.LoadKeys(filepath.Join(dir, "signing.pub"))
	signer, _ := trust.LoadSigner(filepath.Join(dir, "signing.key"))
	sc := signer.SignCommand("t1", mqtt.CmdThreshold, []byte(`{"set":2}`), time.Now())
	signed, _ := json.Marshal(map[string]any{"id": "a", "signed": sc})
	f.Add(signed)
	f.Add([]byte(`{"id":"x","set":1.5}`))
	f.Add([]byte(`{"id":"x","signed":{"cmd":"{}","key":"00","ts":"x","nonce":"y","sig":"!!"}}`))
	f.Add([]byte(`{"transfer":"a","size":10,"sha256":"` + strings.Repeat("a", 64) + `","block_size":1024}`))
	cfg := config.Defaults()
	cfg.Station.ID = "t1"
	s := &station{cfg: &cfg, log: quiet, keys: keys, nonces: trust.NewNonces(time.Minute, 1000)}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var req mqtt.Request
		if json.Unmarshal(payload, &req) != nil {
			return
		}
		req.Raw = payload
		body, who, err := s.authorize(mqtt.CmdThreshold, req)
		if err == nil && !strings.HasPrefix(who, "key:") {
			t.Fatalf("an unsigned command was authorized (who %q)", who)
		}
		for _, v := range []any{&mqtt.ThresholdRequest{}, &mqtt.ActivateRequest{}, &mqtt.Offer{}} {
			strictDecode(body, v)
			strictDecode(payload, v)
		}
	})
}
