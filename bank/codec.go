package bank

import (
	"bytes"
	"encoding/json"
	"fmt"
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
