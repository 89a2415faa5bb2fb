package mqtt

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"
)

// FuzzSessionEntry: a session entry read back from the outbox file either
// decodes to what was encoded or is refused; it never panics.
func FuzzSessionEntry(f *testing.F) {
	k := binary.BigEndian.AppendUint64(nil, 7)
	f.Add(k, encodeSession(&sessEntry{id: 3, m: &Message{Kind: KindResult, Topic: "p/s1/result", Payload: []byte(`{"seq":1}`)}}))
	f.Add(k, encodeSession(&sessEntry{id: 65535, released: true, m: &Message{Kind: KindMap, Topic: "p/s1/map", Retained: true, Payload: []byte{0x89, 'P'}}}))
	f.Add(k, []byte{0, 0, 0})
	f.Add([]byte{1}, []byte{0, 1, 2, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		e, err := decodeSession(k, v)
		if err != nil {
			return
		}
		if e.id == 0 || e.m.Kind > KindMap {
			t.Fatalf("accepted %+v", e)
		}
		e2, err := decodeSession(k, encodeSession(e))
		// A release keeps its payload: a broker that lost the session
		// gets the message again.
		if err != nil || e2.id != e.id || e2.released != e.released || e2.m.Topic != e.m.Topic || e2.m.Kind != e.m.Kind ||
			!bytes.Equal(e2.m.Payload, e.m.Payload) || e2.m.Retained != e.m.Retained {
			t.Fatalf("round trip: %+v -> %+v (%v)", e, e2, err)
		}
	})
}

// TestNoHandOverBeforeResumeLists: on a new connection nothing is handed
// over until paho has listed the stored messages to resume on it; a
// message handed over before that listing would be sent twice (qemu-arm,
// TestOrderAcrossAnOutage: results 5 6 5). The listing of the reservation
// before a connection does not count for it.
func TestNoHandOverBeforeResumeLists(t *testing.T) {
	ob, err := OpenOutbox(filepath.Join(t.TempDir(), "outbox.db"), 100, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	up := func() bool { return true }
	if !ob.waitResumed(up, nil, time.Second) {
		t.Fatal("no connection opened yet: nothing to wait for")
	}
	ob.sess.All() // paho's reservation, before connecting
	ob.sess.mu.Lock()
	ob.sess.conns++ // openWatched: a connection
	ob.sess.mu.Unlock()
	got := make(chan bool, 1)
	go func() { got <- ob.waitResumed(up, nil, 10*time.Second) }()
	select {
	case <-got:
		t.Fatal("went ahead before paho listed the store on the new connection")
	case <-time.After(100 * time.Millisecond):
	}
	ob.sess.All() // resume on it
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("reported the connection down")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting after paho listed the store")
	}
	ob.sess.mu.Lock()
	ob.sess.conns++
	ob.sess.mu.Unlock()
	if ob.waitResumed(func() bool { return false }, nil, time.Second) {
		t.Fatal("went ahead on a connection that is down")
	}
}
