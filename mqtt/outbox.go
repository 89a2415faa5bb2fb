package mqtt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/linesight/linesight/internal/boltfile"
)

// Outbox keeps messages that could not be published while the broker was
// away, in a bbolt file, and gives them back in order. It is bounded: when
// full, the oldest maps go first, then the oldest results; drops are
// counted.
type Outbox struct {
	db         *bolt.DB
	mu         sync.Mutex
	maxResults int
	maxMaps    int
	results    int
	maps       int
	dropped    [2]uint64         // results, maps
	reasons    map[string]uint64 // drops by reason: DropFull, DropWrite
	failing    error             // the last write's error, nil once one succeeds
	floor      uint64            // Lease never hands out numbers at or below it
	// sess is the MQTT session (store.go): the messages handed to paho.
	sess *session
	// leased: keys at or below it are being handed over (Peek); the drop
	// policy leaves them alone, so a message is never both dropped and
	// delivered.
	leased uint64
	// handed: queue entries handed over whose removal from the file
	// failed (a full disk); skipped by Peek, removed at the next write.
	handed   map[uint64]bool
	tidyDone func()
}

// ErrDamaged: the outbox file is damaged (OpenOutbox checked it).
var ErrDamaged = errors.New("mqtt: the outbox file is damaged")

// floorKey holds the counters' floor in bucketCounters (see SetFloor).
var floorKey = []byte("\x00floor")

// Why messages were dropped.
const (
	DropFull  = "full"  // over max_results or max_maps: the oldest went
	DropWrite = "write" // the outbox could not be written (disk full, I/O error)
	// DropDamaged: an entry in the file did not decode (a damaged disk).
	DropDamaged = "damaged"
)

// Kinds of outbox entries.
const (
	KindResult byte = 0 // results and other small messages
	KindMap    byte = 1 // anomaly-map images
)

var bucketOutbox = []byte("outbox")

// OpenOutbox opens (or creates) the outbox file.
func OpenOutbox(path string, maxResults, maxMaps int) (*Outbox, error) {
	var db *bolt.DB
	// bbolt maps the file and trusts its page pointers: a damaged file
	// would fault the process. Opening and checking it here turns that into
	// ErrDamaged before the station relies on it.
	err := boltfile.Guard(ErrDamaged, func() error {
		if err := boltfile.CheckLength(path); err != nil {
			return fmt.Errorf("%w: %v", ErrDamaged, err)
		}
		var err error
		if db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second}); err != nil {
			if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
				return fmt.Errorf("%w: %v", ErrDamaged, err)
			}
			return err
		}
		return db.View(func(tx *bolt.Tx) error {
			if fi, err := os.Stat(path); err == nil && tx.Size() > fi.Size() {
				return fmt.Errorf("%w: %d bytes, its pages need %d (truncated)", ErrDamaged, fi.Size(), tx.Size())
			}
			// Read every entry here (a bad page pointer faults in this
			// goroutine, under guard), then bbolt's own page check.
			err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
				return b.ForEach(func(_, _ []byte) error { return nil })
			})
			if err != nil {
				return fmt.Errorf("%w: %v", ErrDamaged, err)
			}
			for e := range tx.Check() {
				return fmt.Errorf("%w: %v", ErrDamaged, e)
			}
			return nil
		})
	})
	if err != nil {
		if db != nil {
			db.Close()
		}
		return nil, fmt.Errorf("mqtt: outbox %s: %w", path, err)
	}
	o := &Outbox{db: db, maxResults: maxResults, maxMaps: maxMaps, reasons: map[string]uint64{}, handed: map[uint64]bool{}}
	err = db.Update(func(tx *bolt.Tx) error {
		sess, bad, err := loadSession(tx, o)
		if err != nil {
			return err
		}
		o.sess = sess
		// A damaged session entry is dropped and counted like a damaged
		// queue entry.
		o.reasons[DropDamaged] += uint64(bad)
		o.dropped[KindResult] += uint64(bad)
		if c := tx.Bucket(bucketCounters); c != nil {
			if v := c.Get(floorKey); len(v) == 8 {
				o.floor = binary.BigEndian.Uint64(v)
			}
		}
		b, err := tx.CreateBucketIfNotExists(bucketOutbox)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) > 0 && v[0] == KindMap {
				o.maps++
			} else {
				o.results++
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mqtt: outbox %s: %w", path, err)
	}
	return o, nil
}

