package bank

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/linesight/linesight/internal/boltfile"
)

// Store keeps bank versions in a bbolt database:
//
//	versions/<version, 8 bytes big-endian>/meta       JSON Meta
//	versions/<version, 8 bytes big-endian>/<chunk, 4> vector bytes
//	state/active                                      active version
//	state/history                                     JSON []Activation, for Rollback
//	state/serial                                      last bundle serial taken, 8 bytes
//	audit/<sequence, 8 bytes big-endian>              JSON AuditEntry
//
// Every change is one bbolt transaction (Apply), so a version is stored
// completely or not at all, activation never points at a half-written
// bank, and the audit log records exactly the changes that happened.
type Store struct {
	db   *bolt.DB
	path string
}

var (
	bucketVersions = []byte("versions")
	bucketState    = []byte("state")
	keyMeta        = []byte("meta")
	keyActive      = []byte("active")
	keyHistory     = []byte("history")
	keySerial      = []byte("serial")
)

// Activation is one entry of the activation history.
type Activation struct {
	Version uint64    `json:"version"`
	At      time.Time `json:"at"`
}

// OpenStore opens (or, unless readOnly, creates) the bank database. A
// read-only open shares the file with a running daemon; a writable one
// waits at most two seconds for the lock. A damaged file gives an error
// wrapping ErrCorrupt, never a crash (see guard); Check looks deeper.
func OpenStore(path string, readOnly bool) (*Store, error) {
	var db *bolt.DB
	err := boltfile.Guard(ErrCorrupt, func() error {
		if err := boltfile.CheckLength(path); err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: readOnly})
		if err != nil {
			return err
		}
		// A file shorter than its own page count (truncated, or replaced
		// by a shorter one) would fault on its last pages.
		err = db.View(func(tx *bolt.Tx) error {
			fi, err := os.Stat(path)
			if err == nil && tx.Size() > fi.Size() {
				return fmt.Errorf("%w: the file has %d bytes, its pages need %d (truncated)", ErrCorrupt, fi.Size(), tx.Size())
			}
			return nil
		})
		if err != nil {
			db.Close()
		}
		return err
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("bank: %s is locked by another process (a running daemon?): %w", path, err)
		}
		if !errors.Is(err, ErrCorrupt) && (errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch)) {
			err = fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("bank: opening %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if !readOnly {
		err = s.update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketVersions, bucketState, bucketAudit} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("bank: initialising %s: %w", path, err)
		}
	}
	return s, nil
}

func (s *Store) view(f func(*bolt.Tx) error) error {
	return boltfile.Guard(ErrCorrupt, func() error { return s.db.View(f) })
}

func (s *Store) update(f func(*bolt.Tx) error) error {
	return boltfile.Guard(ErrCorrupt, func() error { return s.db.Update(f) })
}

// Check checks the whole file: first a walk over every bucket and key that
// reads every reachable page in this goroutine (guarded: a page pointer out
// of the file is an error, not a fault), then bbolt's own consistency check
// (free pages, page ownership), then the metadata of every version and the
// recipes' records. Errors wrap ErrCorrupt.
func (s *Store) Check() error {
	err := s.view(func(tx *bolt.Tx) error {
		if err := walk(tx); err != nil {
			return err
		}
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
			if len(errs) == 10 {
				break
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w: %v", ErrCorrupt, errors.Join(errs...))
		}
		return nil
	})
	if err == nil {
		_, err = s.List()
	}
	if err == nil {
		_, err = s.RecipeBanks()
	}
	if err != nil {
		return fmt.Errorf("bank: %s: %w", s.path, err)
	}
	return nil
}

// walk visits every key of every bucket in tx.
func walk(tx *bolt.Tx) error {
	var visit func(b *bolt.Bucket, depth int) error
	visit = func(b *bolt.Bucket, depth int) error {
		if depth > 8 {
			return fmt.Errorf("%w: buckets nested %d deep", ErrCorrupt, depth)
		}
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				nb := b.Bucket(k)
				if nb == nil {
					return fmt.Errorf("%w: key %x is neither a value nor a bucket", ErrCorrupt, k)
				}
				return visit(nb, depth+1)
			}
			return nil
		})
	}
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return visit(b, 1) })
}

