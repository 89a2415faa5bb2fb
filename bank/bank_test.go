package bank

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
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
	if _, err := st.Active(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: Active() = %v, want ErrNotFound", err)
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
	if b, err := ro.Active(); err != nil || b.Meta.Version != 1 {
		t.Fatalf("read-only Active() = %v, %v", b, err)
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

func TestBundleRoundTripAndDamage(t *testing.T) {
	b := randomBank(t, 5, 300, 32)
	b.Meta.Version = 7
	var buf bytes.Buffer
	if err := WriteBundle(&buf, b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadBundle(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Vectors, b.Vectors) || got.Meta.Version != 7 || got.Meta.Threshold != b.Meta.Threshold {
		t.Fatal("bundle does not round-trip")
	}
	raw := buf.Bytes()
	metaLen := int(binary.BigEndian.Uint32(raw[len(bundleMagic):]))
	vecAt := len(bundleMagic) + 4 + metaLen + 8
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
		{"huge metadata length", patch32(raw, len(bundleMagic), 1<<30), "metadata length"},
		{"vector length lies", patch64(raw, vecAt-8, 1<<40), "vector bytes"},
	} {
		if _, err := ReadBundle(bytes.NewReader(c.data)); err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: ReadBundle = %v, want ErrCorrupt mentioning %q", c.name, err, c.want)
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

func FuzzReadBundle(f *testing.F) {
	b := randomBank(f, 1, 20, 8)
	var buf bytes.Buffer
	WriteBundle(&buf, b)
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:50])
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ReadBundle(bytes.NewReader(data))
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

func FuzzDecodeMeta(f *testing.F) {
	m := testMeta(16)
	m.Format, m.Count, m.SHA256 = FormatVersion, 4, strings.Repeat("0", 64)
	raw, _ := encodeMeta(&m)
	f.Add(raw)
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeMeta(data)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("decodeMeta accepted metadata that Validate rejects: %v", err)
		}
	})
}

// FuzzAssemble feeds arbitrary stored chunks to the loader of a version.
func FuzzAssemble(f *testing.F) {
	b := randomBank(f, 2, 12, 8)
	f.Add(bytesOf(b.Vectors), uint8(1))
	f.Add([]byte{1, 2, 3}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, parts uint8) {
		var chunks [][]byte
		n := int(parts%4) + 1
		step := len(data)/n + 1
		for i := 0; i < len(data); i += step {
			chunks = append(chunks, data[i:min(len(data), i+step)])
		}
		got, err := assemble(&b.Meta, chunks)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if !slices.Equal(got.Vectors, b.Vectors) {
			t.Fatal("assemble accepted vectors that do not match the checksum")
		}
	})
}