// OpenOrRecoverOutbox is OpenOutbox; when the file is damaged it is moved
// aside (kept for recovery, named in aside) and a new outbox started, whose
// counters begin above the wall clock in milliseconds: the numbers handed
// out from the damaged file are unknown, and a station cannot have handed
// out more than one per millisecond since 1970, so none is reused.
func OpenOrRecoverOutbox(path string, maxResults, maxMaps int) (o *Outbox, aside string, err error) {
	o, err = OpenOutbox(path, maxResults, maxMaps)
	if !errors.Is(err, ErrDamaged) {
		return o, "", err
	}
	aside = path + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, "", fmt.Errorf("%w (moving it aside: %v)", err, rerr)
	}
	if o, err = OpenOutbox(path, maxResults, maxMaps); err != nil {
		return nil, aside, err
	}
	if err := o.SetFloor(uint64(time.Now().UnixMilli())); err != nil {
		o.Close()
		return nil, aside, err
	}
	return o, aside, nil
}

// SetFloor makes every counter of Lease continue above floor (persisted).
func (o *Outbox) SetFloor(floor uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	floor = max(floor, o.floor)
	err := o.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCounters)
		if err != nil {
			return err
		}
		return b.Put(floorKey, binary.BigEndian.AppendUint64(nil, floor))
	})
	if err != nil {
		return fmt.Errorf("mqtt: outbox counters: %w", err)
	}
	o.floor = floor
	return nil
}

// Close closes the file, removing the session's completed entries first.
func (o *Outbox) Close() error {
	o.mu.Lock()
	o.sess.mu.Lock()
	if len(o.sess.gone) > 0 || len(o.handed) > 0 {
		if o.db.Update(o.tidyLocked) == nil {
			o.tidied()
		}
	}
	o.sess.mu.Unlock()
	o.mu.Unlock()
	return o.db.Close()
}

// tidyLocked removes, inside a write made anyway, the session entries
// completed since the last write and the queue entries handed over whose
// removal failed. Called with o.mu and o.sess.mu held; tidied clears the
// lists after the transaction committed.
func (o *Outbox) tidyLocked(tx *bolt.Tx) error {
	b := tx.Bucket(bucketOutbox)
	var k [8]byte
	for key := range o.handed {
		binary.BigEndian.PutUint64(k[:], key)
		if err := b.Delete(k[:]); err != nil {
			return err
		}
	}
	done, err := o.sess.tidy(tx)
	if err == nil {
		o.tidyDone = done
	}
	return err
}

// tidied: the write that called tidyLocked committed. Called with o.mu and
// o.sess.mu held.
func (o *Outbox) tidied() {
	clear(o.handed)
	if o.tidyDone != nil {
		o.tidyDone()
		o.tidyDone = nil
	}
}

// Message is one queued publication.
type Message struct {
	Key      uint64
	Kind     byte
	Topic    string
	Retained bool
	Payload  []byte
}

func encode(m *Message) []byte {
	b := make([]byte, 0, 4+len(m.Topic)+len(m.Payload))
	b = append(b, m.Kind)
	if m.Retained {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Topic)))
	b = append(b, m.Topic...)
	return append(b, m.Payload...)
}

func decode(k, v []byte) (*Message, error) {
	if len(k) != 8 || len(v) < 4 {
		return nil, errors.New("mqtt: damaged outbox entry")
	}
	n := int(binary.BigEndian.Uint16(v[2:4]))
	if len(v) < 4+n {
		return nil, errors.New("mqtt: damaged outbox entry")
	}
	return &Message{Key: binary.BigEndian.Uint64(k), Kind: v[0], Retained: v[1] == 1, Topic: string(v[4 : 4+n]),
		Payload: append([]byte(nil), v[4+n:]...)}, nil
}

