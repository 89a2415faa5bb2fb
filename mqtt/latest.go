package mqtt

import (
	"sync"
	"time"
)

// Latest-value topics (verdict, score) are retained: a PLC reads the last
// value, and a replay of hundreds of stale ones after an outage is of no
// use to it. They go outside the outbox (whose QoS 2 hand-over costs two
// disk syncs a message), at QoS 1 and retained; while the broker is away
// only the newest value of each is kept, in memory, and published once
// when it is back.
//
// A value is published only once the results queued before it (in the
// same Publish call or earlier) have been handed to the broker's session
// and acknowledged: the retained verdict and score never run ahead of the
// results. After an outage a PLC therefore reads the verdict and score of
// before the outage while the backlog of results is delivered, then the
// values of the last result.

// latestVal is the newest unpublished value of a latest-value topic.
type latestVal struct {
	payload []byte
	// after is the outbox key of the last message queued before this
	// value: it waits until the flusher has handed that key over.
	after uint64
	// gen changes with every new value, so that a value published while a
	// newer one came in is not taken for the newer one.
	gen uint64
}

// latestSet holds the latest-value topics not yet published, in the
// order they were first set (verdict before score).
type latestSet struct {
	mu      sync.Mutex
	order   []string
	vals    map[string]latestVal
	gen     uint64
	queued  uint64 // outbox key of the last message queued (0: none)
	through uint64 // outbox key through which the flusher handed messages over
	wake    chan struct{}
}

func newLatestSet() *latestSet {
	return &latestSet{vals: make(map[string]latestVal), wake: make(chan struct{}, 1)}
}

func (l *latestSet) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// queuedThrough records the key of the last message the outbox took.
func (l *latestSet) queuedThrough(key uint64) {
	l.mu.Lock()
	l.queued = max(l.queued, key)
	l.mu.Unlock()
}

// handedThrough records that the messages up to key were handed over.
func (l *latestSet) handedThrough(key uint64) {
	l.mu.Lock()
	adv := key > l.through && len(l.order) > 0
	l.through = max(l.through, key)
	l.mu.Unlock()
	if adv {
		l.kick()
	}
}

// set replaces topic's pending value; it goes after the messages queued
// so far.
func (l *latestSet) set(topic string, payload []byte) {
	l.mu.Lock()
	if _, ok := l.vals[topic]; !ok {
		l.order = append(l.order, topic)
	}
	l.gen++
	l.vals[topic] = latestVal{payload: payload, after: l.queued, gen: l.gen}
	l.mu.Unlock()
	l.kick()
}

// next returns the first pending value that may go: its results were
// handed over, or nothing is left undelivered in the outbox (drained
// says so; it is asked after the values are read, so a result queued
// before a value and still undelivered keeps it back).
func (l *latestSet) next(drained func() bool) (topic string, v latestVal, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.order) == 0 {
		return "", latestVal{}, false
	}
	all := false
	for _, t := range l.order {
		v := l.vals[t]
		if v.after <= l.through {
			return t, v, true
		}
		if !all {
			if all = drained(); !all {
				continue
			}
		}
		return t, v, true
	}
	return "", latestVal{}, false
}

// sent removes topic's value if it is still the one published.
func (l *latestSet) sent(topic string, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.vals[topic]; ok && v.gen == gen {
		delete(l.vals, topic)
		for i, t := range l.order {
			if t == topic {
				l.order = append(l.order[:i], l.order[i+1:]...)
				break
			}
		}
	}
}

// pending counts the values not published yet.
func (l *latestSet) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.order)
}

// latestSender publishes the pending latest values whenever the broker is
// reachable, one at a time (QoS 1, retained), so that an older value of a
// topic never arrives after a newer one.
func (c *Client) latestSender() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.latest.wake:
		case <-tick.C:
		}
		c.sendLatest()
	}
}

// sendLatest publishes what may go now; it stops at the first failure
// (the value stays pending and goes on the next connection).
func (c *Client) sendLatest() {
	drained := func() bool {
		ob := c.opts.Outbox
		if ob == nil {
			return true
		}
		r, m := ob.Len()
		return r+m == 0
	}
	for c.Connected() {
		topic, v, ok := c.latest.next(drained)
		if !ok {
			return
		}
		t := c.c.Publish(topic, latestQoS, true, v.payload)
		if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
			if t.Error() != nil {
				c.opts.Log.Debug("mqtt latest value not published; kept for the next connection", "topic", topic, "err", t.Error())
			}
			return
		}
		c.published.Add(1)
		c.latest.sent(topic, v.gen)
	}
}

// latestQoS is the QoS of the latest-value topics: each is acknowledged
// before the next value of its topic goes, and a repeat (a lost PUBACK)
// only sets the same retained value again.
const latestQoS = 1
