package bank

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/linesight/linesight/internal/trust"
)

// A bundle is a bank as it travels between machines: one file holding a
// manifest (what it carries, who made it, when, its serial), optionally the
// manifest's ed25519 signature, the bank, and optionally the backbone the
// bank was built with, so that a station can take a new model and its bank
// as one unit. Layout, all integers big-endian:
//
//	"LSBUNDLE\r\n\x1a\n"
//	u32 manifest length, manifest JSON (the signed bytes)
//	u16 signature length (0 or 64), signature
//	u64 bank length, the bank's encoded form (encodeBank: its own magic,
//	    metadata, vectors and checksum)
//	u64 model length (0: none), the model file's bytes
//	SHA-256 of everything before it
//
// The manifest records the SHA-256 and size of the bank's encoded form and
// of the model, so that a signature over the manifest covers every byte.
// Format 1 bundles (a bare encoded bank, "LSBANK") are still read, as
// unsigned bundles without a serial.

// ManifestFormat is the manifest layout this code writes and reads.
const ManifestFormat = 1

var bundleMagic = []byte("LSBUNDLE\r\n\x1a\n")

// Limits on what a bundle may declare, checked before allocating.
const (
	maxManifestBytes = 1 << 20
	maxBankBytes     = 1 << 32
	// MaxModelBytes bounds a backbone carried in a bundle.
	MaxModelBytes = 1 << 30
)

// Errors of bundles, testable with errors.Is. (Signature problems are
// package trust's: trust.ErrUnsigned, ErrUntrusted, ErrBadSignature.)
var (
	// ErrTruncated: the bundle ends before what its header declares.
	ErrTruncated = errors.New("bank: bundle truncated")
	// ErrTampered: the bundle's parts do not match its manifest.
	ErrTampered = errors.New("bank: bundle does not match its manifest")
)

// Manifest describes a bundle. With a signature from a trusted key it is
// what a station trusts; every byte of the bundle is tied to it by hashes.
type Manifest struct {
	Format int `json:"format"`
	// Serial grows with every export; a station refuses a bundle whose
	// serial is not above the last one it took (replays, downgrades).
	Serial  uint64    `json:"serial"`
	Creator string    `json:"creator"`
	Created time.Time `json:"created"`
	// KeyID names the signing key; empty when unsigned.
	KeyID string `json:"key_id,omitempty"`
	Note  string `json:"note,omitempty"`
	// Bank is the bank's encoded form as carried.
	Bank Part `json:"bank"`
	// Vectors is the SHA-256 of the bank's vectors (Meta.SHA256).
	Vectors string `json:"vectors_sha256"`
	// Model is the backbone the bank needs: its fingerprint, and when the
	// bundle carries it, its size.
	Model ModelPart `json:"model"`
	// Source is the bank's version and creation in the database it was
	// exported from.
	Source Origin `json:"source"`
	// Recipe is how the bank scores (from its metadata), for people
	// reading the manifest.
	Recipe Recipe `json:"recipe"`
}

// Part is a hashed part of a bundle.
type Part struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// ModelPart names the backbone a bundle's bank needs.
type ModelPart struct {
	SHA256   string `json:"sha256"`
	Included bool   `json:"included"`
	Size     int64  `json:"size,omitempty"` // when included
}

// Recipe summarises a bank's recipe in its manifest.
type Recipe struct {
	Taps       []string   `json:"taps"`
	Preprocess Preprocess `json:"preprocess"`
	Embed      Embed      `json:"embed"`
	Score      Score      `json:"score"`
	Threshold  float64    `json:"threshold"`
	Vectors    int        `json:"vectors"`
	Dim        int        `json:"dim"`
}

// Bundle is a decoded bundle.
type Bundle struct {
	Manifest  Manifest
	Signature []byte
	Bank      *Bank
	// Model is the backbone file's bytes, when the bundle carries it.
	Model []byte
	// raw is the manifest exactly as signed.
	raw []byte
}

// Signed reports whether the bundle carries a signature.
func (b *Bundle) Signed() bool { return len(b.Signature) > 0 }

