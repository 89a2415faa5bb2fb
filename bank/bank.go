package bank

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
)

// Errors that callers can test with errors.Is.
var (
	// ErrCorrupt: stored or received bank data fails its checks.
	ErrCorrupt = errors.New("bank: corrupt")
	// ErrFormat: the data was written in a format this build does not read.
	ErrFormat = errors.New("bank: unsupported format")
	// ErrNotFound: no such version, or no active version.
	ErrNotFound = errors.New("bank: not found")
)

// Bank is one memory bank: Count int8 vectors of Dim values (row-major),
// their squared norms, and the metadata that says how to use them.
type Bank struct {
	Meta    Meta
	Vectors []int8
	// Norms[i] is the squared length of vector i in int8 units.
	Norms []int32
}

// New wraps vectors (Count×Dim from meta) into a bank, filling in the
// checksum and norms. It takes ownership of vectors.
func New(meta Meta, vectors []int8) (*Bank, error) {
	meta.Format = FormatVersion
	if meta.Dim <= 0 || len(vectors)%meta.Dim != 0 {
		return nil, fmt.Errorf("bank: %d values are not whole vectors of %d", len(vectors), meta.Dim)
	}
	meta.Count = len(vectors) / meta.Dim
	meta.SHA256 = Checksum(vectors)
	b := &Bank{Meta: meta, Vectors: vectors}
	if err := meta.Validate(); err != nil {
		return nil, err
	}
	b.Norms = norms(vectors, meta.Dim)
	return b, nil
}

// check verifies vectors against meta (sizes, checksum) and fills Norms.
func (b *Bank) check() error {
	if err := b.Meta.Validate(); err != nil {
		return err
	}
	if len(b.Vectors) != b.Meta.Count*b.Meta.Dim {
		return fmt.Errorf("%w: %d vector bytes, meta says %d×%d", ErrCorrupt, len(b.Vectors), b.Meta.Count, b.Meta.Dim)
	}
	if got := Checksum(b.Vectors); got != b.Meta.SHA256 {
		return fmt.Errorf("%w: vectors have sha256 %s, meta says %s", ErrCorrupt, got, b.Meta.SHA256)
	}
	b.Norms = norms(b.Vectors, b.Meta.Dim)
	return nil
}

// Checksum is the hex SHA-256 of int8 vectors.
func Checksum(v []int8) string {
	s := sha256.Sum256(bytesOf(v))
	return hex.EncodeToString(s[:])
}

// Row returns vector i.
func (b *Bank) Row(i int) []int8 { return b.Vectors[i*b.Meta.Dim : (i+1)*b.Meta.Dim] }

// Quantize writes round(x/scale), saturated to [-127, 127], into q.
// Symmetric int8 (no -128) keeps negation exact.
func Quantize(x []float32, scale float32, q []int8) {
	inv := 1 / float64(scale)
	for i, v := range x {
		r := math.RoundToEven(float64(v) * inv)
		q[i] = int8(max(-127, min(127, r)))
	}
}

// ScaleFor returns the int8 scale that represents every value of x without
// clipping (max |x| / 127), or 1 if x is all zeros.
func ScaleFor(x []float32) float32 { return ScaleOfMax(MaxAbs(x)) }

// MaxAbs is the largest |v| of x (0 for none; NaN if x holds a NaN). The
// maximum of parts' MaxAbs is the whole's, so a scale can be found from
// statistics kept while the parts stream by (patchcore.Build).
func MaxAbs(x []float32) float32 {
	var m float32
	for _, v := range x {
		m = max(m, v, -v)
	}
	return m
}

// ScaleOfMax is ScaleFor of values whose MaxAbs is m.
func ScaleOfMax(m float32) float32 {
	if !(m > 0) || math.IsInf(float64(m), 0) {
		return 1
	}
	return m / 127
}

func norms(v []int8, dim int) []int32 {
	n := make([]int32, len(v)/dim)
	for i := range n {
		var s int32
		for _, x := range v[i*dim : (i+1)*dim] {
			s += int32(x) * int32(x)
		}
		n[i] = s
	}
	return n
}
