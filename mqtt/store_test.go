package mqtt

import (
	"bytes"
	"encoding/binary"
	"testing"
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