// Verify checks the manifest's signature against keys. Errors wrap
// trust.ErrUnsigned, trust.ErrUntrusted or trust.ErrBadSignature.
func (b *Bundle) Verify(keys trust.Keys) error {
	if !b.Signed() {
		return trust.ErrUnsigned
	}
	return keys.Verify(b.Manifest.KeyID, b.raw, b.Signature)
}

// WriteBundle writes bank bk (with the backbone model, when not nil) as a
// bundle described by m, which it completes: format, the parts' hashes
// and sizes, the recipe, and the key id when signer is not nil (then the
// manifest is signed).
func WriteBundle(w io.Writer, bk *Bank, model []byte, m Manifest, signer *trust.Signer) error {
	var bankBuf bytes.Buffer
	if err := encodeBank(&bankBuf, bk); err != nil {
		return err
	}
	meta := &bk.Meta
	m.Format = ManifestFormat
	m.Bank = Part{SHA256: sum(bankBuf.Bytes()), Size: int64(bankBuf.Len())}
	m.Vectors = meta.SHA256
	m.Model = ModelPart{SHA256: meta.Model.SHA256}
	if model != nil {
		if got := sum(model); got != meta.Model.SHA256 {
			return fmt.Errorf("bank: the model given (sha256 %s) is not the one bank %d was built with (%s)", got[:12], meta.Version, meta.Model.SHA256[:12])
		}
		if len(model) > MaxModelBytes {
			return fmt.Errorf("bank: the model is %d bytes; bundles carry at most %d", len(model), MaxModelBytes)
		}
		m.Model.Included, m.Model.Size = true, int64(len(model))
	}
	m.Source = Origin{Version: meta.Version, Created: meta.Created}
	m.Recipe = Recipe{Taps: slices.Clone(meta.Model.Taps), Preprocess: meta.Preprocess, Embed: meta.Embed, Score: meta.Score,
		Threshold: meta.Threshold.Value, Vectors: meta.Count, Dim: meta.Dim}
	m.KeyID = ""
	if signer != nil {
		m.KeyID = signer.ID
	}
	raw, err := json.MarshalIndent(&m, "", " ")
	if err != nil {
		return fmt.Errorf("bank: encoding the manifest: %w", err)
	}
	var sig []byte
	if signer != nil {
		sig = signer.Sign(raw)
	}
	h := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, h))
	bw.Write(bundleMagic)
	binary.Write(bw, binary.BigEndian, uint32(len(raw)))
	bw.Write(raw)
	binary.Write(bw, binary.BigEndian, uint16(len(sig)))
	bw.Write(sig)
	binary.Write(bw, binary.BigEndian, uint64(bankBuf.Len()))
	bw.Write(bankBuf.Bytes())
	binary.Write(bw, binary.BigEndian, uint64(len(model)))
	bw.Write(model)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("bank: writing bundle: %w", err)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("bank: writing bundle: %w", err)
	}
	return nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ReadBundle reads a bundle and checks everything but who signed it: the
