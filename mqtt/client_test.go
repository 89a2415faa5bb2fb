package mqtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	mochi "github.com/mochi-mqtt/server/v2"
	mpackets "github.com/mochi-mqtt/server/v2/packets"
	bolt "go.etcd.io/bbolt"
)

// TestStoreKeepsNoOutboundPublish: paho gets nothing to re-send on its own
// (the outbox re-sends), while inbound packets are stored as usual.
func TestStoreKeepsNoOutboundPublish(t *testing.T) {
	s := noResendStore{paho.NewMemoryStore()}
	s.Open()
	defer s.Close()
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.Qos, pub.MessageID = 1, 7
	s.Put("o.7", pub)
	if got := s.Get("o.7"); got != nil {
		t.Fatalf("outbound publish stored: %v", got)
	}
	s.Put("i.7", pub)
	if s.Get("i.7") == nil {
		t.Fatal("inbound publish not stored")
	}
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 8
	s.Put("o.8", rel)
	if s.Get("o.8") == nil {
		t.Fatal("outbound PUBREL not stored")
	}
}

// heard is a broker hook that records every message published to the
// broker, whoever subscribes: what reached the broker, in order.
type heard struct {
	mochi.HookBase
	mu   sync.Mutex
	msgs []Message
}

func (h *heard) ID() string { return "heard" }

func (h *heard) Provides(b byte) bool { return b == mochi.OnPublished }

func (h *heard) OnPublished(_ *mochi.Client, pk mpackets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, Message{Topic: pk.TopicName, Retained: pk.FixedHeader.Retain, Payload: slices.Clone(pk.Payload)})
}

