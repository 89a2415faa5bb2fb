package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/testenv"
)

// station is a client with a Receiver, as the daemon wires them; got
// receives each whole file's bytes and decides its outcome.
type station struct {
	c   *Client
	r   *Receiver
	got chan []byte
}

func newStation(t *testing.T, broker string) *station {
	t.Helper()
	s := &station{got: make(chan []byte, 4)}
	var err error
	var c *Client
	s.r, err = NewReceiver(t.TempDir(), func(topic string, payload []byte) {
		c.PublishNow(topic, false, payload)
	}, func(o Offer, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Error(err)
		}
		s.got <- b
		s.r.Finish(o.Transfer, TransferState{State: StateDone, Version: 7, Active: o.Activate})
	}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s.r.Stall = 300 * time.Millisecond
	c = New(Options{Broker: broker, ClientID: "station-" + t.Name(), Prefix: "p", Station: "s1", QoS: 1, Log: quiet,
		Command: func(name string, req Request) (any, error) {
			if name != CmdBankPush {
				return nil, errors.New("unknown")
			}
			var o Offer
			if err := json.Unmarshal(req.Raw, &o); err != nil {
				return nil, err
			}
			return s.r.Offer(o)
		},
		Handlers: map[string]func(string, []byte){TopicPushPrefix + "+" + TopicBlockSuffix: s.r.Block}})
	s.c = c
	c.Start()
	waitUntil(t, 10*time.Second, "the station to connect", c.Ready)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; c.Close(context.Background(), nil) })
	return s
}

func randomFile(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestPushAcrossABrokerRestart: a file of many blocks arrives whole while
// the broker is restarted half-way; the station asks only for the blocks it
// lacks (none arrives twice), and the tool gets the final state.
func TestPushAcrossABrokerRestart(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		b, h := listen(t, "127.0.0.1:0")
		pushAcrossARestart(t, b.URL(), func() { b.Close(); listen(t, b.Addr) }, func(transfer string) int {
			return len(h.on("p/s1/push/" + transfer + "/block"))
		})
	})
	t.Run("mosquitto", func(t *testing.T) {
		mq := testenv.Mosquitto(t)
		pushAcrossARestart(t, mq.URL(), func() { mq.Kill(); mq.Restart() }, nil)
	})
}

// pushAcrossARestart pushes 301 blocks and restarts the broker (restart)
// a third of the way; blocks counts the block messages the first broker
// carried, when it can.
func pushAcrossARestart(t *testing.T, url string, restart func(), blocks func(transfer string) int) {
	st := newStation(t, url)
	file := randomFile(300*MinBlockSize + 123)
	var states []TransferState
	p := &Push{Prefix: "p", Station: "s1", BlockSize: MinBlockSize, Activate: true, OfferEvery: 200 * time.Millisecond,
		Progress: func(s TransferState) { states = append(states, s) }}
	type outcome struct {
		st  TransferState
		err error
	}
	res := make(chan outcome, 1)
	go func() {
		s, err := p.Send(context.Background(), Dial{Broker: url, ClientID: "tool"}, file)
		res <- outcome{s, err}
	}()
	waitUntil(t, 20*time.Second, "a third of the blocks", func() bool {
		s := st.r.State()
		return s != nil && s.Received > 100
	})
	before := st.r.State().Received
	restart()
	var o outcome
	select {
	case o = <-res:
	case <-time.After(60 * time.Second):
		t.Fatal("the push did not finish after the broker came back")
	}
	if o.err != nil || o.st.State != StateDone || o.st.Version != 7 || !o.st.Active || o.st.Received != 301 {
		t.Fatalf("push: %+v, %v", o.st, o.err)
	}
	if got := <-st.got; !bytes.Equal(got, file) {
		t.Fatal("the station's file differs from the one pushed")
	}
	// Blocks in flight when the broker went (sent, not yet arrived) may be
	// asked for and sent again, at most a request window of them; the
	// blocks the station held before are never sent over again.
	if st.r.repeats > st.r.Window {
		t.Errorf("%d blocks the station held were sent again (a request window is %d)", st.r.repeats, st.r.Window)
	}
	if blocks != nil {
		t.Logf("%d of 301 blocks before the restart; %d repeated; %d state reports; %d block messages at the first broker",
			before, st.r.repeats, len(states), blocks(p.Transfer))
	} else {
		t.Logf("%d of 301 blocks before the restart; %d repeated; %d state reports", before, st.r.repeats, len(states))
	}
	if ents, _ := os.ReadDir(st.r.dir); len(ents) != 0 {
		t.Errorf("staging not cleaned up: %v", ents)
	}
	// The station, done with it, takes a new transfer; a second offer
	// while one is running is refused.
	if _, err := st.r.Offer(Offer{Transfer: "a", Size: 5000, SHA256: strings.Repeat("0", 64), BlockSize: MinBlockSize}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.r.Offer(Offer{Transfer: "b", Size: 5000, SHA256: strings.Repeat("0", 64), BlockSize: MinBlockSize}); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("a second transfer while one runs: %v", err)
	}
}

