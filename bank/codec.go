package bank

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
)

// ChunkSize bounds each stored piece of the vectors, so that no database
// value is huge (bbolt copies and pages whole values).
const ChunkSize = 1 << 20

// maxMetaBytes bounds the JSON metadata of a bank.
const maxMetaBytes = 1 << 20

// encodeMeta returns the stored form of meta.
func encodeMeta(m *Meta) ([]byte, error) {
	return json.MarshalIndent(m, "", " ")
}

// decodeMeta parses and validates stored metadata. Unknown fields are
// errors: a reader must not silently drop what a writer meant.
func decodeMeta(data []byte) (*Meta, error) {
	if len(data) > maxMetaBytes {
		return nil, fmt.Errorf("%w: metadata of %d bytes (limit %d)", ErrCorrupt, len(data), maxMetaBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Meta
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: metadata: trailing data after the JSON object", ErrCorrupt)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// assemble joins stored chunks into a checked bank.
func assemble(m *Meta, chunks [][]byte) (*Bank, error) {
	want := m.Count * m.Dim
	if n := (want + ChunkSize - 1) / ChunkSize; len(chunks) != n {
		return nil, fmt.Errorf("%w: %d vector chunks, %d×%d values need %d", ErrCorrupt, len(chunks), m.Count, m.Dim, n)
	}
	buf := make([]byte, 0, want)
	for i, c := range chunks {
		size := min(ChunkSize, want-i*ChunkSize)
		if len(c) != size {
			return nil, fmt.Errorf("%w: vector chunk %d has %d bytes, want %d", ErrCorrupt, i, len(c), size)
		}
		buf = append(buf, c...)
	}
	b := &Bank{Meta: *m, Vectors: int8sOf(buf)}
	if err := b.check(); err != nil {
		return nil, err
	}
	return b, nil
}

// bundleMagic starts every bank bundle file (PNG-style: catches text-mode
// transfers and truncation early).
var bundleMagic = []byte("LSBANK\r\n\x1a\n")

// WriteBundle writes b as a single self-checking file: magic, metadata
// length and JSON, vector length and bytes, then the SHA-256 of all that.
func WriteBundle(w io.Writer, b *Bank) error {
	meta, err := encodeMeta(&b.Meta)
	if err != nil {
		return fmt.Errorf("bank: encoding metadata: %w", err)
	}
	h := sha256.New()
	mw := io.MultiWriter(w, h)
	var hdr [8]byte
	if _, err := mw.Write(bundleMagic); err != nil {
		return fmt.Errorf("bank: writing bundle: %w", err)
	}
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(meta)))
	if _, err := mw.Write(hdr[:4]); err != nil {
		return fmt.Errorf("bank: writing bundle: %w", err)
	}
	if _, err := mw.Write(meta); err != nil {
		return fmt.Errorf("bank: writing bundle: %w", err)
	}
	binary.BigEndian.PutUint64(hdr[:], uint64(len(b.Vectors)))
	if _, err := mw.Write(hdr[:]); err != nil {
		return fmt.Errorf("bank: writing bundle: %w", err)
	}
	if _, err := mw.Write(bytesOf(b.Vectors)); err != nil {
		return fmt.Errorf("bank: writing bundle: %w", err)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("bank: writing bundle: %w", err)
	}
	return nil
}

// ReadBundle reads and checks a bundle written by WriteBundle. Sizes are
// checked against the metadata before anything large is allocated.
func ReadBundle(r io.Reader) (*Bank, error) {
	h := sha256.New()
	tr := io.TeeReader(r, h)
	magic := make([]byte, len(bundleMagic))
	if _, err := io.ReadFull(tr, magic); err != nil {
		return nil, fmt.Errorf("%w: bundle too short for its header: %v", ErrCorrupt, err)
	}
	if !bytes.Equal(magic, bundleMagic) {
		return nil, fmt.Errorf("%w: not a Linesight bank bundle (bad magic %q)", ErrCorrupt, magic)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(tr, hdr[:4]); err != nil {
		return nil, fmt.Errorf("%w: bundle truncated in its header: %v", ErrCorrupt, err)
	}
	ml := binary.BigEndian.Uint32(hdr[:4])
	if ml == 0 || ml > maxMetaBytes {
		return nil, fmt.Errorf("%w: bundle metadata length %d outside 1..%d", ErrCorrupt, ml, maxMetaBytes)
	}
	metaRaw := make([]byte, ml)
	if _, err := io.ReadFull(tr, metaRaw); err != nil {
		return nil, fmt.Errorf("%w: bundle truncated in its metadata: %v", ErrCorrupt, err)
	}
	meta, err := decodeMeta(metaRaw)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if _, err := io.ReadFull(tr, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: bundle truncated before its vectors: %v", ErrCorrupt, err)
	}
	vl := binary.BigEndian.Uint64(hdr[:])
	if vl != uint64(meta.Count)*uint64(meta.Dim) {
		return nil, fmt.Errorf("%w: bundle holds %d vector bytes, its metadata says %d×%d", ErrCorrupt, vl, meta.Count, meta.Dim)
	}
	vec := make([]byte, vl)
	if _, err := io.ReadFull(tr, vec); err != nil {
		return nil, fmt.Errorf("%w: bundle truncated in its vectors: %v", ErrCorrupt, err)
	}
	sum := h.Sum(nil)
	got := make([]byte, len(sum))
	if _, err := io.ReadFull(r, got); err != nil {
		return nil, fmt.Errorf("%w: bundle truncated in its checksum: %v", ErrCorrupt, err)
	}
	if !bytes.Equal(got, sum) {
		return nil, fmt.Errorf("%w: bundle checksum mismatch (damaged in transfer?)", ErrCorrupt)
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return nil, fmt.Errorf("%w: trailing data after the bundle", ErrCorrupt)
	}
	b := &Bank{Meta: *meta, Vectors: int8sOf(vec)}
	if err := b.check(); err != nil {
		return nil, err
	}
	return b, nil
}
