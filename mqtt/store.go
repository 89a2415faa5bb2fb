package mqtt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	bolt "go.etcd.io/bbolt"
)

// session is paho's Store for the station's persistent MQTT session (clean
// session off), kept in the outbox's bbolt file beside the queue, so that
// results are delivered exactly once (QoS 2) across broken connections and
// restarts.
//
// A queued message is handed from the outbox to paho in one transaction:
// paho stores an outbound PUBLISH synchronously inside Publish, called by
// the flusher, and that Put both records the message under its packet id
// and deletes the outbox entry. From then on paho owns it: on every
// reconnect (and after a restart) it sends it again with the same packet
// id, which the broker recognises, and the flusher never publishes it
// again. Get decodes a fresh packet every time, so the copy paho marks DUP
// is never one a writer is serialising (the data race that made the
// previous store keep nothing).
//
// paho v1.5.1 keeps the PUBLISH stored until PUBCOMP and never stores the
// PUBREL it sends on PUBREC, so after a cut between PUBREL and PUBCOMP it
// would send the PUBLISH again, and a broker that already released the
// message (and forgot its id) would deliver it twice. The connection is
// therefore wrapped (watchConn): before a PUBREL goes on the wire its entry
// becomes a release, durably; resume then sends the PUBREL, which the
// broker answers with PUBCOMP whatever it remembers.
//
// That answer is only right while the broker keeps the session. A broker
// that lost it (restarted without persistence, or expired it) says so in
// its CONNACK (session present 0), which watchConn reads: it never got the
// release of a message it still held awaiting one (mosquitto delivers a
// QoS 2 message on its PUBREL), and would answer a PUBREL for it with
// PUBCOMP, losing it. So every released entry becomes a PUBLISH again,
// durably, before paho resumes; release entries therefore keep their
// payload. A message the lost broker had already delivered is then
// delivered once more: with its session gone the broker cannot tell, and
// a repeat (the consumer has its seq) is the lesser harm than a loss.
//
// Entries are keyed in the file by hand-over order (the bucket's
// sequence), so All gives them back in the order they were first sent.
// Inbound packets (QoS 1 at most: the station subscribes at QoS 0) are kept
// in memory only, as paho's memory store would.
type session struct {
	o   *Outbox
	log *slog.Logger
	mu  sync.Mutex
	// out holds the outbound entries by packet id.
	out map[uint16]*sessEntry
	in  map[string]packets.ControlPacket
	// handing is the outbox message the flusher is handing over: the
	// next QoS 2 PUBLISH Put with its topic and payload is it.
	handing    *Message
	took       bool
	publishing bool // a hand-over's Publish has not returned
	// written is signalled when the PUBLISH of an entry went to a
	// connection (sessEntry.written).
	written chan struct{}
	// freed is signalled when an entry completes (Del).
	freed chan struct{}
	// conns counts the connections opened (openWatched), before paho
	// connects and resumes on them.
	conns uint64
	// listed is conns when paho last listed the store (All): to resume on
	// a connection, or, before the first, to reserve ids. paho marks a connection
	// up before it lists: a message handed over in between is in the
	// list and goes out twice, once as new and once resumed (seen under
	// qemu: results 5 6 5 after an outage, mochi delivering both).
	listed uint64
	// reserving: paho is reserving the ids of stored PUBLISH packets
	// before its first connection; releases answer as PUBLISH so that
	// their ids are reserved too (paho reserves PUBLISH ids only, and a
	// new message given a released id the broker still holds would be
	// taken for a repeat of it and dropped).
	reserving bool
	// gone: file keys of completed entries, deleted at the next write
	// (a crash before that only makes paho send a PUBREL the broker
	// answers with PUBCOMP; or, if the broker lost the session too, the
	// message again: a repeat).
	gone        [][]byte
	unreleased  int
	inflight    [2]int // results, maps
	delivered   uint64
	notify      func()
	established bool // a session was set up with the broker from this file
	// forgotten counts the connections whose broker had lost the session
	// while entries were in flight (sessionLost); resent counts the
	// released ones among them, sent again as PUBLISH (possible repeats).
	forgotten, resent uint64
}

