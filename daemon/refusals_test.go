package daemon

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/internal/trust"
	"github.com/linesight/linesight/mqtt"
)

// heldCount is the number of refusals an entry of the rate limit stands for.
func heldCount(t *testing.T, e bank.AuditEntry) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(e.Reason, "rate limit: %d refused requests", &n); err != nil {
		t.Fatalf("rate limit entry %+v: %v", e, err)
	}
	return n
}

// TestRefusalGate: the first refusalBurst refusals are recorded one by one,
// the rest of a burst are held and their count is recorded, by action,
// ahead of the next refusal let through once a token is back; the timer
// records a count no later refusal picks up, and close records what is
// still held.
func TestRefusalGate(t *testing.T) {
	var mu sync.Mutex
	var got []bank.AuditEntry
	g := newRefusalGate(func(e bank.AuditEntry) { mu.Lock(); got = append(got, e); mu.Unlock() }, quiet.Warn)
	t0 := time.Now()
	refusal := func(at time.Duration, action string) bank.AuditEntry {
		return bank.AuditEntry{Time: t0.Add(at), Action: action, Who: "mqtt", Result: bank.AuditRefused, Reason: "signature: unsigned " + action}
	}
	for i := range refusalBurst {
		if ok, held := g.admit(refusal(time.Duration(i)*time.Millisecond, "command")); !ok || held != nil {
			t.Fatalf("refusal %d of the burst: admitted %v, held %+v", i, ok, held)
		}
	}
	for i := range 10 {
		action := "command"
		if i%5 == 4 {
			action = "push"
		}
		if ok, _ := g.admit(refusal(time.Second+time.Duration(i)*time.Millisecond, action)); ok {
			t.Fatalf("refusal %d past the burst admitted", i)
		}
	}
	// Before a token is back, still held; after, admitted with the count.
	if ok, _ := g.admit(refusal(refusalEvery-time.Millisecond, "command")); ok {
		t.Fatal("admitted before a token was back")
	}
	ok, held := g.admit(refusal(refusalEvery+time.Millisecond, "command"))
	if !ok || held == nil {
		t.Fatalf("after %v: admitted %v, held %+v", refusalEvery, ok, held)
	}
	if n := heldCount(t, *held); n != 11 || held.Detail != "command 9, push 2" || held.Action != "refusals" ||
		!held.Time.Equal(t0.Add(refusalEvery-time.Millisecond)) || !strings.HasSuffix(held.Reason, "signature: unsigned command") {
		t.Errorf("held entry %+v (count %d)", held, n)
	}
	// Held again, then the timer's flush records the count: forced here
	// by moving the bucket's stamp back a period.
	g.admit(refusal(refusalEvery+2*time.Millisecond, "canary"))
	g.mu.Lock()
	g.stamp = g.stamp.Add(-2 * refusalEvery)
	g.mu.Unlock()
	g.flush()
	mu.Lock()
	if len(got) != 1 || heldCount(t, got[0]) != 1 || got[0].Detail != "canary 1" {
		t.Errorf("flushed %+v", got)
	}
	got = nil
	mu.Unlock()
	// Close records what is held without waiting for a token.
	for i := range refusalBurst + 3 {
		g.admit(refusal(refusalEvery+time.Duration(10+i)*time.Millisecond, "command"))
	}
	g.close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || heldCount(t, got[0]) < 3 {
		t.Errorf("at close: %+v", got)
	}
	if ok, _ := g.admit(refusal(refusalEvery+time.Second, "command")); !ok {
		t.Error("a closed gate held a refusal")
	}
}

// TestRefusedCommandFlood: a flood of unsigned commands at a station that
// takes only signed ones is refused, every one, and the audit log gets the
// first refusalBurst one by one and one entry for the rest with their
// count: each refusal is accounted for, the log does not grow with the
// flood. Then a signed command is taken and recorded as a change.
func TestRefusedCommandFlood(t *testing.T) {
	dir := t.TempDir()
	if _, err := trust.Generate(dir, "ops"); err != nil {
		t.Fatal(err)
	}
	keys, err := trust.LoadKeys(filepath.Join(dir, "signing.pub"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.Station.ID = "t1"
	cfg.Bank.DB = filepath.Join(dir, "banks.db")
	s := &station{cfg: &cfg, log: quiet, keys: keys, nonces: trust.NewNonces(time.Minute, 1000)}
	s.client = mqtt.New(mqtt.Options{Broker: "tcp://127.0.0.1:1", ClientID: "never", Prefix: "linesight", Station: "t1", Log: quiet})
	s.refusals = newRefusalGate(s.record, quiet.Warn)
	const flood = 500
	for i := range flood {
		payload := []byte(fmt.Sprintf(`{"id":"x%d","set":1.5}`, i))
		var req mqtt.Request
		if err := json.Unmarshal(payload, &req); err != nil {
			t.Fatal(err)
		}
		req.Raw = payload
		if _, err := s.command(mqtt.CmdThreshold, req); err == nil {
			t.Fatalf("unsigned command %d taken", i)
		}
	}
	s.refusals.close()
	st, err := bank.OpenStore(cfg.Bank.DB, true)
	if err != nil {
		t.Fatal(err)
	}
	log, err := st.AuditLog(0)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	var one, counted int
	for _, e := range log {
		switch {
		case e.Result != bank.AuditRefused:
			t.Errorf("entry %+v", e)
		case e.Action == "refusals":
			counted += heldCount(t, e)
		default:
			one++
		}
	}
	// Tokens come back every refusalEvery: a slow machine may record a
	// few more one by one.
	if one < refusalBurst || one > refusalBurst+5 || one+counted != flood || len(log) > one+3 {
		t.Errorf("%d entries: %d refusals one by one, %d counted; want %d in all, %d one by one", len(log), one, counted, flood, refusalBurst)
	}
}