// MoveAside renames a damaged database file out of the way (to
// <path>.damaged-<time>), so that a new one can be made, and returns the
// new name. The file must not be open.
func MoveAside(path string) (string, error) {
	to := fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("bank: %w", err)
	}
	return to, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.path }

func vkey(v uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], v)
	return k[:]
}

func ckey(i int) []byte {
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], uint32(i))
	return k[:]
}

// Change is one atomic change to the store: any of storing a new version,
// activating a version (the new one, or Version) or rolling back, the
// serial of the bundle it came from, and the audit entry that records it.
// Apply makes all of it happen in one transaction, or none of it.
type Change struct {
	Put      *Bank  // store as a new version
	Activate bool   // activate Put's version, or Version when Put is nil
	Version  uint64 // the version to activate when Put is nil
	Rollback bool   // re-activate the version before the current one
	// Serial, when not 0, is recorded as the last bundle serial taken.
	Serial uint64
	// Audit is appended to the audit log; its Version is filled in when 0.
	Audit *AuditEntry
	// Recipe, when not "", is recorded as following RecipeBank (see
	// RecipeBanks).
	Recipe     string
	RecipeBank RecipeBank
}

// Apply makes c in one transaction and returns the version it stored or
// activated (0 when it did neither).
func (s *Store) Apply(c Change) (uint64, error) {
	if c.Put != nil {
		if err := c.Put.check(); err != nil {
			return 0, err
		}
	}
	var v uint64
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		if c.Put != nil {
			if v, err = putIn(tx, c.Put); err != nil {
				return err
			}
		}
		switch {
		case c.Activate:
			if c.Put == nil {
				v = c.Version
			}
			if err := activateIn(tx, v); err != nil {
				return err
			}
		case c.Rollback:
			st := tx.Bucket(bucketState)
			hist, err := history(st)
			if err != nil {
				return err
			}
			if v, hist, err = rollbackTarget(tx, hist); err != nil {
				return err
			}
			if err := setActive(st, v, hist); err != nil {
				return err
			}
		}
		if c.Serial != 0 {
			if err := tx.Bucket(bucketState).Put(keySerial, vkey(c.Serial)); err != nil {
				return err
			}
		}
		if c.Recipe != "" {
			if _, err := versionBucket(tx, c.RecipeBank.Version); err != nil {
				return err
			}
			if err := putRecipe(tx, c.Recipe, c.RecipeBank); err != nil {
				return err
			}
		}
		if c.Audit != nil {
			e := *c.Audit
			if e.Version == 0 {
				e.Version = v
			}
			return appendAudit(tx, e)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bank: %s: %w", s.path, err)
	}
	if c.Put != nil {
		c.Put.Meta.Version = v
	}
	return v, nil
}

// Put stores b as a new version and returns its number (b.Meta.Version is
// set too). It does not activate it.
func (s *Store) Put(b *Bank) (uint64, error) {
	return s.Apply(Change{Put: b})
}

// PutActive stores b as a new version and activates it in the same
// transaction: a crash leaves either the old state or the new bank stored
// and active, never the new bank stored but inactive.
func (s *Store) PutActive(b *Bank) (uint64, error) {
	return s.Apply(Change{Put: b, Activate: true})
}

// putIn stores b as the next version inside tx.
func putIn(tx *bolt.Tx, b *Bank) (uint64, error) {
	vs := tx.Bucket(bucketVersions)
	v, err := vs.NextSequence()
	if err != nil {
		return 0, err
	}
	meta := b.Meta
	meta.Version = v
	raw, err := encodeMeta(&meta)
	if err != nil {
		return 0, err
	}
	vb, err := vs.CreateBucket(vkey(v))
	if err != nil {
		return 0, err
	}
	if err := vb.Put(keyMeta, raw); err != nil {
		return 0, err
	}
	data := bytesOf(b.Vectors)
	for i := 0; i*ChunkSize < len(data); i++ {
		if err := vb.Put(ckey(i), data[i*ChunkSize:min(len(data), (i+1)*ChunkSize)]); err != nil {
			return 0, err
		}
	}
	return v, nil
}