// sessEntry is one outbound message paho owns.
type sessEntry struct {
	key      uint64 // its key in the file (hand-over order); 0: not written
	id       uint16
	released bool // PUBREL sent: the broker has the message, unless it lost the session
	written  bool // its PUBLISH went to a connection (this process)
	m        *Message
}

var (
	bucketSession = []byte("session")
	// establishedKey (in bucketCounters) marks a file whose session the
	// broker has: a new file starts a clean one (see Client.Start).
	establishedKey = []byte("\x00session")
	// clientIDKey (in bucketCounters) holds the random client-id suffix.
	clientIDKey = []byte("\x00client-id")
)

// encodeSession lays an entry out as: packet id (2 bytes), flags (1: bit
// 0 released), then the message as the outbox encodes it (a release keeps
// its payload: a broker that lost the session gets it again, see session).
func encodeSession(e *sessEntry) []byte {
	var flags byte
	if e.released {
		flags = 1
	}
	b := binary.BigEndian.AppendUint16(nil, e.id)
	return append(append(b, flags), encode(e.m)...)
}

// decodeSession decodes a file entry; a damaged one is an error.
func decodeSession(k, v []byte) (*sessEntry, error) {
	if len(k) != 8 || len(v) < 3 {
		return nil, errors.New("mqtt: damaged session entry")
	}
	id, flags := binary.BigEndian.Uint16(v), v[2]
	if id == 0 || flags > 1 {
		return nil, errors.New("mqtt: damaged session entry")
	}
	m, err := decode(k, v[3:])
	if err != nil || m.Kind > KindMap {
		return nil, errors.New("mqtt: damaged session entry")
	}
	return &sessEntry{key: binary.BigEndian.Uint64(k), id: id, released: flags == 1, m: m}, nil
}

// loadSession reads the session entries in tx; damaged ones (and second
// entries for one packet id) are deleted and returned as bad.
func loadSession(tx *bolt.Tx, o *Outbox) (s *session, bad int, err error) {
	s = &session{o: o, out: map[uint16]*sessEntry{}, in: map[string]packets.ControlPacket{}, written: make(chan struct{}, 1), freed: make(chan struct{}, 1)}
	if c := tx.Bucket(bucketCounters); c != nil {
		s.established = c.Get(establishedKey) != nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketSession)
	if err != nil {
		return nil, 0, err
	}
	var drop [][]byte
	err = b.ForEach(func(k, v []byte) error {
		e, err := decodeSession(k, v)
		if err == nil && s.out[e.id] != nil {
			err = errors.New("two entries for one packet id")
		}
		if err != nil {
			drop = append(drop, slices.Clone(k))
			return nil
		}
		s.add(e)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return nil, 0, err
		}
	}
	return s, len(drop), nil
}

// add records e in memory. Called with s.mu held (or before s is shared).
func (s *session) add(e *sessEntry) {
	s.out[e.id] = e
	s.inflight[e.m.Kind&1]++
	if !e.released {
		s.unreleased++
	}
}

// tidy deletes the completed entries from the file, inside a write the
// caller makes anyway. Called with s.mu held; done clears the list once
// the transaction committed.
func (s *session) tidy(tx *bolt.Tx) (done func(), err error) {
	if len(s.gone) == 0 {
		return func() {}, nil
	}
	b := tx.Bucket(bucketSession)
	for _, k := range s.gone {
		if err := b.Delete(k); err != nil {
			return nil, err
		}
	}
	n := len(s.gone)
	return func() { s.gone = slices.Delete(s.gone, 0, n) }, nil
}

func (s *session) kick() {
	if s.notify != nil {
		s.notify()
	}
}

// Open, Close: the session lives as long as the outbox file.
func (s *session) Open()  {}
func (s *session) Close() {}

// Reset is called by paho for a clean session only, which the station
// never asks for: its outbound messages stay (sent again with their ids
// they are at worst delivered once more, never lost); inbound ones go.
func (s *session) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.in)
}

// key parses paho's "o.<id>" / "i.<id>".
func parseKey(key string) (outbound bool, id uint16, ok bool) {
	dir, num, found := strings.Cut(key, ".")
	n, err := strconv.ParseUint(num, 10, 16)
	if !found || err != nil || n == 0 || (dir != "o" && dir != "i") {
		return false, 0, false
	}
	return dir == "o", uint16(n), true
}