// Add queues messages in one transaction (one disk sync for a frame's
// result, verdict and score), making room by the drop policy. When the
// transaction fails (a full disk), the messages count as dropped for
// DropWrite, and the counts are read back from the file: a failed
// transaction changes nothing in it.
func (o *Outbox) Add(ms ...*Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sess.mu.Lock()
	defer o.sess.mu.Unlock()
	results, nmaps := o.results, o.maps
	var full [2]uint64
	err := o.db.Update(func(tx *bolt.Tx) error {
		if err := o.tidyLocked(tx); err != nil {
			return err
		}
		b := tx.Bucket(bucketOutbox)
		for _, m := range ms {
			if m.Kind == KindMap && o.maxMaps == 0 {
				full[KindMap]++
				continue
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], seq)
			if err := b.Put(k[:], encode(m)); err != nil {
				return err
			}
			m.Key = seq // for the caller (Client.Publish); meaningless if the transaction fails
			if m.Kind == KindMap {
				nmaps++
			} else {
				results++
			}
			// Over a bound: the oldest nmaps go first, then the oldest results.
			for nmaps > o.maxMaps || results > o.maxResults {
				kind := KindMap
				if nmaps == 0 {
					kind = KindResult
				}
				if !dropOldest(b, kind, o.leased) {
					break
				}
				if kind == KindMap {
					nmaps--
				} else {
					results--
				}
				full[kind]++
			}
		}
		return nil
	})
	if err != nil {
		for _, m := range ms {
			o.dropped[m.Kind&1]++
			o.reasons[DropWrite]++
		}
		o.failing = err
		o.recount()
		return fmt.Errorf("mqtt: outbox: %d messages dropped: %w", len(ms), err)
	}
	o.failing = nil
	o.tidied()
	o.results, o.maps = results, nmaps
	for k, n := range full {
		o.dropped[k] += n
		o.reasons[DropFull] += n
	}
	return nil
}

// recount reads the queued counts back from the file. Called with o.mu held.
func (o *Outbox) recount() {
	o.results, o.maps = o.queuedCounts()
}

// queuedCounts counts the queue in the file, less the entries already
// handed over (o.handed). Called with o.mu held.
func (o *Outbox) queuedCounts() (results, maps int) {
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			if len(k) == 8 && o.handed[binary.BigEndian.Uint64(k)] {
				return nil
			}
			if len(v) > 0 && v[0] == KindMap {
				maps++
			} else {
				results++
			}
			return nil
		})
	})
	if err != nil {
		return o.results, o.maps
	}
	return results, maps
}

// Failing is the error of the last write, nil when it succeeded.
func (o *Outbox) Failing() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failing
}

// DroppedBy returns the messages dropped by reason (DropFull, DropWrite).
func (o *Outbox) DroppedBy() map[string]uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.reasons)
}

// dropOldest deletes the oldest entry of kind above leased (the ones at or
// below it are being handed over).
func dropOldest(b *bolt.Bucket, kind byte, leased uint64) bool {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) == 8 && binary.BigEndian.Uint64(k) <= leased {
			continue
		}
		kk := KindResult
		if len(v) > 0 && v[0] == KindMap {
			kk = KindMap
		}
		if kk != kind {
			continue
		}
		return c.Delete() == nil
	}
	return false
}

// Len returns the results and maps not delivered yet: queued, or handed
// to the MQTT session and not yet acknowledged by the broker (PUBCOMP).
func (o *Outbox) Len() (results, maps int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sess.mu.Lock()
	defer o.sess.mu.Unlock()
	return o.results + o.sess.inflight[KindResult], o.maps + o.sess.inflight[KindMap]
}

// Queued returns the results and maps waiting in the queue (not handed
// to the MQTT session yet).
func (o *Outbox) Queued() (results, maps int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.results, o.maps
}

// InFlight returns the results and maps handed to the MQTT session that
// the broker has not completed yet (sent, or to be sent again with their
// packet ids on the next connection).
func (o *Outbox) InFlight() (results, maps int) {
	o.sess.mu.Lock()
	defer o.sess.mu.Unlock()
	return o.sess.inflight[KindResult], o.sess.inflight[KindMap]
}

// Delivered counts the messages the broker completed (QoS 2 PUBCOMP)
// since the outbox was opened.
func (o *Outbox) Delivered() uint64 {
	o.sess.mu.Lock()
	defer o.sess.mu.Unlock()
	return o.sess.delivered
}

// Dropped returns how many results and maps were dropped.
func (o *Outbox) Dropped() (results, maps uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped[KindResult], o.dropped[KindMap]
}

