package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/daemon"
	"github.com/linesight/linesight/internal/testenv"
)

// TestCmdSignedCommands: `linesight cmd` against a station that trusts one
// key: status is open, a threshold change unsigned or signed by another
// key is refused (and the CLI exits non-zero), signed by the trusted key it
// is taken and the reply printed.
func TestCmdSignedCommands(t *testing.T) {
	if testenv.Race || testing.Short() {
		t.Skip("skipping a station run under -race or -short")
	}
	mobilenet := sharedMobileNet(t)
	mq := testenv.Mosquitto(t)
	work := t.TempDir()
	line, db := filepath.Join(work, "line"), filepath.Join(work, "banks.db")
	runOK(t, "sample-line", line, "--train", "8", "--test-good", "1", "--per-defect", "1")
	runOK(t, "bank", "build", "--model", mobilenet, "--images", filepath.Join(line, "train/good"), "--db", db, "--threads", "2")
	runOK(t, "keys", "generate", "--out", filepath.Join(work, "keys"))
	runOK(t, "keys", "generate", "--out", filepath.Join(work, "other"))

	cfg, err := config.Load("", []string{"station.id=c1", "camera.source=dir:" + filepath.Join(line, "test/good"), "camera.mode=triggered",
		"model.path=" + mobilenet, "bank.db=" + db, "bank.trusted_keys=" + filepath.Join(work, "keys/signing.pub"),
		"mqtt.broker=" + mq.URL(), fmt.Sprintf("http.listen=127.0.0.1:%d", testenv.FreePort(t)), "model.threads=1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("station: %v", err)
		}
	}()

	send := func(args ...string) (map[string]any, error) {
		var out bytes.Buffer
		err := run(append([]string{"cmd", "--broker", mq.URL(), "--timeout", "5s"}, args...), &out)
		var reply map[string]any
		if err == nil || strings.Contains(out.String(), "{") {
			if jerr := json.Unmarshal(out.Bytes(), &reply); jerr != nil {
				t.Fatalf("cmd %v printed no JSON reply: %v\n%s", args, jerr, out.String())
			}
		}
		return reply, err
	}
	// The station comes up in the background: ask for its status until it answers.
	var st map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; {
		if st, err = send("c1", "status"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || st["ok"] != true {
		t.Fatalf("status: %v %v", st, err)
	}
	bankTh := st["result"].(map[string]any)["bank"].(map[string]any)["threshold"].(float64)
	set := fmt.Sprintf(`{"set":%v}`, bankTh*1.25)

	if r, err := send("c1", "threshold", set); err == nil || r["ok"] != false || !strings.Contains(fmt.Sprint(r["error"]), "sign") {
		t.Errorf("unsigned threshold: reply %v, err %v; want a refusal naming the signature", r, err)
	}
	if r, err := send("c1", "threshold", set, "--sign", filepath.Join(work, "other/signing.key")); err == nil || r["ok"] != false {
		t.Errorf("threshold signed by an untrusted key: reply %v, err %v; want a refusal", r, err)
	}
	r, err := send("c1", "threshold", set, "--sign", filepath.Join(work, "keys/signing.key"))
	if err != nil || r["ok"] != true {
		t.Fatalf("signed threshold: reply %v, err %v", r, err)
	}
	if got := r["result"].(map[string]any)["threshold"].(float64); got != bankTh*1.25 {
		t.Errorf("threshold after the signed command %v, want %v", got, bankTh*1.25)
	}
	if _, err := send("c1", "threshold", "not json"); err == nil || !strings.Contains(err.Error(), "JSON object") {
		t.Errorf("malformed fields: %v", err)
	}
}