// on returns the payloads heard on topic.
func (h *heard) on(topic string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.msgs {
		if m.Topic == topic {
			out = append(out, string(m.Payload))
		}
	}
	return out
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// listen starts an embedded broker on addr ("127.0.0.1:0" for any port)
// that records what it hears.
func listen(t *testing.T, addr string) (*Broker, *heard) {
	t.Helper()
	b, err := StartBroker(addr, "", "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	h := &heard{}
	if err := b.s.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, h
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkDB runs bbolt's consistency check over the outbox.
func checkDB(t *testing.T, o *Outbox) {
	t.Helper()
	err := o.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Errorf("outbox database is inconsistent: %v", err)
	}
}

func startClient(t *testing.T, broker string, ob *Outbox, cmd func(string, Request) (any, error)) *Client {
	t.Helper()
	c := New(Options{Broker: broker, ClientID: "t-" + t.Name(), Prefix: "p", Station: "s1", QoS: 1, Outbox: ob, Log: quiet,
		Offline: []byte(`{"state":"offline"}`), Command: cmd})
	c.Start()
	waitUntil(t, 10*time.Second, "the client to connect", c.Ready)
	return c
}

// TestOrderAcrossAnOutage: results published before, during and after the
// broker is away reach it exactly once and in order; the ones published
// during the outage wait in the outbox, which stays consistent.
func TestOrderAcrossAnOutage(t *testing.T) {
	b, before := listen(t, "127.0.0.1:0")
	ob, err := OpenOutbox(filepath.Join(t.TempDir(), "outbox.db"), 100, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	c := startClient(t, b.URL(), ob, nil)
	pub := func(i int) { c.Publish(Item{Kind: KindResult, Topic: TopicResult, Payload: []byte(fmt.Sprint(i))}) }
	for i := range 5 {
		pub(i)
	}
	waitUntil(t, 10*time.Second, "5 results at the broker", func() bool { return len(before.on("p/s1/result")) == 5 })
	// The embedded broker delivers a QoS 2 message on its PUBLISH, before
	// its PUBCOMP reaches the station; until then the message counts in
	// the outbox (in flight), and a new broker, without its session, would
	// get it again. Cut once all 5 are complete: this test is about the
	// messages queued during the outage (TestExactlyOnceAcrossCuts and
	// TestNoLossWhenTheBrokerForgetsTheSession cut at the ack moment).
	waitUntil(t, 10*time.Second, "the 5 completed", func() bool { r, m := ob.Len(); return r+m == 0 })
	b.Close()
	waitUntil(t, 10*time.Second, "the client to see the outage", func() bool { return !c.Connected() })
	for i := 5; i < 15; i++ {
		pub(i)
	}
	if r, _ := ob.Len(); r != 10 {
		t.Fatalf("%d results in the outbox during the outage, want 10", r)
	}
	checkDB(t, ob)
	_, after := listen(t, b.Addr)
	for i := 15; i < 20; i++ {
		pub(i)
	}
	waitUntil(t, 20*time.Second, "15 results after the outage", func() bool { return len(after.on("p/s1/result")) >= 15 })
	got := append(before.on("p/s1/result"), after.on("p/s1/result")...)
	for i, p := range got {
		if p != fmt.Sprint(i) {
			t.Fatalf("results at the broker %v: want 0..19 once each, in order", got)
		}
	}
	// The last batch is removed after the broker acknowledged it: wait for
	// that before checking (bbolt's check reads the freelist unlocked, so
	// it must not overlap a write).
	waitUntil(t, 5*time.Second, "the outbox to empty", func() bool { r, m := ob.Len(); return r+m == 0 })
	checkDB(t, ob)
	c.Close(context.Background(), nil)
}

// TestCommandRepliesAndCloseDrains: a command gets its reply (with its id,
// or an error for a malformed payload) on cmd/<name>/reply; Close delivers
// what waits in the outbox before publishing the offline status.
func TestCommandRepliesAndCloseDrains(t *testing.T) {
	b, h := listen(t, "127.0.0.1:0")
	ob, err := OpenOutbox(filepath.Join(t.TempDir(), "outbox.db"), 100, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	c := startClient(t, b.URL(), ob, func(name string, req Request) (any, error) {
		if name == "fail" {
			return nil, errors.New("refused")
		}
		return map[string]string{"echo": name, "raw": string(req.Raw)}, nil
	})
	sub, err := Subscribe(b.URL(), "tool", "p/s1/#", nil, "", "", func(string, []byte, bool) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, c := range []struct{ name, payload, want string }{
		{"hello", `{"id":"a1","x":2}`, `{"id":"a1","ok":true,"result":{"echo":"hello","raw":"{\"id\":\"a1\",\"x\":2}"}}`},
		{"fail", `{"id":"a2"}`, `{"id":"a2","ok":false,"error":"refused"}`},
		{"hello", `[1`, `{"id":"","ok":false,"error":"malformed command: payload is not a JSON object: unexpected end of JSON input"}`},
	} {
		n := len(h.on("p/s1/cmd/" + c.name + "/reply"))
		if err := sub.Publish("p/s1/cmd/"+c.name, 1, false, []byte(c.payload)); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "the reply to "+c.payload, func() bool { return len(h.on("p/s1/cmd/"+c.name+"/reply")) > n })
		if got := h.on("p/s1/cmd/" + c.name + "/reply")[n]; got != c.want {
			t.Errorf("reply to %s on cmd/%s:\n got %s\nwant %s", c.payload, c.name, got, c.want)
		}
	}

	// Queue results behind the broker's back, then close: they go first.
	for i := range 20 {
		if err := ob.Add(&Message{Kind: KindResult, Topic: c.Topic(TopicResult), Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Close(ctx, []byte(`{"state":"offline"}`))
	// The broker acknowledged everything before Close returned; its hook
	// (OnPublished) records each message a moment later.
	waitUntil(t, 5*time.Second, "20 results at the broker", func() bool { return len(h.on("p/s1/result")) >= 20 })
	if got := h.on("p/s1/result"); len(got) != 20 || got[19] != "19" {
		t.Errorf("Close delivered %d of 20 queued results: %v", len(got), got)
	}
	waitUntil(t, 5*time.Second, "the offline status at the broker", func() bool { return len(h.on("p/s1/status")) > 0 })
	if st := h.on("p/s1/status"); st[len(st)-1] != `{"state":"offline"}` {
		t.Errorf("status after Close: %q", st)
	}
	checkDB(t, ob)
}

// TestCommandsRefusedBeforeTheyRun: retained, oversized, malformed and
// too frequent commands get an error reply, never reach the handler, and
// are reported for the audit log.
func TestCommandsRefusedBeforeTheyRun(t *testing.T) {
	ran := 0
	var refused []string
	c := New(Options{Broker: "tcp://127.0.0.1:1", Prefix: "p", Station: "s", Log: quiet, MaxCommandBytes: 100, CommandRate: 1, CommandBurst: 3,
		Command: func(string, Request) (any, error) { ran++; return "ok", nil },
		Refused: func(name, reason string) { refused = append(refused, name+": "+reason) },
	})
	for _, cs := range []struct {
		payload  string
		retained bool
		want     string
	}{
		{`{"id":"r","set":1e9}`, true, "retained commands are refused"},
		{`{"id":"big","x":"` + strings.Repeat("a", 200) + `"}`, false, "of 219 bytes refused"},
		{`[1,2`, false, "malformed"},
	} {
		if r := c.command("threshold", []byte(cs.payload), cs.retained); r.OK || !strings.Contains(r.Error, cs.want) {
			t.Errorf("%s: reply %+v, want an error with %q", cs.payload[:min(20, len(cs.payload))], r, cs.want)
		}
	}
	if ran != 0 || len(refused) != 3 {
		t.Fatalf("handler ran %d times, %d refusals reported", ran, len(refused))
	}
	// The burst allowed 3 (the malformed one used a token); the next is
	// over the rate.
	c.limit = newRateLimit(1, 3)
	for i := range 4 {
		r := c.command("status", []byte(`{"id":"s"}`), false)
		if (i < 3) != r.OK {
			t.Errorf("command %d of a burst of 3: %+v", i+1, r)
		}
	}
	if ran != 3 || !strings.Contains(refused[len(refused)-1], "too many commands") {
		t.Errorf("rate limit: handler ran %d times; refusals %q", ran, refused)
	}
}

// TestEmbeddedBrokerPassword: with a password, the embedded broker turns
// away clients without it (it admitted every local process before).
func TestEmbeddedBrokerPassword(t *testing.T) {
	b, err := StartBroker("127.0.0.1:0", "station", "s3cret", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if s, err := Subscribe(b.URL(), "anon", "#", nil, "", "", func(string, []byte, bool) {}); err == nil {
		s.Close()
		t.Error("a client without the password got in")
	}
	if s, err := Subscribe(b.URL(), "wrong", "#", nil, "station", "guess", func(string, []byte, bool) {}); err == nil {
		s.Close()
		t.Error("a client with a wrong password got in")
	}
	s, err := Subscribe(b.URL(), "ok", "#", nil, "station", "s3cret", func(string, []byte, bool) {})
	if err != nil {
		t.Fatalf("the right password: %v", err)
	}
	s.Close()
}
