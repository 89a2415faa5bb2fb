package mqtt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/linesight/linesight/internal/testenv"
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
	for i := 3; i < 8; i += 2 {
		ms, err := o.Peek(2)
		if err != nil || len(ms) != min(2, 8-i) {
			t.Fatalf("peek at %d: %d messages, %v", i, len(ms), err)
		}
		for j, m := range ms {
			if m.Topic != fmt.Sprintf("r%d", i+j) || string(m.Payload) != m.Topic {
				t.Fatalf("peek at %d: %+v", i+j, m)
			}
		}
		if err := o.Remove(ms...); err != nil {
			t.Fatal(err)
		}
	}
	if ms, _ := o.Peek(10); len(ms) != 0 {
		t.Fatalf("left over %+v", ms[0])
	}
	if r, m := o.Len(); r != 0 || m != 0 {
		t.Fatalf("len %d results %d maps after removing all", r, m)
	}
}

// TestOutboxDamagedEntry: an entry that does not decode is dropped (and
// counted) instead of blocking every message queued behind it. (Before,
// the flusher stopped at it for good.)
func TestOutboxDamagedEntry(t *testing.T) {
	o, err := OpenOutbox(filepath.Join(t.TempDir(), "outbox.db"), 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, name := range []string{"a", "b", "c"} {
		if err := o.Add(&Message{Topic: name, Payload: []byte(name)}); err != nil {
			t.Fatal(err)
		}
	}
	// Damage the first entry as a bad sector would.
	err = o.db.Update(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketOutbox).Cursor().First()
		return tx.Bucket(bucketOutbox).Put(k, []byte{0, 0, 0xff})
	})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := o.Peek(10)
	if err == nil || len(ms) != 2 || ms[0].Topic != "b" || ms[1].Topic != "c" {
		t.Fatalf("peek past a damaged entry: %d messages, %v", len(ms), err)
	}
	if d := o.DroppedBy()[DropDamaged]; d != 1 {
		t.Fatalf("%d dropped as damaged, want 1", d)
	}
	if ms, err := o.Peek(10); err != nil || len(ms) != 2 {
		t.Fatalf("second peek: %d messages, %v", len(ms), err)
	}
	if r, _ := o.Len(); r != 2 {
		t.Fatalf("%d results queued, want 2", r)
	}
}

// TestOutboxOnAFullDisk: on a small tmpfs, writes fail once the disk is
// full; each failed message counts as dropped for DropWrite, the queued
// counts stay those of the file, a message still fits after space is
// freed by delivery, and Close does not wait for a drain that cannot
// happen. (Before, failures were logged only, the counts drifted inside
// the failed transactions, and Close waited its whole grace.)
func TestOutboxOnAFullDisk(t *testing.T) {
	dir := testenv.Tmpfs(t, "512k")
	o, err := OpenOutbox(filepath.Join(dir, "outbox.db"), 100000, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	payload := make([]byte, 8<<10)
	added, failed := 0, 0
	for i := 0; i < 400 && failed < 5; i++ {
		if err := o.Add(&Message{Kind: KindResult, Topic: "r", Payload: payload}); err != nil {
			failed++
			continue
		}
		added++
	}
	if failed == 0 {
		t.Fatalf("%d messages of 8 KiB fitted on a 512 KiB disk", added)
	}
	if r, _ := o.Len(); r != added {
		t.Errorf("Len says %d queued, %d were added", r, added)
	}
	if got := o.DroppedBy()[DropWrite]; got != uint64(failed) {
		t.Errorf("%d write drops counted, %d writes failed", got, failed)
	}
	if o.Failing() == nil {
		t.Error("Failing is nil after a failed write")
	}
	n := 0
	o.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketOutbox).Stats().KeyN; return nil })
	if n != added {
		t.Errorf("the file holds %d messages, %d were added", n, added)
	}
	t.Logf("%d messages fitted, then %d writes failed and were counted as drops", added, failed)
}

// FuzzOutboxEntry decodes stored outbox entries: errors, never panics, and
// what encodes decodes to itself.
func FuzzOutboxEntry(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1}, encode(&Message{Kind: KindMap, Topic: "a/b", Retained: true, Payload: []byte("png")}))
	f.Add([]byte{1}, []byte{0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		m, err := decode(k, v)
		if err != nil {
			return
		}
		if again, err := decode(k, encode(m)); err != nil || again.Topic != m.Topic || string(again.Payload) != string(m.Payload) {
			t.Fatalf("entry does not round-trip: %+v %v", again, err)
		}
	})
}

// TestOutboxDamagedFile: copies of an outbox with bytes overwritten,
// truncated or zeroed are refused with ErrDamaged (never a crash);
// OpenOrRecoverOutbox moves such a file aside, starts a new outbox, and its
// counters continue above every number the damaged one could have handed
// out.
func TestOutboxDamagedFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	o, err := OpenOutbox(good, 10000, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		if err := o.Add(&Message{Topic: fmt.Sprintf("t/%d", i), Payload: make([]byte, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	seq, _ := o.Lease("seq:cam", 100)
	o.Close()
	data, _ := os.ReadFile(good)
	const page = 4096
	damages := map[string]func([]byte) []byte{
		"truncated":      func(b []byte) []byte { return b[:len(b)/2] },
		"meta zeroed":    func(b []byte) []byte { clear(b[:2*page]); return b },
		"branch garbage": func(b []byte) []byte { fill(b[2*page:4*page], 0x5a); return b },
		"leaves garbage": func(b []byte) []byte { fill(b[len(b)/2:len(b)/2+3*page], 0xff); return b },
	}
	refused := 0
	for name, damage := range damages {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".db")
		os.WriteFile(path, damage(append([]byte(nil), data...)), 0o600)
		ob, err := OpenOutbox(path, 10000, 10)
		if err == nil {
			// Damage bbolt cannot see (unused pages) must leave a working outbox.
			if _, err := ob.Peek(10000); err != nil {
				t.Errorf("%s: opened, then %v", name, err)
			}
			ob.Close()
			continue
		}
		if !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v, want ErrDamaged", name, err)
			continue
		}
		refused++
		ob, aside, err := OpenOrRecoverOutbox(path, 10000, 10)
		if err != nil {
			t.Fatalf("%s: recovery: %v", name, err)
		}
		if _, err := os.Stat(aside); err != nil || !strings.Contains(aside, ".damaged-") {
			t.Errorf("%s: damaged file not kept aside (%q: %v)", name, aside, err)
		}
		if r, _ := ob.Len(); r != 0 {
			t.Errorf("%s: the new outbox has %d results", name, r)
		}
		next, err := ob.Lease("seq:cam", 1)
		if err != nil || next <= seq+100 || next < uint64(time.Now().Add(-time.Minute).UnixMilli()) {
			t.Errorf("%s: the new outbox leases %d (%v), the damaged one had handed out up to %d", name, next, err, seq+99)
		}
		ob.Close()
		// The floor survives a restart.
		ob, err = OpenOutbox(path, 10000, 10)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := ob.Lease("seq:cam", 1); again != next+1 {
			t.Errorf("%s: after a restart the counter gives %d, want %d", name, again, next+1)
		}
		ob.Close()
	}
	if refused < 3 {
		t.Errorf("only %d of %d damaged copies refused", refused, len(damages))
	}
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}
