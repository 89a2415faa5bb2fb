package mqtt

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/linesight/linesight/internal/testenv"
)

// gate forwards connections to a broker until it is shut (the station's
// link is cut, the broker stays up for the others) and opened again on
// the same address.
type gate struct {
	t      testing.TB
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newGate(t testing.TB, target string) *gate {
	g := &gate{t: t, target: target}
	g.open("127.0.0.1:0")
	t.Cleanup(g.shut)
	return g
}

func (g *gate) URL() string { return "tcp://" + g.addr }

func (g *gate) open(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		g.t.Fatal(err)
	}
	g.mu.Lock()
	g.ln, g.addr = ln, ln.Addr().String()
	g.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", g.target)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, c, b)
			g.mu.Unlock()
			go func() { io.Copy(b, c); b.Close(); c.Close() }()
			go func() { io.Copy(c, b); b.Close(); c.Close() }()
		}
	}()
}

// shut refuses new connections and cuts the open ones.
func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

// event is one message a watcher received.
type event struct {
	topic, payload string
	retained       bool
}

// watcher subscribes to everything under p/s1/ at QoS 2, straight to the
// broker, and records what arrives in order.
type watcher struct {
	mu  sync.Mutex
	got []event
}

func newWatcher(t *testing.T, broker string) *watcher {
	t.Helper()
	w := &watcher{}
	po := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("watch-%d", time.Now().UnixNano())).SetOrderMatters(true)
	c := paho.NewClient(po)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher: %v", tok.Error())
	}
	tok := c.Subscribe("p/s1/#", 2, func(_ paho.Client, m paho.Message) {
		w.mu.Lock()
		w.got = append(w.got, event{m.Topic(), string(m.Payload()), m.Retained()})
		w.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscription: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return w
}

func (w *watcher) events() []event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]event(nil), w.got...)
}

// on returns the payloads received on topic and the index in events of each.
func (w *watcher) on(topic string) (payloads []string, at []int) {
	for i, e := range w.events() {
		if e.topic == topic {
			payloads, at = append(payloads, e.payload), append(at, i)
		}
	}
	return payloads, at
}

// frameItems are what the pipeline publishes for frame i: the result
// through the outbox, verdict and score as latest values.
func frameItems(i int) []Item {
	return []Item{{Kind: KindResult, Topic: TopicResult, Payload: []byte(strconv.Itoa(i))},
		{Latest: true, Topic: TopicVerdict, Payload: []byte(verdictOf(i))},
		{Latest: true, Topic: TopicScore, Payload: []byte(strconv.Itoa(i) + ".5")}}
}

func verdictOf(i int) string { return VerdictOf(i%3 == 0) }