// Put stores what paho persists. An outbound QoS 2 PUBLISH that is the
// message being handed over is written to the file in the transaction that
// removes it from the queue; other outbound packets are not kept: status
// and replies go at QoS 1 at most (PublishNow) and are not sent again, as
// before, and the station does not resume subscriptions.
func (s *session) Put(key string, p packets.ControlPacket) {
	out, id, ok := parseKey(key)
	if !ok {
		return
	}
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !out {
		s.in[key] = p
		return
	}
	pub, isPub := p.(*packets.PublishPacket)
	m := s.handing
	if !isPub || pub.Qos != 2 || m == nil || pub.TopicName != m.Topic || !samePayload(pub.Payload, m.Payload) || s.out[id] != nil {
		return
	}
	s.handing, s.took = nil, true
	e := &sessEntry{id: id, m: m}
	s.add(e)
	queued := false
	err := s.o.db.Update(func(tx *bolt.Tx) error {
		seq, err := tx.Bucket(bucketSession).NextSequence()
		if err != nil {
			return err
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		if err := tx.Bucket(bucketSession).Put(k[:], encodeSession(e)); err != nil {
			return err
		}
		e.key = seq
		binary.BigEndian.PutUint64(k[:], m.Key)
		if tx.Bucket(bucketOutbox).Get(k[:]) != nil {
			queued = true
			if err := tx.Bucket(bucketOutbox).Delete(k[:]); err != nil {
				return err
			}
		}
		return s.o.tidyLocked(tx)
	})
	if err != nil {
		// The packet goes out anyway (paho gives Put no way to refuse):
		// it stays in memory, sent again with its id while this process
		// lives, and its queue entry is left to a later write; only a
		// restart before that write sends it again as a new message.
		e.key = 0
		s.o.failing = err
		s.o.handed[m.Key] = true
		s.o.results, s.o.maps = s.o.queuedCounts()
		if s.log != nil {
			s.log.Error("mqtt outbox: handing a message to the session", "err", err)
		}
		return
	}
	s.o.failing = nil
	s.o.tidied()
	if queued {
		if m.Kind == KindMap {
			s.o.maps--
		} else {
			s.o.results--
		}
	}
}

// samePayload reports whether a and b are the same slice (paho keeps the
// []byte it was given), or both empty.
func samePayload(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0]
}

// Get returns a fresh packet for key: the stored PUBLISH (QoS 2, its id),
// or a PUBREL once released.
func (s *session) Get(key string) packets.ControlPacket {
	out, id, ok := parseKey(key)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !out {
		return s.in[key]
	}
	e := s.out[id]
	if e == nil {
		return nil
	}
	if e.released && !s.reserving {
		rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
		rel.MessageID = id
		return rel
	}
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.Qos, pub.MessageID, pub.TopicName, pub.Retain, pub.Payload = 2, id, e.m.Topic, e.m.Retained, e.m.Payload
	return pub
}

// All returns the outbound keys in hand-over order, then the inbound ones.
func (s *session) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The reservation's listing, before a connection, records the count
	// before that connection's: harmless.
	s.listed = s.conns
	es := make([]*sessEntry, 0, len(s.out))
	for _, e := range s.out {
		es = append(es, e)
	}
	// Entries not written (a failed write) have key 0: they are the
	// newest, and keep their packet-id order among themselves.
	slices.SortFunc(es, func(a, b *sessEntry) int {
		ka, kb := a.key, b.key
		if ka == 0 {
			ka = ^uint64(0)
		}
		if kb == 0 {
			kb = ^uint64(0)
		}
		if ka != kb {
			if ka < kb {
				return -1
			}
			return 1
		}
		return int(a.id) - int(b.id)
	})
	keys := make([]string, 0, len(es)+len(s.in))
	for _, e := range es {
		keys = append(keys, "o."+strconv.Itoa(int(e.id)))
	}
	for k := range s.in {
		keys = append(keys, k)
	}
	return keys
}