// structure and sizes (before allocating), the transport checksum, the
// manifest, and that the bank and the model are the ones the manifest
// names. Errors wrap ErrTruncated, ErrCorrupt (damaged), ErrTampered or
// ErrFormat. A format 1 file (a bare bank) reads as an unsigned bundle
// with serial 0.
func ReadBundle(r io.Reader) (*Bundle, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(len(bankMagic))
	if err == nil && bytes.Equal(head, bankMagic) {
		bk, err := decodeBank(br)
		if err != nil {
			return nil, err
		}
		m := Manifest{Format: 0, Vectors: bk.Meta.SHA256, Model: ModelPart{SHA256: bk.Meta.Model.SHA256},
			Source: Origin{Version: bk.Meta.Version, Created: bk.Meta.Created}, Created: bk.Meta.Created}
		return &Bundle{Manifest: m, Bank: bk}, nil
	}
	h := sha256.New()
	tr := io.TeeReader(br, h)
	read := func(what string, p []byte) error {
		if _, err := io.ReadFull(tr, p); err != nil {
			return fmt.Errorf("%w in its %s (%v)", ErrTruncated, what, err)
		}
		return nil
	}
	magic := make([]byte, len(bundleMagic))
	if err := read("header", magic); err != nil {
		return nil, err
	}
	if !bytes.Equal(magic, bundleMagic) {
		return nil, fmt.Errorf("%w: not a Linesight bank bundle (bad magic %q)", ErrCorrupt, magic)
	}
	var n4 [4]byte
	if err := read("header", n4[:]); err != nil {
		return nil, err
	}
	ml := binary.BigEndian.Uint32(n4[:])
	if ml == 0 || ml > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest length %d outside 1..%d", ErrCorrupt, ml, maxManifestBytes)
	}
	raw := make([]byte, ml)
	if err := read("manifest", raw); err != nil {
		return nil, err
	}
	var n2 [2]byte
	if err := read("signature", n2[:]); err != nil {
		return nil, err
	}
	sl := binary.BigEndian.Uint16(n2[:])
	if sl != 0 && sl != 64 {
		return nil, fmt.Errorf("%w: signature of %d bytes (ed25519 signatures have 64)", ErrCorrupt, sl)
	}
	sig := make([]byte, sl)
	if err := read("signature", sig); err != nil {
		return nil, err
	}
	m, err := decodeManifest(raw)
	if err != nil {
		return nil, err
	}
	var n8 [8]byte
	if err := read("bank", n8[:]); err != nil {
		return nil, err
	}
	bl := binary.BigEndian.Uint64(n8[:])
	if bl == 0 || bl > maxBankBytes || int64(bl) != m.Bank.Size {
		return nil, fmt.Errorf("%w: bank of %d bytes, the manifest says %d", ErrTampered, bl, m.Bank.Size)
	}
	bankRaw := make([]byte, bl)
	if err := read("bank", bankRaw); err != nil {
		return nil, err
	}
	if err := read("model", n8[:]); err != nil {
		return nil, err
	}
	mdl := binary.BigEndian.Uint64(n8[:])
	if mdl > MaxModelBytes || (mdl > 0) != m.Model.Included || int64(mdl) != m.Model.Size {
		return nil, fmt.Errorf("%w: model of %d bytes, the manifest says included=%v, %d bytes", ErrTampered, mdl, m.Model.Included, m.Model.Size)
	}
	var model []byte
	if mdl > 0 {
		model = make([]byte, mdl)
		if err := read("model", model); err != nil {
			return nil, err
		}
	}
	want := h.Sum(nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil {
		return nil, fmt.Errorf("%w in its checksum (%v)", ErrTruncated, err)
	}
	if !bytes.Equal(got, want) {
		return nil, fmt.Errorf("%w: bundle checksum mismatch (damaged in transfer?)", ErrCorrupt)
	}
	if n, _ := br.Read(make([]byte, 1)); n > 0 {
		return nil, fmt.Errorf("%w: trailing data after the bundle", ErrCorrupt)
	}
	// Tie the parts to the manifest.
	if s := sum(bankRaw); s != m.Bank.SHA256 {
		return nil, fmt.Errorf("%w: the bank's sha256 is %s, the manifest says %s", ErrTampered, s[:12], short(m.Bank.SHA256))
	}
	bk, err := decodeBank(bytes.NewReader(bankRaw))
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if bk.Meta.SHA256 != m.Vectors || bk.Meta.Model.SHA256 != m.Model.SHA256 {
		return nil, fmt.Errorf("%w: the bank's vectors or model fingerprint differ from the manifest's", ErrTampered)
	}
	if model != nil {
		if s := sum(model); s != m.Model.SHA256 {
			return nil, fmt.Errorf("%w: the model's sha256 is %s, the manifest says %s", ErrTampered, s[:12], short(m.Model.SHA256))
		}
	}
	return &Bundle{Manifest: *m, Signature: sig, Bank: bk, Model: model, raw: raw}, nil
}

func decodeManifest(raw []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: manifest: trailing data after the JSON object", ErrCorrupt)
	}
	switch {
	case m.Format != ManifestFormat:
		return nil, fmt.Errorf("%w: manifest format %d, this build reads %d", ErrFormat, m.Format, ManifestFormat)
	case len(m.Bank.SHA256) != 64 || len(m.Vectors) != 64 || len(m.Model.SHA256) != 64:
		return nil, fmt.Errorf("%w: manifest: a sha256 is not 64 hex digits", ErrCorrupt)
	}
	return &m, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// bankMagic starts a bank's encoded form (PNG-style: catches text-mode
