package bank

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/parallel"
	bolt "go.etcd.io/bbolt"
)

// testMeta is a valid recipe for dim-long vectors (one tap).
func testMeta(dim int) Meta {
	return Meta{
		Created:    time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC),
		Model:      ModelRef{SHA256: strings.Repeat("ab", 32), Taps: []string{"t"}},
		Preprocess: Preprocess{Width: 224, Height: 224, Resize: "antialiased-bilinear", Pixels: "rgb8"},
		Embed:      Embed{Pool: "avg3x3-s1-p1-include-pad", Upsample: "bilinear-half-pixel", GridW: 28, GridH: 28, TapDims: []int{dim}},
		Score:      Score{Distance: "l2", K: 1, Image: "eq7", B: 9, Upsample: "bilinear-half-pixel", Sigma: 4, Border: "reflect"},
		Coreset:    Coreset{Method: "greedy-k-center", Ratio: 0.1},
		Threshold:  Threshold{Rule: "max-margin", Param: 1.1, Value: 3, Pixel: 2.5, Width: 0.3},
		Dim:        dim,
		Scale:      0.05,
	}
}

func randomBank(t testing.TB, seed uint64, n, dim int) *Bank {
	rng := rand.New(rand.NewPCG(seed, 3))
	v := make([]int8, n*dim)
	for i := range v {
		v[i] = int8(rng.IntN(255) - 127)
	}
	b, err := New(testMeta(dim), v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bruteNearest(b *Bank, q []int8) (int32, int32) {
	best, bi := int32(-1), int32(-1)
	dim := b.Meta.Dim
	for j := 0; j < b.Meta.Count; j++ {
		var d int32
		for k := range dim {
			x := int32(q[k]) - int32(b.Vectors[j*dim+k])
			d += x * x
		}
		if best < 0 || d < best {
			best, bi = d, int32(j)
		}
	}
	return best, bi
}

func TestSearcherMatchesBruteForce(t *testing.T) {
	for _, c := range []struct{ n, dim, m, threads int }{{1, 3, 1, 1}, {300, 17, 40, 2}, {1000, 64, 33, 3}, {257, 128, 5, 2}, {2500, 96, 50, 2}, {2100, 8, 7, 3}} {
		b := randomBank(t, uint64(c.n), c.n, c.dim)
		// Queries include exact copies of bank rows and duplicated rows, so
		// that distance 0 and ties occur.
		copy(b.Vectors[(c.n-1)*c.dim:], b.Vectors[:c.dim])
		b, _ = New(b.Meta, b.Vectors)
		rng := rand.New(rand.NewPCG(9, uint64(c.m)))
		q := make([]int8, c.m*c.dim)
		for i := range q {
			q[i] = int8(rng.IntN(255) - 127)
		}
		copy(q, b.Vectors[:c.dim])
		pool := parallel.New(c.threads)
		s := NewSearcher(b, pool)
		d2, idx := make([]int32, c.m), make([]int32, c.m)
		if err := s.Nearest(q, c.m, d2, idx); err != nil {
			t.Fatal(err)
		}
		for i := range c.m {
			wd, wi := bruteNearest(b, q[i*c.dim:(i+1)*c.dim])
			if d2[i] != wd || idx[i] != wi {
				t.Fatalf("n=%d dim=%d threads=%d query %d: got (%d, %d), brute force (%d, %d)", c.n, c.dim, c.threads, i, d2[i], idx[i], wd, wi)
			}
		}
		if allocs := testing.AllocsPerRun(5, func() { s.Nearest(q, c.m, d2, idx) }); allocs != 0 {
			t.Errorf("Nearest allocates %v times per call", allocs)
		}
		pool.Close()
		// Neighbours: sorted by (distance, index) like a full sort.
		k := min(9, c.n)
		gi, gd := b.Neighbours(q[:c.dim], k)
		type nd struct{ d, i int32 }
		var all []nd
		for j := 0; j < c.n; j++ {
			var d int32
			for p := range c.dim {
				x := int32(q[p]) - int32(b.Vectors[j*c.dim+p])
				d += x * x
			}
			all = append(all, nd{d, int32(j)})
		}
		slices.SortStableFunc(all, func(a, b nd) int { return int(a.d - b.d) })
		for p := range k {
			if gi[p] != all[p].i || gd[p] != all[p].d {
				t.Fatalf("Neighbours[%d] = (%d, %d), sorted brute force (%d, %d)", p, gi[p], gd[p], all[p].i, all[p].d)
			}
		}
	}
}

func TestQuantize(t *testing.T) {
	x := []float32{0, 0.025, 0.075, -0.075, 6.35, 100, -100, 0.0749}
	q := make([]int8, len(x))
	Quantize(x, 0.05, q)
	// 0.5 and 1.5 round to even; saturation is symmetric at ±127.
	want := []int8{0, 0, 2, -2, 127, 127, -127, 1}
	if !slices.Equal(q, want) {
		t.Errorf("Quantize = %v, want %v", q, want)
	}
	if s := ScaleFor([]float32{1, -2.54, 0.3}); s != 0.02 {
		t.Errorf("ScaleFor = %v, want 0.02", s)
	}
}

// checkBoltWhenDone runs bbolt's own consistency check (every page
// reachable once, the freelist, key order) on the database at path when
// the test ends, after the test has closed its stores: a store that leaves
// a damaged file behind fails the test even if it reads back fine.
func checkBoltWhenDone(t *testing.T, path string) {
	t.Helper()
	t.Cleanup(func() {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Errorf("opening %s for bbolt's check: %v", path, err)
			return
		}
		defer db.Close()
		err = db.View(func(tx *bolt.Tx) error {
			var errs []error
			for err := range tx.Check() {
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		})
		if err != nil {
			t.Errorf("bbolt check of %s: %v", path, err)
		}
	})
}

func TestStoreVersionsActivateRollback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banks.db")
	checkBoltWhenDone(t, path)
	st, err := OpenStore(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: Get(0) = %v, want ErrNotFound", err)
	}
	// Three versions; the second is larger than a chunk.
	var banks []*Bank
	for i, n := range []int{10, ChunkSize/64 + 7, 3} {
		b := randomBank(t, uint64(i), n, 64)
		v, err := st.Put(b)
		if err != nil {
			t.Fatal(err)
		}
		if v != uint64(i+1) {
			t.Fatalf("version %d, want %d", v, i+1)
		}
		banks = append(banks, b)
	}
	for i, b := range banks {
		got, err := st.Get(uint64(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Vectors, b.Vectors) || !slices.Equal(got.Norms, b.Norms) || got.Meta.Version != uint64(i+1) {
			t.Fatalf("version %d does not round-trip", i+1)
		}
	}
	for _, v := range []uint64{1, 2, 3} {
		if err := st.Activate(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Activate(9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Activate(9) = %v, want ErrNotFound", err)
	}
	for _, want := range []uint64{2, 1} {
		v, err := st.Rollback()
		if err != nil || v != want {
			t.Fatalf("Rollback() = %d, %v; want %d", v, err, want)
		}
		if a, _ := st.ActiveVersion(); a != want {
			t.Fatalf("active %d after rollback, want %d", a, want)
		}
	}
	if _, err := st.Rollback(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Rollback past the first activation = %v, want ErrNotFound", err)
	}
	metas, err := st.List()
	if err != nil || len(metas) != 3 {
		t.Fatalf("List() = %d metas, %v", len(metas), err)
	}
	st.Close()

	// A read-only open sees the same state.
	ro, err := OpenStore(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := ro.Get(0); err != nil || b.Meta.Version != 1 {
		t.Fatalf("read-only Get(0) = %v, %v", b, err)
	}
	ro.Close()
}

// corrupt opens the database behind the store's back and applies f.
func corrupt(t *testing.T, path string, f func(vb *bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return f(tx.Bucket(bucketVersions).Bucket(vkey(1))) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func TestStoreRejectsCorruptBanks(t *testing.T) {
	cases := []struct {
		name, want string
		f          func(vb *bolt.Bucket) error
	}{
		{"flipped vector byte", "sha256", func(vb *bolt.Bucket) error {
			c := slices.Clone(vb.Get(ckey(0)))
			c[5] ^= 1
			return vb.Put(ckey(0), c)
		}},
		{"missing chunk", "chunks", func(vb *bolt.Bucket) error { return vb.Delete(ckey(1)) }},
		{"short chunk", "chunk 0 has", func(vb *bolt.Bucket) error { return vb.Put(ckey(0), vb.Get(ckey(0))[:100]) }},
		{"extra key", "unexpected key", func(vb *bolt.Bucket) error { return vb.Put([]byte("zz"), []byte{1}) }},
		{"metadata not JSON", "metadata", func(vb *bolt.Bucket) error { return vb.Put(keyMeta, []byte("{")) }},
		{"unknown field", "unknown field", func(vb *bolt.Bucket) error {
			return vb.Put(keyMeta, bytes.Replace(vb.Get(keyMeta), []byte(`"format"`), []byte(`"color": 1, "format"`), 1))
		}},
		{"newer format", "format 2", func(vb *bolt.Bucket) error {
			return vb.Put(keyMeta, bytes.Replace(vb.Get(keyMeta), []byte(`"format": 1`), []byte(`"format": 2`), 1))
		}},
		{"count disagrees", "chunks", func(vb *bolt.Bucket) error {
			return vb.Put(keyMeta, bytes.Replace(vb.Get(keyMeta), []byte(`"count": 20000`), []byte(`"count": 40000`), 1))
		}},
		{"negative threshold", "threshold.value", func(vb *bolt.Bucket) error {
			return vb.Put(keyMeta, bytes.Replace(vb.Get(keyMeta), []byte(`"value": 3`), []byte(`"value": -3`), 1))
		}},
		{"dims disagree with taps", "recipe gives", func(vb *bolt.Bucket) error {
			return vb.Put(keyMeta, bytes.Replace(vb.Get(keyMeta), []byte("\"tap_dims\": [\n   64"), []byte("\"tap_dims\": [\n   65"), 1))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b.db")
			checkBoltWhenDone(t, path)
			st, err := OpenStore(path, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Put(randomBank(t, 1, 20000, 64)); err != nil {
				t.Fatal(err)
			}
			st.Close()
			corrupt(t, path, c.f)
			st, err = OpenStore(path, false)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			_, err = st.Get(1)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Get = %v, want an error mentioning %q", err, c.want)
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
				t.Errorf("error %v is neither ErrCorrupt nor ErrFormat", err)
			}
			if err := st.Activate(1); err == nil {
				t.Error("a corrupt version was activated")
			}
		})
	}
}

func TestBankEncodingRoundTripAndDamage(t *testing.T) {
	b := randomBank(t, 5, 300, 32)
	b.Meta.Version = 7
	var buf bytes.Buffer
	if err := encodeBank(&buf, b); err != nil {
		t.Fatal(err)
	}
	got, err := decodeBank(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Vectors, b.Vectors) || got.Meta.Version != 7 || !reflect.DeepEqual(got.Meta.Threshold, b.Meta.Threshold) {
		t.Fatal("bundle does not round-trip")
	}
	raw := buf.Bytes()
	metaLen := int(binary.BigEndian.Uint32(raw[len(bankMagic):]))
	vecAt := len(bankMagic) + 4 + metaLen + 8
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"wrong magic", append([]byte("PK\x03\x04xxxxxx"), raw[10:]...), "magic"},
		{"truncated", raw[:len(raw)-40], "truncated"},
		{"flipped vector", flip(raw, vecAt+3), "checksum"},
		{"flipped checksum", flip(raw, len(raw)-1), "checksum"},
		{"trailing data", append(slices.Clone(raw), 0), "trailing"},
		{"huge metadata length", patch32(raw, len(bankMagic), 1<<30), "metadata length"},
		{"vector length lies", patch64(raw, vecAt-8, 1<<40), "vector bytes"},
	} {
		if _, err := decodeBank(bytes.NewReader(c.data)); err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decodeBank = %v, want ErrCorrupt mentioning %q", c.name, err, c.want)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x40
	return c
}

func patch32(b []byte, at int, v uint32) []byte {
	c := slices.Clone(b)
	binary.BigEndian.PutUint32(c[at:], v)
	return c
}

func patch64(b []byte, at int, v uint64) []byte {
	c := slices.Clone(b)
	binary.BigEndian.PutUint64(c[at:], v)
	return c
}

func FuzzDecodeBank(f *testing.F) {
	b := randomBank(f, 1, 20, 8)
	var buf bytes.Buffer
	encodeBank(&buf, b)
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:50])
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeBank(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrFormat", err)
			}
			return
		}
		// Whatever decodes must be a usable bank.
		if len(got.Vectors) != got.Meta.Count*got.Meta.Dim || len(got.Norms) != got.Meta.Count {
			t.Fatal("decoded bank has inconsistent sizes")
		}
		got.Neighbours(got.Row(0), 3)
	})
}

// TestApplyIsOneTransaction: a change that fails half-way (activating a
// version that does not exist after storing a new one) leaves nothing
// behind, not the stored bank, not the serial, not the audit entry; a
// change that succeeds records all three.
func TestApplyIsOneTransaction(t *testing.T) {
	st, err := OpenStore(filepath.Join(t.TempDir(), "banks.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := &AuditEntry{Action: "push", Who: "key:abc", Result: AuditOK}
	if _, err := st.Apply(Change{Put: randomBank(t, 1, 4, 8), Rollback: true, Serial: 7, Audit: e}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rollback with no history = %v, want ErrNotFound", err)
	}
	if ms, _ := st.List(); len(ms) != 0 {
		t.Errorf("a failed change stored %d versions", len(ms))
	}
	if s, _ := st.Serial(); s != 0 {
		t.Errorf("a failed change recorded serial %d", s)
	}
	if log, _ := st.AuditLog(0); len(log) != 0 {
		t.Errorf("a failed change was audited: %+v", log)
	}
	v, err := st.Apply(Change{Put: randomBank(t, 2, 4, 8), Activate: true, Serial: 9, Audit: e})
	if err != nil || v != 1 { // the failed change's version number went with it
		t.Fatalf("Apply = %d, %v; want version 1", v, err)
	}
	if a, _ := st.ActiveVersion(); a != v {
		t.Errorf("active %d, want %d", a, v)
	}
	if s, _ := st.Serial(); s != 9 {
		t.Errorf("serial %d, want 9", s)
	}
	log, err := st.AuditLog(0)
	if err != nil || len(log) != 1 || log[0].Version != v || log[0].Who != "key:abc" || log[0].Time.IsZero() {
		t.Errorf("audit log %+v, %v", log, err)
	}
}

func TestAuditLogIsBoundedAndOrdered(t *testing.T) {
	st, err := OpenStore(filepath.Join(t.TempDir(), "banks.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.db.Update(func(tx *bolt.Tx) error {
		for i := range maxAudit + 5 {
			if err := appendAudit(tx, AuditEntry{Action: "command", Serial: uint64(i + 1), Result: AuditOK}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all, err := st.AuditLog(0)
	if err != nil || len(all) != maxAudit || all[0].Serial != 6 || all[len(all)-1].Serial != maxAudit+5 {
		t.Fatalf("audit log: %d entries, first %d, last %d, %v", len(all), all[0].Serial, all[len(all)-1].Serial, err)
	}
	last, _ := st.AuditLog(3)
	if len(last) != 3 || last[0].Serial != maxAudit+3 || last[2].Serial != maxAudit+5 {
		t.Errorf("last 3: %+v", last)
	}
}

// TestRefusalsDoNotEvictChanges: more refused requests than the whole log
// holds (what anyone who reaches the broker can send) leave the changes
// made before them in the log; the refusals keep their own bound, and the
// log reads back in time order, both kinds together.
func TestRefusalsDoNotEvictChanges(t *testing.T) {
	st, err := OpenStore(filepath.Join(t.TempDir(), "banks.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	err = st.db.Update(func(tx *bolt.Tx) error {
		for i := range 10 {
			if err := appendAudit(tx, AuditEntry{Time: at(2 * i), Action: "activate", Version: uint64(i + 1), Result: AuditOK}); err != nil {
				return err
			}
		}
		for i := range maxAudit + 10 {
			// The first few interleave with the changes.
			if err := appendAudit(tx, AuditEntry{Time: at(2*i + 1), Action: "command", Serial: uint64(i + 1), Result: AuditRefused}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all, err := st.AuditLog(0)
	if err != nil {
		t.Fatal(err)
	}
	var changes, refused int
	for i, e := range all {
		if i > 0 && e.Time.Before(all[i-1].Time) {
			t.Fatalf("entry %d at %v after one at %v", i, e.Time, all[i-1].Time)
		}
		if e.Result == AuditOK {
			changes++
		} else {
			refused++
		}
	}
	if changes != 10 || refused != maxAuditRefused {
		t.Errorf("%d changes and %d refusals kept, want 10 and %d", changes, refused, maxAuditRefused)
	}
	if last := all[len(all)-1]; last.Serial != maxAudit+10 {
		t.Errorf("last entry %+v, want the last refusal", last)
	}
	// The last n of both kinds: here the newest change among refusals.
	st.db.Update(func(tx *bolt.Tx) error {
		return appendAudit(tx, AuditEntry{Time: at(2*maxAudit + 100), Action: "rollback", Result: AuditOK})
	})
	last, err := st.AuditLog(2)
	if err != nil || len(last) != 2 || last[0].Serial != maxAudit+10 || last[1].Action != "rollback" {
		t.Errorf("last 2: %+v, %v", last, err)
	}
}

// TestDamagedDatabasesNeverCrash: copies of a bank database damaged in
// many ways (pages overwritten with noise or zeros, truncated) are opened,
// checked, listed and loaded: each call returns a result or an error
// wrapping ErrCorrupt, never a panic or a fault. (bbolt alone faulted or
// panicked on several such copies, killing the process.)
func TestDamagedDatabasesNeverCrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "banks.db")
	st, err := OpenStore(path, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := st.PutActive(randomBank(t, uint64(i), 300+100*i, 64)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	detected := 0
	const copies = 40
	for i := range copies {
		bad := slices.Clone(good)
		switch i % 4 {
		case 0: // noise over part of a page
			off := rng.IntN(len(bad) - 512)
			for k := range 256 {
				bad[off+k] = byte(rng.Uint32())
			}
		case 1: // a zeroed page
			off := (rng.IntN(len(bad)/4096) * 4096)
			clear(bad[off:min(len(bad), off+4096)])
		case 2: // truncated
			bad = bad[:rng.IntN(len(bad))]
		case 3: // a few flipped bytes in the first pages (meta, roots)
			for range 8 {
				bad[rng.IntN(min(len(bad), 4*4096))] ^= byte(1 + rng.IntN(255))
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("copy%d.db", i))
		if err := os.WriteFile(p, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenStore(p, true)
		if err != nil {
			detected++
			continue
		}
		errCheck := s.Check()
		_, errList := s.List()
		_, errGet := s.Get(0)
		_, _ = s.AuditLog(0)
		s.Close()
		for _, e := range []error{errCheck, errList, errGet} {
			if e != nil && !errors.Is(e, ErrCorrupt) && !errors.Is(e, ErrNotFound) && !errors.Is(e, ErrFormat) {
				t.Errorf("copy %d: error %v wraps neither ErrCorrupt, ErrFormat nor ErrNotFound", i, e)
			}
		}
		if errCheck != nil || errList != nil || errGet != nil {
			detected++
		}
	}
	t.Logf("%d of %d damaged copies detected; none crashed", detected, copies)
	// Moved aside on request, a new database can be made in its place.
	to, err := MoveAside(path)
	if err != nil || !strings.Contains(to, ".damaged-") {
		t.Fatalf("MoveAside = %q, %v", to, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the damaged file is still at %s", path)
	}
}

// FuzzStoreValues puts fuzzed values where the store keeps metadata, the
// active version, the history, the serial and audit entries, and reads
// them back: errors, never panics.
func FuzzStoreValues(f *testing.F) {
	b := randomBank(f, 1, 4, 8)
	raw, _ := encodeMeta(&b.Meta)
	f.Add(raw, []byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte(`[{"version":1,"at":"2026-01-01T00:00:00Z"}]`), []byte(`{"action":"push"}`))
	f.Add([]byte("{"), []byte{1}, []byte("[{"), []byte("x"))
	dir := f.TempDir()
	n := 0
	f.Fuzz(func(t *testing.T, meta, active, hist, audit []byte) {
		n++
		st, err := OpenStore(filepath.Join(dir, fmt.Sprintf("f%d.db", n)), false)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Put(b); err != nil {
			t.Fatal(err)
		}
		err = st.update(func(tx *bolt.Tx) error {
			vb := tx.Bucket(bucketVersions).Bucket(vkey(1))
			if len(meta) > 0 {
				vb.Put(keyMeta, meta)
			}
			s := tx.Bucket(bucketState)
			s.Put(keyActive, active)
			s.Put(keyHistory, hist)
			s.Put(keySerial, active)
			// The same bytes as a recipe's record, under a fuzzed name.
			if r, err := tx.CreateBucketIfNotExists(bucketRecipes); err == nil && len(hist) > 0 {
				r.Put(hist, audit)
			}
			return tx.Bucket(bucketAudit).Put(vkey(1), audit)
		})
		if err != nil {
			t.Fatal(err)
		}
		st.Get(0)
		st.List()
		st.History()
		st.RollbackTarget()
		st.Serial()
		st.AuditLog(0)
		st.RecipeBanks()
		st.Check()
	})
}

// TestValidateBoundsCalibration: one case per rule on the calibration
// fields (kept scores, target and expected false-reject rates, folds,
// coverage radius); a bank without them (written before they existed) is
// valid.
func TestValidateBoundsCalibration(t *testing.T) {
	ok := testMeta(8)
	ok.Format, ok.Count, ok.SHA256 = FormatVersion, 1, strings.Repeat("cd", 32)
	ok.Threshold.Scores, ok.Threshold.MapMaxima = []float64{1, 2}, []float64{3, 4}
	ok.Threshold.Target, ok.Threshold.ExpectedFRR, ok.Threshold.Folds, ok.Coreset.Radius = 0.01, 0.01, 5, 2.5
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	old := testMeta(8)
	old.Format, old.Count, old.SHA256 = FormatVersion, 1, strings.Repeat("cd", 32)
	if err := old.Validate(); err != nil {
		t.Fatalf("a bank without calibration scores: %v", err)
	}
	for _, c := range []struct {
		field string
		f     func(m *Meta)
	}{
		{"threshold.scores[1]", func(m *Meta) { m.Threshold.Scores[1] = math.NaN() }},
		{"threshold.scores[0]", func(m *Meta) { m.Threshold.Scores[0] = -1 }},
		{"threshold.map_maxima[0]", func(m *Meta) { m.Threshold.MapMaxima[0] = math.Inf(1) }},
		{"threshold.map_maxima", func(m *Meta) { m.Threshold.MapMaxima = m.Threshold.MapMaxima[:1] }},
		{"threshold.scores", func(m *Meta) {
			m.Threshold.Scores, m.Threshold.MapMaxima = make([]float64, MaxScores+1), nil
		}},
		{"threshold.target_frr", func(m *Meta) { m.Threshold.Target = 1 }},
		{"threshold.expected_frr", func(m *Meta) { m.Threshold.ExpectedFRR = -0.1 }},
		{"threshold.folds", func(m *Meta) { m.Threshold.Folds = -1 }},
		{"coreset.radius", func(m *Meta) { m.Coreset.Radius = math.NaN() }},
	} {
		m := ok
		m.Threshold.Scores, m.Threshold.MapMaxima = slices.Clone(ok.Threshold.Scores), slices.Clone(ok.Threshold.MapMaxima)
		c.f(&m)
		err := m.Validate()
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: Validate = %v", c.field, err)
		}
	}
}

// TestMostScoresFitTheMetadata: a bank keeping MaxScores scores and map
// maxima of the longest decimal form is stored and read back.
func TestMostScoresFitTheMetadata(t *testing.T) {
	m := testMeta(8)
	m.Format, m.Count, m.SHA256 = FormatVersion, 1, strings.Repeat("cd", 32)
	for range MaxScores {
		m.Threshold.Scores = append(m.Threshold.Scores, 1.2345678901234567e-300)
		m.Threshold.MapMaxima = append(m.Threshold.MapMaxima, 1.7976931348623157e+308)
	}
	data, err := encodeMeta(&m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMeta(data)
	if err != nil || len(got.Threshold.Scores) != MaxScores {
		t.Fatalf("%d bytes of metadata: %v", len(data), err)
	}
	t.Logf("%d scores and maxima: %d bytes of metadata (limit %d)", MaxScores, len(data), maxMetaBytes)
}

// TestTruncatedDatabaseKeepsNoLock: copies of a database cut short at
// every page boundary are refused as corrupt (or open, when only unused
// space was cut), and refusing one leaves no lock behind: the same process
// opens it again and gets the same answer, not "locked by another
// process". (bbolt faulted inside Open on some, after locking the file;
// the cut at 8 KiB did so before the length was checked first.)
func TestTruncatedDatabaseKeepsNoLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "banks.db")
	st, err := OpenStore(path, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := st.PutActive(randomBank(t, uint64(i), 2000, 64)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	good, _ := os.ReadFile(path)
	refused := 0
	for c := 4096; c < len(good); c += 4096 {
		cut := filepath.Join(dir, fmt.Sprintf("cut%d.db", c))
		os.WriteFile(cut, good[:c], 0o600)
		var first error
		for try := range 2 {
			for _, ro := range []bool{true, false} {
				s, err := OpenStore(cut, ro)
				if err == nil {
					s.Close()
				}
				if try == 0 && ro {
					first = err
				}
				if (err == nil) != (first == nil) || (err != nil && (!errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "locked"))) {
					t.Fatalf("cut at %d of %d bytes, try %d, read-only %v: %v (first: %v)", c, len(good), try, ro, err, first)
				}
			}
		}
		if first != nil {
			refused++
		}
	}
	if refused == 0 {
		t.Error("no cut copy was refused")
	}
	t.Logf("%d of %d cut copies refused, each twice with the same clear error", refused, len(good)/4096-1)
}