// Del forgets key: for an outbound entry of ours, paho received PUBCOMP
// (delivered). Its file entry goes at the next write.
func (s *session) Del(key string) {
	out, id, ok := parseKey(key)
	if !ok {
		return
	}
	s.mu.Lock()
	if !out {
		delete(s.in, key)
		s.mu.Unlock()
		return
	}
	e := s.out[id]
	if e == nil {
		s.mu.Unlock()
		return
	}
	delete(s.out, id)
	s.inflight[e.m.Kind&1]--
	if !e.released {
		s.unreleased--
	}
	s.delivered++
	if e.key != 0 {
		s.gone = append(s.gone, binary.BigEndian.AppendUint64(nil, e.key))
	}
	s.mu.Unlock()
	select {
	case s.freed <- struct{}{}:
	default:
	}
	s.kick()
}

// release is told by watchConn that a PUBREL for id is about to be
// written: the entry becomes a release in the file first.
func (s *session) release(id uint16) {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.mu.Lock()
	e := s.out[id]
	if e == nil || e.released {
		s.mu.Unlock()
		return
	}
	e.released = true
	s.unreleased--
	if e.key != 0 {
		err := s.o.db.Update(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketSession).Put(binary.BigEndian.AppendUint64(nil, e.key), encodeSession(e)); err != nil {
				return err
			}
			return s.o.tidyLocked(tx)
		})
		if err != nil {
			// The PUBREL goes anyway: the release is known in memory;
			// only a restart before the next write sends the PUBLISH again.
			s.o.failing = err
			if s.log != nil {
				s.log.Error("mqtt outbox: recording a release", "err", err)
			}
		} else {
			s.o.tidied()
		}
	}
	s.mu.Unlock()
	s.kick()
}

// sessionLost is told by watchConn that the broker accepted a connection
// without the station's session (CONNACK session present 0), before paho
// resumes the stored entries: every release becomes a PUBLISH again, in
// the file first (a crash before the broker took the PUBLISH would
// otherwise send a PUBREL it answers with PUBCOMP: a loss).
func (s *session) sessionLost() {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.out) == 0 {
		return
	}
	var again []*sessEntry
	for _, e := range s.out {
		if e.released {
			again = append(again, e)
		}
	}
	s.forgotten++
	s.resent += uint64(len(again))
	if s.log != nil {
		s.log.Warn("mqtt broker did not keep the station's session (restarted without persistence, or expired it): the messages in flight are sent again; one it had delivered before it forgot is delivered twice",
			"in_flight", len(s.out), "released", len(again))
	}
	for _, e := range again {
		e.released = false
		s.unreleased++
	}
	err := s.o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSession)
		for _, e := range again {
			if e.key == 0 {
				continue
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, e.key), encodeSession(e)); err != nil {
				return err
			}
		}
		return s.o.tidyLocked(tx)
	})
	if err != nil {
		// They are sent as PUBLISH anyway; only a restart before the
		// next write would send the stored PUBRELs.
		s.o.failing = err
		if s.log != nil {
			s.log.Error("mqtt outbox: recording the messages to send again", "err", err)
		}
		return
	}
	s.o.tidied()
}

// Forgotten reports how many times the broker had lost the station's
// session while messages were in flight, and how many of those it had
// been sent the release of, sent again as new: each is delivered once or
// twice (at least once, not exactly once, for those).
func (o *Outbox) Forgotten() (times, resent uint64) {
	o.sess.mu.Lock()
	defer o.sess.mu.Unlock()
	return o.sess.forgotten, o.sess.resent
}

// setEstablished records (once) that the broker has this file's session.
func (o *Outbox) setEstablished() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sess.mu.Lock()
	defer o.sess.mu.Unlock()
	if o.sess.established {
		return nil
	}
	err := o.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCounters)
		if err != nil {
			return err
		}
		return b.Put(establishedKey, []byte{1})
	})
	if err != nil {
		return fmt.Errorf("mqtt: outbox: %w", err)
	}
	o.sess.established = true
	return nil
}

// ClientIDSuffix returns the random client-id suffix kept in the outbox
// file, making it on first use: stable across restarts (the broker keeps
// the station's session under its client id), yet not guessable by other
// clients (a client connecting with the station's id would take over its
// session). A new file (a damaged one moved aside) gets a new suffix, and
// with it a new session.
func (o *Outbox) ClientIDSuffix(random func() string) (string, error) {
	var id string
	err := o.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCounters)
		if err != nil {
			return err
		}
		if v := b.Get(clientIDKey); len(v) > 0 {
			id = string(v)
			return nil
		}
		id = random()
		return b.Put(clientIDKey, []byte(id))
	})
	if err != nil {
		return "", fmt.Errorf("mqtt: outbox client id: %w", err)
	}
	return id, nil
}