// TestLatestValuesAcrossAnOutage: verdict and score do not go through the
// outbox; while the station's link is cut only results wait there, no
// verdict or score reaches the broker, and after reconnection every result
// arrives once in order, followed by exactly one verdict and one score,
// those of the last result (also what a late subscriber reads retained).
func TestLatestValuesAcrossAnOutage(t *testing.T) {
	mq := testenv.Mosquitto(t)
	g := newGate(t, mq.Addr())
	w := newWatcher(t, mq.URL())
	ob, err := OpenOutbox(filepath.Join(t.TempDir(), "outbox.db"), 1000, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	c := New(Options{Broker: g.URL(), ClientID: "latest", Prefix: "p", Station: "s1", QoS: 1, Outbox: ob, Log: quiet,
		reconnectMax: 200 * time.Millisecond})
	c.Start()
	waitUntil(t, 10*time.Second, "connected", c.Ready)

	const before, during = 5, 100
	for i := 1; i <= before; i++ {
		c.Publish(frameItems(i)...)
	}
	waitUntil(t, 20*time.Second, "the first results and latest values", func() bool {
		r, m := ob.Len()
		v, _ := w.on("p/s1/verdict")
		s, _ := w.on("p/s1/score")
		return r+m == 0 && c.LatestPending() == 0 && len(v) > 0 && v[len(v)-1] == verdictOf(before) &&
			len(s) > 0 && s[len(s)-1] == strconv.Itoa(before)+".5"
	})
	nv, _ := w.on("p/s1/verdict")
	ns, _ := w.on("p/s1/score")

	g.shut()
	waitUntil(t, 10*time.Second, "the station to see the cut", func() bool { return !c.Connected() })
	for i := before + 1; i <= before+during; i++ {
		c.Publish(frameItems(i)...)
	}
	if r, m := ob.Len(); r != during || m != 0 {
		t.Errorf("outbox during the outage holds %d results and %d maps, want %d results (verdict and score stay out)", r, m, during)
	}
	ms, err := ob.Peek(10 * during)
	ob.Unlease()
	if err != nil || len(ms) != during {
		t.Fatalf("peek: %d messages, %v", len(ms), err)
	}
	for _, m := range ms {
		if m.Topic != "p/s1/result" {
			t.Fatalf("outbox holds a message for %s during the outage", m.Topic)
		}
	}
	if n := c.LatestPending(); n != 2 {
		t.Errorf("%d latest values pending during the outage, want 2 (verdict and score)", n)
	}
	checkDB(t, ob)
	time.Sleep(300 * time.Millisecond)
	if v, _ := w.on("p/s1/verdict"); len(v) != len(nv) {
		t.Errorf("verdicts reached the broker while the station was cut off: %v", v[len(nv):])
	}

	g.open(g.addr)
	last := before + during
	waitUntil(t, 30*time.Second, "the backlog and the latest values", func() bool {
		rs, _ := w.on("p/s1/result")
		r, m := ob.Len()
		return len(rs) >= last && r+m == 0 && c.LatestPending() == 0
	})
	time.Sleep(300 * time.Millisecond) // anything repeated or late would show now
	rs, rat := w.on("p/s1/result")
	for i, p := range rs {
		if p != strconv.Itoa(i+1) {
			t.Fatalf("results at the broker %v: want 1..%d once each, in order", rs, last)
		}
	}
	if len(rs) != last {
		t.Fatalf("%d results, want %d", len(rs), last)
	}
	v, vat := w.on("p/s1/verdict")
	s, sat := w.on("p/s1/score")
	v, vat, s, sat = v[len(nv):], vat[len(nv):], s[len(ns):], sat[len(ns):]
	if len(v) != 1 || v[0] != verdictOf(last) || len(s) != 1 || s[0] != strconv.Itoa(last)+".5" {
		t.Fatalf("after the outage: verdicts %v, scores %v; want exactly the last result's (%s, %d.5)", v, s, verdictOf(last), last)
	}
	if lastRes := rat[len(rat)-1]; vat[0] < lastRes || sat[0] < lastRes {
		t.Errorf("the latest verdict (event %d) or score (event %d) arrived before the last result (event %d)", vat[0], sat[0], lastRes)
	}
	late := newWatcher(t, mq.URL())
	waitUntil(t, 5*time.Second, "retained verdict and score", func() bool {
		v, _ := late.on("p/s1/verdict")
		s, _ := late.on("p/s1/score")
		return len(v) > 0 && len(s) > 0
	})
	for _, e := range late.events() {
		if (e.topic == "p/s1/verdict" && e.payload != verdictOf(last)) || (e.topic == "p/s1/score" && e.payload != strconv.Itoa(last)+".5") || !e.retained {
			t.Errorf("a late subscriber read %s %q (retained %v); want the last result's values, retained", e.topic, e.payload, e.retained)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c.Close(ctx, nil)
	cancel()
}

// BenchmarkFrameDelivery: frames (a result with its verdict and score) from
// Publish to the broker, mosquitto on loopback, with an outbox file in the
// test's temp dir. "outbox" sends all three through the outbox (QoS 2, two
// disk syncs each), as before; "latest" sends the result through it and
// verdict and score as latest values. Reported as frames/s; compare the two
// in paired runs (-count).
func BenchmarkFrameDelivery(b *testing.B) {
	mq := testenv.Mosquitto(b)
	for _, mode := range []string{"outbox", "latest"} {
		b.Run(mode, func(b *testing.B) {
			ob, err := OpenOutbox(filepath.Join(b.TempDir(), "outbox.db"), 1<<20, 10)
			if err != nil {
				b.Fatal(err)
			}
			defer ob.Close()
			c := New(Options{Broker: mq.URL(), ClientID: fmt.Sprintf("bench-%d", time.Now().UnixNano()), Prefix: "p", Station: "s1", QoS: 1, Outbox: ob, Log: quiet})
			c.Start()
			for deadline := time.Now().Add(10 * time.Second); !c.Ready(); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("not connected")
				}
			}
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				items := frameItems(i)
				if mode == "outbox" {
					for j := range items[1:] {
						items[1+j].Latest, items[1+j].Retained = false, true
					}
				}
				c.Publish(items...)
			}
			for {
				if r, m := ob.Len(); r+m == 0 && c.LatestPending() == 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c.Close(ctx, nil)
			cancel()
		})
	}
}