// Serial is the serial of the last bundle taken (0: none).
func (s *Store) Serial() (uint64, error) {
	var v uint64
	err := s.view(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketState)
		if st == nil {
			return nil
		}
		raw := st.Get(keySerial)
		if raw == nil {
			return nil
		}
		if len(raw) != 8 {
			return fmt.Errorf("%w: serial record of %d bytes", ErrCorrupt, len(raw))
		}
		v = binary.BigEndian.Uint64(raw)
		return nil
	})
	return v, err
}

// Get loads and checks version v; version 0 is the active one.
func (s *Store) Get(v uint64) (*Bank, error) {
	v, err := s.Resolve(v)
	if err != nil {
		return nil, err
	}
	var b *Bank
	err = s.view(func(tx *bolt.Tx) error {
		vb, err := versionBucket(tx, v)
		if err != nil {
			return err
		}
		meta, err := decodeMeta(vb.Get(keyMeta))
		if err != nil {
			return err
		}
		if meta.Version != v {
			return fmt.Errorf("%w: stored under version %d but says %d", ErrCorrupt, v, meta.Version)
		}
		var chunks [][]byte
		c := vb.Cursor()
		for k, val := c.First(); k != nil; k, val = c.Next() {
			if string(k) == string(keyMeta) {
				continue
			}
			if len(k) != 4 || binary.BigEndian.Uint32(k) != uint32(len(chunks)) || val == nil {
				return fmt.Errorf("%w: unexpected key %x in version %d", ErrCorrupt, k, v)
			}
			chunks = append(chunks, val) // valid only inside the transaction; assemble copies
		}
		b, err = assemble(meta, chunks)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bank: version %d in %s: %w", v, s.path, err)
	}
	return b, nil
}

func versionBucket(tx *bolt.Tx, v uint64) (*bolt.Bucket, error) {
	vs := tx.Bucket(bucketVersions)
	if vs == nil {
		return nil, fmt.Errorf("%w: no banks stored yet", ErrNotFound)
	}
	vb := vs.Bucket(vkey(v))
	if vb == nil {
		return nil, fmt.Errorf("%w: no version %d", ErrNotFound, v)
	}
	return vb, nil
}

// List returns the metadata of every version, oldest first. Versions whose
// metadata does not decode are reported by error after the others.
func (s *Store) List() ([]Meta, error) {
	var out []Meta
	var errs []error
	err := s.view(func(tx *bolt.Tx) error {
		vs := tx.Bucket(bucketVersions)
		if vs == nil {
			return nil
		}
		return vs.ForEachBucket(func(k []byte) error {
			if len(k) != 8 {
				errs = append(errs, fmt.Errorf("%w: version key %x", ErrCorrupt, k))
				return nil
			}
			m, err := decodeMeta(vs.Bucket(k).Get(keyMeta))
			if err != nil {
				errs = append(errs, fmt.Errorf("version %d: %w", binary.BigEndian.Uint64(k), err))
				return nil
			}
			out = append(out, *m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bank: listing %s: %w", s.path, err)
	}
	return out, errors.Join(errs...)
}

// ActiveVersion returns the active version, or ErrNotFound.
func (s *Store) ActiveVersion() (uint64, error) {
	var v uint64
	err := s.view(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketState)
		if st == nil {
			return fmt.Errorf("%w: no active bank in %s", ErrNotFound, s.path)
		}
		raw := st.Get(keyActive)
		if raw == nil {
			return fmt.Errorf("%w: no active bank in %s", ErrNotFound, s.path)
		}
		if len(raw) != 8 {
			return fmt.Errorf("%w: active version record of %d bytes", ErrCorrupt, len(raw))
		}
		v = binary.BigEndian.Uint64(raw)
		return nil
	})
	return v, err
}

// Resolve returns v, or the active version when v is 0: the one place
// where "version 0" means "whichever is active".
func (s *Store) Resolve(v uint64) (uint64, error) {
	if v != 0 {
		return v, nil
	}
	return s.ActiveVersion()
}

// Activate makes version v active after checking that it loads. The
// previously active version goes onto the history for Rollback.
func (s *Store) Activate(v uint64) error {
	return s.ActivateAudited(v, nil)
}

// ActivateAudited is Activate recording e in the audit log in the same
// transaction.
func (s *Store) ActivateAudited(v uint64, e *AuditEntry) error {
	if _, err := s.Get(v); err != nil {
		return err
	}
	if _, err := s.Apply(Change{Activate: true, Version: v, Audit: e}); err != nil {
		return fmt.Errorf("bank: activating version %d: %w", v, err)
	}
	return nil
}

// activateIn makes version v active inside tx, pushing the previously
// active version onto the history.
func activateIn(tx *bolt.Tx, v uint64) error {
	if _, err := versionBucket(tx, v); err != nil {
		return err
	}
	st := tx.Bucket(bucketState)
	hist, err := history(st)
	if err != nil {
		return err
	}
	if cur := st.Get(keyActive); len(cur) == 8 {
		if binary.BigEndian.Uint64(cur) == v {
			return nil
		}
		hist = append(hist, Activation{Version: binary.BigEndian.Uint64(cur), At: time.Now().UTC()})
	}
	return setActive(st, v, hist)
}

// RollbackTarget is the version Rollback would activate: the most recent
// earlier activation that is still stored.
func (s *Store) RollbackTarget() (uint64, error) {
	var v uint64
	err := s.view(func(tx *bolt.Tx) error {
		hist, err := history(tx.Bucket(bucketState))
		if err != nil {
			return err
		}
		v, _, err = rollbackTarget(tx, hist)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("bank: rollback: %w", err)
	}
	return v, nil
}

// rollbackTarget pops hist down to its most recent version still stored;
// it returns that version and the history left after it.
func rollbackTarget(tx *bolt.Tx, hist []Activation) (uint64, []Activation, error) {
	for len(hist) > 0 {
		prev := hist[len(hist)-1]
		hist = hist[:len(hist)-1]
		if _, err := versionBucket(tx, prev.Version); err == nil {
			return prev.Version, hist, nil
		}
	}
	return 0, nil, fmt.Errorf("%w: nothing to roll back to (no earlier activation)", ErrNotFound)
}

// Rollback re-activates the version that was active before the current one
// (RollbackTarget) and returns it.
func (s *Store) Rollback() (uint64, error) {
	return s.RollbackAudited(nil)
}

// RollbackAudited is Rollback recording e in the audit log in the same
// transaction.
func (s *Store) RollbackAudited(e *AuditEntry) (uint64, error) {
	v, err := s.Apply(Change{Rollback: true, Audit: e})
	if err != nil {
		return 0, fmt.Errorf("bank: rollback: %w", err)
	}
	if _, err := s.Get(v); err != nil {
		return v, fmt.Errorf("bank: rolled back to version %d, which does not load: %w", v, err)
	}
	return v, nil
}

// History returns the activation history, oldest first.
func (s *Store) History() ([]Activation, error) {
	var h []Activation
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		h, err = history(tx.Bucket(bucketState))
		return err
	})
	return h, err
}

func history(st *bolt.Bucket) ([]Activation, error) {
	if st == nil {
		return nil, nil
	}
	raw := st.Get(keyHistory)
	if raw == nil {
		return nil, nil
	}
	var h []Activation
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("%w: activation history: %v", ErrCorrupt, err)
	}
	return h, nil
}

// maxHistory bounds the rollback history.
const maxHistory = 64

func setActive(st *bolt.Bucket, v uint64, hist []Activation) error {
	if len(hist) > maxHistory {
		hist = hist[len(hist)-maxHistory:]
	}
	raw, err := json.Marshal(hist)
	if err != nil {
		return err
	}
	if err := st.Put(keyHistory, raw); err != nil {
		return err
	}
	return st.Put(keyActive, vkey(v))
}