// transfers and truncation early). It is the bank section of a bundle, and
// was the whole bundle file of format 1.
var bankMagic = []byte("LSBANK\r\n\x1a\n")

// encodeBank writes b self-checking: magic, metadata length and JSON,
// vector length and bytes, then the SHA-256 of all that.
func encodeBank(w io.Writer, b *Bank) error {
	meta, err := encodeMeta(&b.Meta)
	if err != nil {
		return fmt.Errorf("bank: encoding metadata: %w", err)
	}
	h := sha256.New()
	mw := io.MultiWriter(w, h)
	var hdr [8]byte
	if _, err := mw.Write(bankMagic); err != nil {
		return fmt.Errorf("bank: encoding: %w", err)
	}
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(meta)))
	if _, err := mw.Write(hdr[:4]); err != nil {
		return fmt.Errorf("bank: encoding: %w", err)
	}
	if _, err := mw.Write(meta); err != nil {
		return fmt.Errorf("bank: encoding: %w", err)
	}
	binary.BigEndian.PutUint64(hdr[:], uint64(len(b.Vectors)))
	if _, err := mw.Write(hdr[:]); err != nil {
		return fmt.Errorf("bank: encoding: %w", err)
	}
	if _, err := mw.Write(bytesOf(b.Vectors)); err != nil {
		return fmt.Errorf("bank: encoding: %w", err)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("bank: encoding: %w", err)
	}
	return nil
}

// decodeBank reads and checks a bank written by encodeBank, to the end of
// r. Sizes are checked against the metadata before anything large is
// allocated.
func decodeBank(r io.Reader) (*Bank, error) {
	h := sha256.New()
	tr := io.TeeReader(r, h)
	magic := make([]byte, len(bankMagic))
	if _, err := io.ReadFull(tr, magic); err != nil {
		return nil, fmt.Errorf("%w: bank data too short for its header: %v", ErrCorrupt, err)
	}
	if !bytes.Equal(magic, bankMagic) {
		return nil, fmt.Errorf("%w: not a Linesight bank (bad magic %q)", ErrCorrupt, magic)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(tr, hdr[:4]); err != nil {
		return nil, fmt.Errorf("%w: bank data truncated in its header: %v", ErrCorrupt, err)
	}
	ml := binary.BigEndian.Uint32(hdr[:4])
	if ml == 0 || ml > maxMetaBytes {
		return nil, fmt.Errorf("%w: bank data metadata length %d outside 1..%d", ErrCorrupt, ml, maxMetaBytes)
	}
	metaRaw := make([]byte, ml)
	if _, err := io.ReadFull(tr, metaRaw); err != nil {
		return nil, fmt.Errorf("%w: bank data truncated in its metadata: %v", ErrCorrupt, err)
	}
	meta, err := decodeMeta(metaRaw)
	if err != nil {
		return nil, fmt.Errorf("bank data: %w", err)
	}
	if _, err := io.ReadFull(tr, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: bank data truncated before its vectors: %v", ErrCorrupt, err)
	}
	vl := binary.BigEndian.Uint64(hdr[:])
	if vl != uint64(meta.Count)*uint64(meta.Dim) {
		return nil, fmt.Errorf("%w: bank data holds %d vector bytes, its metadata says %d×%d", ErrCorrupt, vl, meta.Count, meta.Dim)
	}
	vec := make([]byte, vl)
	if _, err := io.ReadFull(tr, vec); err != nil {
		return nil, fmt.Errorf("%w: bank data truncated in its vectors: %v", ErrCorrupt, err)
	}
	sum := h.Sum(nil)
	got := make([]byte, len(sum))
	if _, err := io.ReadFull(r, got); err != nil {
		return nil, fmt.Errorf("%w: bank data truncated in its checksum: %v", ErrCorrupt, err)
	}
	if !bytes.Equal(got, sum) {
		return nil, fmt.Errorf("%w: bank data checksum mismatch (damaged in transfer?)", ErrCorrupt)
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return nil, fmt.Errorf("%w: trailing data after the bank", ErrCorrupt)
	}
	b := &Bank{Meta: *meta, Vectors: int8sOf(vec)}
	if err := b.check(); err != nil {
		return nil, err
	}
	return b, nil
}
