// Package boltfile keeps a damaged bbolt database file from killing the
// process: its length is checked before bbolt opens it, and what bbolt does
// with it runs under Guard.
//
// bbolt reads its freelist while opening. On a file shorter than the page
// count its meta pages claim (truncated, or replaced by a shorter copy)
// that read faults past the end of the mapping, inside bolt.Open, after
// bbolt has taken the file's lock, which no error path releases: every
// later open in the process then times out as "locked". Checking the
// length first turns that into a clear error.
package boltfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
)

// ErrTruncated: the file is shorter than its own pages.
var ErrTruncated = errors.New("truncated")

// CheckLength returns an error wrapping ErrTruncated when the bbolt file
// at path is shorter than the page count its meta pages claim; nil when
// it is long enough, absent (a new database), empty, or not recognisably
// bbolt (bbolt reports a bad first meta page itself, without faulting).
//
// The layout read: two meta pages, each a 16-byte page header, then
// magic, version and page size (uint32s at 16, 20, 24) and the high-water
// page id (uint64 at 56).
func CheckLength(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	var hdr [64]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("%w: %d bytes, too short for a database", ErrTruncated, fi.Size())
	}
	const magic = 0xED0CDAED
	pageSize := int64(binary.LittleEndian.Uint32(hdr[24:]))
	if binary.LittleEndian.Uint32(hdr[16:]) != magic || pageSize < 512 || pageSize > 1<<20 {
		return nil
	}
	need := int64(0)
	for i := int64(0); i < 2; i++ {
		var m [64]byte
		if _, err := f.ReadAt(m[:], i*pageSize); err != nil || binary.LittleEndian.Uint32(m[16:]) != magic {
			continue
		}
		need = max(need, int64(binary.LittleEndian.Uint64(m[56:]))*pageSize)
	}
	if need > fi.Size() {
		return fmt.Errorf("%w: %d bytes, its pages need %d", ErrTruncated, fi.Size(), need)
	}
	return nil
}

// Guard runs f, turning a panic or a memory fault inside it into an error
// wrapping damaged. bbolt maps the file into memory and trusts its page
// pointers: a file damaged on disk (or replaced under a running station)
// makes it read outside the mapping, which would otherwise kill the
// process.
func Guard(damaged error, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: the database file is damaged (%v)", damaged, r)
		}
	}()
	return f()
}
