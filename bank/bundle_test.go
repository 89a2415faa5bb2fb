package bank

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/trust"
)

// fakeModel is a "model file" whose fingerprint the bank records.
func fakeModel(b *Bank) []byte {
	m := []byte("TFL3 a backbone of some bytes")
	s := sha256.Sum256(m)
	b.Meta.Model.SHA256 = hex.EncodeToString(s[:])
	return m
}

func signer(t testing.TB) (*trust.Signer, trust.Keys) {
	dir := t.TempDir()
	if _, err := trust.Generate(dir, "test"); err != nil {
		t.Fatal(err)
	}
	s, err := trust.LoadSigner(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := trust.LoadKeys(filepath.Join(dir, "signing.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return s, ks
}

func writeBundle(t testing.TB, b *Bank, model []byte, s *trust.Signer) []byte {
	var buf bytes.Buffer
	m := Manifest{Serial: 42, Creator: "eng@ws", Created: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC), Note: "n"}
	if err := WriteBundle(&buf, b, model, m, s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fixChecksum recomputes the trailing SHA-256, as someone altering a
// bundle on purpose would.
func fixChecksum(raw []byte) []byte {
	c := slices.Clone(raw)
	s := sha256.Sum256(c[:len(c)-32])
	copy(c[len(c)-32:], s[:])
	return c
}

func TestBundleSignedWithModel(t *testing.T) {
	b := randomBank(t, 9, 200, 16)
	model := fakeModel(b)
	b, _ = New(b.Meta, b.Vectors) // re-validate with the model's fingerprint
	s, keys := signer(t)
	raw := writeBundle(t, b, model, s)
	got, err := ReadBundle(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	m := got.Manifest
	if err := got.Verify(keys); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if m.Serial != 42 || m.KeyID != s.ID || !m.Model.Included || !bytes.Equal(got.Model, model) || m.Vectors != b.Meta.SHA256 ||
		m.Recipe.Dim != 16 || m.Recipe.Vectors != 200 || !slices.Equal(got.Bank.Vectors, b.Vectors) {
		t.Fatalf("bundle does not round-trip: %+v", m)
	}
	// Another station's keys do not trust it.
	_, other := signer(t)
	if err := got.Verify(other); !errors.Is(err, trust.ErrUntrusted) {
		t.Errorf("untrusted key: %v", err)
	}
	// Unsigned: reads, but Verify says so.
	u, err := ReadBundle(bytes.NewReader(writeBundle(t, b, nil, nil)))
	if err != nil || u.Model != nil || u.Manifest.Model.Included {
		t.Fatalf("unsigned bundle: %v", err)
	}
	if err := u.Verify(keys); !errors.Is(err, trust.ErrUnsigned) {
		t.Errorf("unsigned: %v", err)
	}
	// A format 1 file (a bare bank) reads as unsigned with serial 0.
	var v1 bytes.Buffer
	encodeBank(&v1, b)
	old, err := ReadBundle(bytes.NewReader(v1.Bytes()))
	if err != nil || old.Signed() || old.Manifest.Serial != 0 || !slices.Equal(old.Bank.Vectors, b.Vectors) {
		t.Fatalf("format 1 bundle: %v", err)
	}
	// The model must be the one the bank was built with.
	if err := WriteBundle(&bytes.Buffer{}, b, []byte("another model"), Manifest{}, s); err == nil {
		t.Error("a bundle with the wrong model was written")
	}
}

// TestBundleRefusals: every way a bundle can be damaged or altered is
// refused with an error naming the check.
func TestBundleRefusals(t *testing.T) {
	b := randomBank(t, 9, 200, 16)
	model := fakeModel(b)
	b, _ = New(b.Meta, b.Vectors)
	s, keys := signer(t)
	raw := writeBundle(t, b, model, s)
	ml := int(binary.BigEndian.Uint32(raw[len(bundleMagic):]))
	manifestAt := len(bundleMagic) + 4
	bankAt := manifestAt + ml + 2 + 64 + 8
	modelAt := len(raw) - 32 - len(model)
	for _, c := range []struct {
		name   string
		data   []byte
		read   error // from ReadBundle
		verify error // from Verify, when it reads
	}{
		{"truncated", raw[:len(raw)-100], ErrTruncated, nil},
		{"truncated header", raw[:8], ErrTruncated, nil},
		{"damaged in transfer", flip(raw, bankAt+40), ErrCorrupt, nil},
		{"bank altered, checksum fixed", fixChecksum(flip(raw, bankAt+len(bankMagic)+300)), ErrTampered, nil},
		{"model altered, checksum fixed", fixChecksum(flip(raw, modelAt+3)), ErrTampered, nil},
		{"manifest altered, checksum fixed", fixChecksum(bytes.Replace(raw, []byte(`"serial": 42`), []byte(`"serial": 99`), 1)), nil, trust.ErrBadSignature},
		{"signature altered", fixChecksum(flip(raw, manifestAt+ml+2+5)), nil, trust.ErrBadSignature},
		{"trailing data", append(slices.Clone(raw), 1), ErrCorrupt, nil},
		{"not a bundle", []byte("PK\x03\x04 a zip file, say"), ErrCorrupt, nil},
	} {
		got, err := ReadBundle(bytes.NewReader(c.data))
		if c.read != nil {
			if !errors.Is(err, c.read) {
				t.Errorf("%s: ReadBundle = %v, want %v", c.name, err, c.read)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: ReadBundle = %v", c.name, err)
			continue
		}
		if err := got.Verify(keys); !errors.Is(err, c.verify) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.verify)
		}
	}
}

func FuzzReadBundle(f *testing.F) {
	b := randomBank(f, 1, 20, 8)
	model := fakeModel(b)
	b, _ = New(b.Meta, b.Vectors)
	s, keys := signer(f)
	f.Add(writeBundle(f, b, model, s))
	f.Add(writeBundle(f, b, nil, nil))
	var v1 bytes.Buffer
	encodeBank(&v1, b)
	f.Add(v1.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ReadBundle(bytes.NewReader(data))
		if err != nil {
			for _, e := range []error{ErrCorrupt, ErrFormat, ErrTruncated, ErrTampered} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("error %v wraps none of the bundle errors", err)
		}
		if len(got.Bank.Vectors) != got.Bank.Meta.Count*got.Bank.Meta.Dim {
			t.Fatal("decoded bank has inconsistent sizes")
		}
		if err := got.Verify(keys); err != nil && !strings.HasPrefix(err.Error(), "trust:") {
			t.Fatalf("Verify error %v", err)
		}
	})
}