// TestPushRefusals: a file whose whole checksum is not the offer's is
// refused and its staging file removed; a transfer that stops getting
// blocks is abandoned; offers with bad fields are refused.
func TestPushRefusals(t *testing.T) {
	var published []string
	r, err := NewReceiver(t.TempDir(), func(topic string, payload []byte) { published = append(published, topic+" "+string(payload)) },
		func(Offer, string) { t.Error("a damaged file was handed over") }, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	file := randomFile(2*MinBlockSize + 10)
	o := Offer{Transfer: "x1", Size: int64(len(file)), SHA256: strings.Repeat("ab", 32), BlockSize: MinBlockSize}
	if _, err := r.Offer(o); err != nil {
		t.Fatal(err)
	}
	r.Block("p/s1/push/x1/block", append(EncodeBlock(0, file[:MinBlockSize])[:40], 1, 2, 3)) // damaged: ignored
	r.Block("p/s1/push/x1/block", EncodeBlock(0, file[:MinBlockSize-1]))                     // wrong size: ignored
	if s := r.State(); s.Received != 0 {
		t.Fatalf("bad blocks were taken: %+v", s)
	}
	for i := range 3 {
		r.Block("p/s1/push/x1/block", EncodeBlock(i, file[i*MinBlockSize:min(len(file), (i+1)*MinBlockSize)]))
	}
	if s := r.State(); s.State != StateRefused || s.Check != "checksum" {
		t.Fatalf("state %+v, want refused by the checksum", s)
	}
	if ents, _ := os.ReadDir(r.dir); len(ents) != 0 {
		t.Errorf("staging not cleaned up: %v", ents)
	}
	// Abandoned when blocks stop coming.
	r.Timeout, r.Stall = 300*time.Millisecond, 100*time.Millisecond
	o.Transfer = "x2"
	if _, err := r.Offer(o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go r.Run(ctx)
	waitUntil(t, 5*time.Second, "abandonment", func() bool { return r.State().State == StateAbandoned })
	cancel()
	if ents, _ := os.ReadDir(r.dir); len(ents) != 0 {
		t.Errorf("staging not cleaned up: %v", ents)
	}
	if !slices.ContainsFunc(published, func(p string) bool { return strings.HasPrefix(p, "push/x2/request") }) {
		t.Error("no block request was published")
	}
	for _, bad := range []Offer{
		{Transfer: "../x", Size: 10, SHA256: o.SHA256, BlockSize: MinBlockSize},
		{Transfer: "y", Size: 0, SHA256: o.SHA256, BlockSize: MinBlockSize},
		{Transfer: "y", Size: MaxTransferSize + 1, SHA256: o.SHA256, BlockSize: MinBlockSize},
		{Transfer: "y", Size: 10, SHA256: "zz", BlockSize: MinBlockSize},
		{Transfer: "y", Size: 10, SHA256: o.SHA256, BlockSize: 10},
	} {
		if _, err := r.Offer(bad); err == nil {
			t.Errorf("offer %+v accepted", bad)
		}
	}
	// A leftover staging file from before a restart is removed.
	os.WriteFile(filepath.Join(r.dir, "old"+stagingSuffix), []byte("x"), 0o600)
	if _, err := NewReceiver(r.dir, nil, nil, nil, quiet); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(r.dir); len(ents) != 0 {
		t.Errorf("leftover staging files: %v", ents)
	}
}

func TestBlockRequestRoundTrip(t *testing.T) {
	want := []int{3, 4, 9, 17, 40}
	raw, _ := json.Marshal(NewBlockRequest("t", want))
	id, got, err := ParseBlockRequest(raw, 100)
	if err != nil || id != "t" || !slices.Equal(got, want) {
		t.Fatalf("round trip: %q %v %v", id, got, err)
	}
	if _, got, _ := ParseBlockRequest(raw, 10); !slices.Equal(got, []int{3, 4, 9}) {
		t.Errorf("blocks past the end are dropped: %v", got)
	}
}

func FuzzTransferMessages(f *testing.F) {
	raw, _ := json.Marshal(NewBlockRequest("t", []int{1, 2, 50}))
	f.Add(raw)
	f.Add(EncodeBlock(3, []byte("data")))
	o, _ := json.Marshal(Offer{Transfer: "a", Size: 100, SHA256: strings.Repeat("a", 64), BlockSize: 1024})
	f.Add(o)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, blocks, err := ParseBlockRequest(data, 1000); err == nil {
			for _, b := range blocks {
				if b < 0 || b >= 1000 {
					t.Fatalf("block %d out of range", b)
				}
			}
		}
		if n, d, err := DecodeBlock(data); err == nil && (n < 0 || len(d) != len(data)-blockHeader) {
			t.Fatalf("block %d of %d bytes from %d", n, len(d), len(data))
		}
		var of Offer
		if strictJSON(data, &of) == nil && of.Check() == nil && (of.Blocks() <= 0 || !validID(of.Transfer)) {
			t.Fatalf("offer %+v passes its check", of)
		}
	})
}

// TestRepeatedOffersAreMadeAnew: while a station does not answer, the
// offer is repeated, each time through Push.Command, so that a signed offer
// carries a fresh nonce and a repeat is not refused as a replay. (Before,
// the first payload was sent again byte for byte.)
func TestRepeatedOffersAreMadeAnew(t *testing.T) {
	b, _ := listen(t, "127.0.0.1:0")
	var mu sync.Mutex
	var offers []string
	sub, err := Subscribe(b.URL(), "silent-station", "p/s1/cmd/"+CmdBankPush, nil, "", "", func(_ string, p []byte, _ bool) {
		mu.Lock()
		offers = append(offers, string(p))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	n := 0
	p := &Push{Prefix: "p", Station: "s1", BlockSize: MinBlockSize, OfferEvery: 50 * time.Millisecond,
		Command: func(offer []byte) ([]byte, error) {
			n++
			return json.Marshal(map[string]any{"id": "x", "nonce": n})
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	p.Send(ctx, Dial{Broker: b.URL(), ClientID: "tool"}, randomFile(3*MinBlockSize))
	mu.Lock()
	defer mu.Unlock()
	if len(offers) < 3 {
		t.Fatalf("%d offers heard in 400 ms at one per 50 ms", len(offers))
	}
	seen := map[string]bool{}
	for _, o := range offers {
		if seen[o] {
			t.Fatalf("an offer was repeated byte for byte: %s", o)
		}
		seen[o] = true
	}
}