// handOver gives m to paho: publish must call paho's Publish at QoS 2 with
// m's topic and payload, whose Put records it in the session (and removes
// it from the queue). It reports whether the session took it; when it did
// not, m stays queued.
func (o *Outbox) handOver(m *Message, publish func()) (took bool) {
	s := o.sess
	s.mu.Lock()
	s.handing, s.took, s.publishing = m, false, true
	s.mu.Unlock()
	publish()
	s.mu.Lock()
	took = s.took
	s.handing, s.took, s.publishing = nil, false, false
	s.mu.Unlock()
	return took
}

// handingOver reports whether a hand-over's Publish has not returned.
func (o *Outbox) handingOver() bool {
	o.sess.mu.Lock()
	defer o.sess.mu.Unlock()
	return o.sess.publishing
}

// sessionEstablished reports whether the broker has this file's session.
func (o *Outbox) sessionEstablished() bool {
	o.sess.mu.Lock()
	defer o.sess.mu.Unlock()
	return o.sess.established
}

// reserve is set while paho reserves the stored packet ids (see session).
func (o *Outbox) reserve(on bool) {
	o.sess.mu.Lock()
	o.sess.reserving = on
	o.sess.mu.Unlock()
}

// wrote is told by watchConn that the PUBLISH with packet id went to the
// connection.
func (s *session) wrote(id uint16) {
	s.mu.Lock()
	if e := s.out[id]; e != nil {
		e.written = true
	}
	s.mu.Unlock()
	select {
	case s.written <- struct{}{}:
	default:
	}
}

// connGen identifies the current connection (see session.conns).
func (o *Outbox) connGen() uint64 {
	o.sess.mu.Lock()
	defer o.sess.mu.Unlock()
	return o.sess.conns
}

// waitResumed waits until paho has listed the stored messages to resume
// on the current connection (see session.listed). It reports false when
// the connection is down or done is closed first. After timeout it
// reports true: paho lists within moments of connecting, and a station
// that stopped publishing because it did not would be worse than a
// repeat.
func (o *Outbox) waitResumed(connected func() bool, done <-chan struct{}, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		o.sess.mu.Lock()
		ok := o.sess.listed == o.sess.conns
		o.sess.mu.Unlock()
		if ok || time.Now().After(deadline) {
			return true
		}
		if !connected() {
			return false
		}
		select {
		case <-done:
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// waitInFlightBelow waits until fewer than n messages are in flight
// (handed to the session, not completed). It reports false when the
// connection is down or is not connection gen any more, done is closed,
// or timeout passed first: after a reconnection paho sends the stored
// messages again (resume) while they complete, and a message handed over
// then could overtake one of them.
func (o *Outbox) waitInFlightBelow(n int, gen uint64, connected func() bool, done <-chan struct{}, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if !connected() || o.connGen() != gen {
			return false
		}
		if r, m := o.InFlight(); r+m < n {
			return true
		}
		select {
		case <-o.sess.freed:
		case <-tick.C:
		case <-done:
			return false
		case <-deadline.C:
			return false
		}
	}
}

// waitWritten waits until the PUBLISH of token t (a PublishToken) went to
// the connection, the connection is down, or writeTimeout passed.
func (o *Outbox) waitWritten(t paho.Token, connected func() bool, writeTimeout time.Duration) {
	pt, ok := t.(*paho.PublishToken)
	if !ok {
		return
	}
	id := pt.MessageID()
	deadline := time.NewTimer(writeTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		o.sess.mu.Lock()
		// Its own flag, not the last id written: status, replies and
		// push requests (QoS 1) are written meanwhile, and a check of the
		// last id missed the entry's write and waited writeTimeout for
		// each result (TestPushToServingStations: no results during a
		// push). An entry gone is complete.
		e := o.sess.out[id]
		done := e == nil || e.written
		o.sess.mu.Unlock()
		if done || !connected() {
			return
		}
		select {
		case <-o.sess.written:
		case <-tick.C:
		case <-deadline.C:
			return
		}
	}
}