// Peek returns up to n of the oldest messages, oldest first, and leases
// them: the drop policy leaves them alone until Unlease (they are being
// handed to the MQTT session). An entry that does not decode (a damaged
// file) is deleted and counted as dropped for DropDamaged: left in place
// it would block every message behind it.
func (o *Outbox) Peek(n int) ([]*Message, error) {
	var ms []*Message
	var bad [][]byte
	o.mu.Lock()
	handed := maps.Clone(o.handed)
	o.mu.Unlock()
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && len(ms) < n; k, v = c.Next() {
			if len(k) == 8 && handed[binary.BigEndian.Uint64(k)] {
				continue
			}
			m, err := decode(k, v)
			if err != nil {
				bad = append(bad, append([]byte(nil), k...))
				continue
			}
			ms = append(ms, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mqtt: outbox: %w", err)
	}
	if len(ms) > 0 {
		o.mu.Lock()
		o.leased = ms[len(ms)-1].Key
		o.mu.Unlock()
	}
	if len(bad) > 0 {
		o.mu.Lock()
		defer o.mu.Unlock()
		err := o.db.Update(func(tx *bolt.Tx) error {
			for _, k := range bad {
				if err := tx.Bucket(bucketOutbox).Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		o.reasons[DropDamaged] += uint64(len(bad))
		o.dropped[KindResult] += uint64(len(bad)) // its kind is unknown: count it where it matters most
		o.recount()
		if err != nil {
			o.failing = err
			return ms, fmt.Errorf("mqtt: outbox: removing %d damaged entries: %w", len(bad), err)
		}
		return ms, fmt.Errorf("mqtt: outbox: %d damaged entries dropped", len(bad))
	}
	return ms, nil
}

// Unlease ends the lease of Peek.
func (o *Outbox) Unlease() {
	o.mu.Lock()
	o.leased = 0
	o.mu.Unlock()
}

// Remove deletes delivered messages, in one transaction (one disk sync for
// a whole batch: one per message would cap the drain rate below the frame
// rate of a fast station, and a backlog would never clear).
func (o *Outbox) Remove(ms ...*Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var gone [2]int
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		var k [8]byte
		for _, m := range ms {
			binary.BigEndian.PutUint64(k[:], m.Key)
			if b.Get(k[:]) == nil {
				continue // dropped meanwhile
			}
			if err := b.Delete(k[:]); err != nil {
				return err
			}
			gone[m.Kind&1]++
		}
		return nil
	})
	if err != nil {
		o.failing = err
		o.recount()
		return fmt.Errorf("mqtt: outbox: %w", err)
	}
	o.results -= gone[KindResult]
	o.maps -= gone[KindMap]
	return nil
}

var (
	bucketCounters = []byte("counters")
	bucketSeen     = []byte("seen")
)

// Lease reserves n numbers of the persistent counter name and returns the
// first: numbers handed out are never handed out again, across restarts
// and crashes (a crash skips at most the rest of a lease).
func (o *Outbox) Lease(name string, n uint64) (uint64, error) {
	o.mu.Lock()
	floor := o.floor
	o.mu.Unlock()
	var first uint64
	err := o.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCounters)
		if err != nil {
			return err
		}
		if v := b.Get([]byte(name)); len(v) == 8 {
			first = binary.BigEndian.Uint64(v)
		}
		first = max(first, floor) + 1
		return b.Put([]byte(name), binary.BigEndian.AppendUint64(nil, first+n-1))
	})
	if err != nil {
		return 0, fmt.Errorf("mqtt: outbox counter %s: %w", name, err)
	}
	return first, nil
}

// maxSeen bounds the remembered keys; the oldest go first.
const maxSeen = 100000

// Remember records key (e.g. a file read by a folder camera), so that Seen
// knows it after a restart.
func (o *Outbox) Remember(key string) error {
	return o.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSeen)
		if err != nil {
			return err
		}
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put([]byte(key), binary.BigEndian.AppendUint64(nil, n)); err != nil {
			return err
		}
		if n%1000 != 0 || b.Stats().KeyN <= maxSeen {
			return nil
		}
		// Trim to the newest maxSeen/2: collect first, then delete.
		var old [][]byte
		b.ForEach(func(k, v []byte) error {
			if len(v) != 8 || binary.BigEndian.Uint64(v)+maxSeen/2 < n {
				old = append(old, k)
			}
			return nil
		})
		for _, k := range old {
			b.Delete(k)
		}
		return nil
	})
}

// Seen reports whether key was remembered.
func (o *Outbox) Seen(key string) bool {
	seen := false
	o.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSeen); b != nil {
			seen = b.Get([]byte(key)) != nil
		}
		return nil
	})
	return seen
}
