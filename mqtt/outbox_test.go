package mqtt

import (
	"fmt"
	"path/filepath"
	"testing"
)

func TestOutboxOrderAndDropPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := OpenOutbox(path, 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	add := func(kind byte, name string) {
		if err := o.Add(&Message{Kind: kind, Topic: name, Payload: []byte(name)}); err != nil {
			t.Fatal(err)
		}
	}
	// r0 m0 r1 m1 r2 m2: a third map pushes out the oldest map.
	for i := 0; i < 3; i++ {
		add(KindResult, fmt.Sprintf("r%d", i))
		add(KindMap, fmt.Sprintf("m%d", i))
	}
	if r, m := o.Len(); r != 3 || m != 2 {
		t.Fatalf("len %d results %d maps", r, m)
	}
	// Results over their bound: maps go first, then the oldest results.
	for i := 3; i < 8; i++ {
		add(KindResult, fmt.Sprintf("r%d", i))
	}
	if r, m := o.Len(); r != 5 || m != 0 {
		t.Fatalf("len %d results %d maps, want 5 and 0", r, m)
	}
	if dr, dm := o.Dropped(); dr != 3 || dm != 3 {
		t.Fatalf("dropped %d results %d maps, want 3 and 3", dr, dm)
	}
	o.Close()
	// The outbox survives a restart and hands messages back in order.
	o, err = OpenOutbox(path, 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for i := 3; i < 8; i++ {
		m, err := o.Peek()
		if err != nil || m == nil || m.Topic != fmt.Sprintf("r%d", i) || string(m.Payload) != m.Topic {
			t.Fatalf("peek %d: %+v %v", i, m, err)
		}
		if err := o.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := o.Peek(); m != nil {
		t.Fatalf("left over %+v", m)
	}
}
