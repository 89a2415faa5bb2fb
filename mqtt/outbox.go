package mqtt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
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
	dropped    [2]uint64 // results, maps
}

// Kinds of outbox entries.
const (
	KindResult byte = 0 // results and other small messages
	KindMap    byte = 1 // anomaly-map images
)

var bucketOutbox = []byte("outbox")

// OpenOutbox opens (or creates) the outbox file.
func OpenOutbox(path string, maxResults, maxMaps int) (*Outbox, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("mqtt: outbox %s: %w", path, err)
	}
	o := &Outbox{db: db, maxResults: maxResults, maxMaps: maxMaps}
	err = db.Update(func(tx *bolt.Tx) error {
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

// Close closes the file.
func (o *Outbox) Close() error { return o.db.Close() }

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
// result, verdict and score), making room by the drop policy.
func (o *Outbox) Add(ms ...*Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, m := range ms {
			if m.Kind == KindMap && o.maxMaps == 0 {
				o.dropped[KindMap]++
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
			if m.Kind == KindMap {
				o.maps++
			} else {
				o.results++
			}
			// Over a bound: the oldest maps go first, then the oldest results.
			for o.maps > o.maxMaps || o.results > o.maxResults {
				kind := KindMap
				if o.maps == 0 {
					kind = KindResult
				}
				if !o.dropOldest(b, kind) {
					break
				}
			}
		}
		return nil
	})
}

// dropOldest deletes the oldest entry of kind.
func (o *Outbox) dropOldest(b *bolt.Bucket, kind byte) bool {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		kk := KindResult
		if len(v) > 0 && v[0] == KindMap {
			kk = KindMap
		}
		if kk != kind {
			continue
		}
		if err := c.Delete(); err != nil {
			return false
		}
		if kind == KindMap {
			o.maps--
		} else {
			o.results--
		}
		o.dropped[kind]++
		return true
	}
	return false
}

// Len returns the queued results and maps.
func (o *Outbox) Len() (results, maps int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.results, o.maps
}

// Dropped returns how many results and maps were dropped.
func (o *Outbox) Dropped() (results, maps uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped[KindResult], o.dropped[KindMap]
}

// Peek returns the oldest message, or nil.
func (o *Outbox) Peek() (*Message, error) {
	var m *Message
	err := o.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketOutbox).Cursor().First()
		if k == nil {
			return nil
		}
		var err error
		m, err = decode(k, v)
		return err
	})
	return m, err
}

// Remove deletes a delivered message.
func (o *Outbox) Remove(m *Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.db.Update(func(tx *bolt.Tx) error {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], m.Key)
		b := tx.Bucket(bucketOutbox)
		if b.Get(k[:]) == nil {
			return nil // dropped meanwhile
		}
		if m.Kind == KindMap {
			o.maps--
		} else {
			o.results--
		}
		return b.Delete(k[:])
	})
}
