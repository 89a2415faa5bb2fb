// Package mqtt publishes Linesight's results, anomaly maps and status to an
// MQTT broker for the PLC/SCADA side, receives commands, keeps what cannot be
// sent in a bounded outbox while the broker is away, and can run an embedded
// broker for a zero-setup start. Topics live under <prefix>/<station>/.
package mqtt

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// noResendStore keeps paho from storing outbound PUBLISH packets, for
// clients without an outbox (tools, and a station without one) whose
// messages nobody sends again: paho v1.5.1 would re-send its stored copy
// on reconnect (even with a clean session), and it sets the DUP flag on
// that stored packet while the new connection's writer may be serialising
// it (a data race the race detector caught in
// TestBrokerOutageLosesNoResult). Inbound packets and the other outbound
// ones are kept as paho expects. A station with an outbox uses its session
// store instead (store.go).
type noResendStore struct{ paho.Store }

// outboundPrefix is how paho's store keys outbound packets ("o." + id).
const outboundPrefix = "o."

func (s noResendStore) Put(key string, p packets.ControlPacket) {
	if _, ok := p.(*packets.PublishPacket); ok && strings.HasPrefix(key, outboundPrefix) {
		return
	}
	s.Store.Put(key, p)
}

// Options configures a Client.
type Options struct {
	Broker string // tcp://host:1883, ssl://host:8883
	// ClientID must be stable across restarts when there is an outbox:
	// the broker keeps the station's session under it.
	ClientID string
	Prefix   string
	Station  string
	// QoS is for what is sent without the outbox (status, replies, push
	// requests): 0 or 1; 2 counts as 1 with an outbox (see PublishNow).
	// What goes through the outbox is sent at QoS 2.
	QoS      byte
	Username string
	Password string
	TLS      *tls.Config
	Outbox   *Outbox // nil: messages are dropped while offline
	Log      *slog.Logger
	// Offline is the retained status the broker publishes as our last will.
	Offline []byte
	// OnConnect runs after every (re)connection, e.g. to publish status.
	OnConnect func()
	// Command handles cmd/<name> requests; its result or error is replied
	// on cmd/<name>/reply.
	Command func(name string, req Request) (any, error)
	// MaxCommandBytes bounds a command's payload (default 64 KiB);
	// CommandRate and CommandBurst bound how many commands are taken per
	// second, over all clients (default 5, in bursts of 20). Commands
	// beyond them, and retained commands, are refused without running.
	MaxCommandBytes int
	CommandRate     float64
	CommandBurst    int
	// Refused is told of each command refused before it ran (too large,
	// too many, retained, malformed), for the audit log.
	Refused func(name, reason string)
	// Handlers subscribe topic filters under <prefix>/<station>/ (at QoS
	// 0, on every connection: see subQoS) to handlers called with the full
	// topic and the payload, e.g. the blocks of a bank push.
	Handlers map[string]func(topic string, payload []byte)
	// Inputs are Handlers that also get the retain flag: a PLC's trigger
	// or acknowledgement left retained must be refused, not taken again
	// on every reconnect (the PLC handshake, issue 20).
	Inputs map[string]func(topic string, payload []byte, retained bool)

	// MaxInFlight bounds the outbox messages handed to the broker and not
	// yet completed (QoS 2 PUBCOMP); default 10. MQTT 3.1.1 has no way
	// for a broker to say how many it takes: mosquitto takes
	// max_inflight_messages (20 by default) awaiting their release and
	// answers those beyond with a PUBREC whose reason code (quota
	// exceeded) a 3.1.1 client never sees, then completes their release
	// without delivering them: each was lost (a backlog after an outage
	// lost 20 at a time, TestNoLossOnABacklog). Keep it below the
	// broker's limit.
	MaxInFlight int

	// reconnectMax bounds the wait between reconnection attempts (5 s;
	// tests that cut the link hundreds of times shorten it).
	reconnectMax time.Duration
	// writeTimeout: see Client.writeTimeout (tests shorten it).
	writeTimeout time.Duration
}

// Client is a connection to the broker.
type Client struct {
	opts       Options
	limit      *rateLimit
	c          paho.Client
	base       string
	wake       chan struct{}
	nowQoS     byte // QoS of PublishNow
	published  atomic.Uint64
	latest     *latestSet  // latest-value topics waiting to be published (latest.go)
	subscribed atomic.Bool // the broker confirmed the subscriptions of this connection
	mu         sync.Mutex
	done       chan struct{}
	wg         sync.WaitGroup
}

// Topic returns <prefix>/<station>/<name>.
func (c *Client) Topic(name string) string { return c.base + name }

// New prepares a client; Start connects it. The split lets the owner store
// the client before any OnConnect or Command callback can run.
func New(opts Options) *Client {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxCommandBytes == 0 {
		opts.MaxCommandBytes = 64 << 10
	}
	if opts.CommandRate == 0 {
		opts.CommandRate, opts.CommandBurst = 5, 20
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 10
	}
	c := &Client{opts: opts, base: opts.Prefix + "/" + opts.Station + "/", wake: make(chan struct{}, 1), done: make(chan struct{}),
		latest: newLatestSet(), limit: newRateLimit(opts.CommandRate, opts.CommandBurst)}
	c.nowQoS = opts.QoS
	po := c.pahoOptions()
	if ob := opts.Outbox; ob != nil {
		// A persistent session (clean session off) in the outbox's file:
		// what was handed to paho is sent again with its packet id after a
		// broken connection or a restart, and the broker, which keeps the
		// session under the client id, takes it once (QoS 2). Status and
		// replies are not kept (noResendStore's reasons); at QoS 2 a
		// release lost with them would leave an id the broker holds, so
		// they go at QoS 1 at most.
		c.nowQoS = min(opts.QoS, 1)
		ob.sess.log, ob.sess.notify = opts.Log, c.kick
		po.SetCleanSession(false).SetStore(ob.sess).SetCustomOpenConnectionFn(openWatched(ob.sess)).
			SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
				// A hand-over's Publish may be blocked handing its packet
				// to the lost connection's writer; the next connection
				// would take it, racing with paho sending the older
				// stored messages again (resume), and deliver it before
				// them. Reconnect once it returned: its packet is stored
				// and resume sends it in its turn. paho gives it up after
				// writeTimeout.
				for deadline := time.Now().Add(c.writeTimeout() + time.Second); ob.handingOver() && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
				}
			})
	} else {
		po.SetCleanSession(true).SetStore(noResendStore{paho.NewMemoryStore()})
	}
	if opts.Offline != nil {
		po.SetBinaryWill(c.Topic("status"), opts.Offline, 1, true)
	}
	po.SetOnConnectHandler(func(pc paho.Client) {
		opts.Log.Info("mqtt connected", "broker", opts.Broker)
		// Wait for the broker to take the subscriptions before saying the
		// station is online: a command sent after that must be heard.
		var subs []paho.Token
		if opts.Command != nil {
			subs = append(subs, pc.Subscribe(c.Topic(TopicCommandPrefix+"#"), subQoS, c.onCommand))
		}
		for filter, h := range opts.Handlers {
			subs = append(subs, pc.Subscribe(c.Topic(filter), subQoS, func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload()) }))
		}
		for filter, h := range opts.Inputs {
			subs = append(subs, pc.Subscribe(c.Topic(filter), subQoS, func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload(), m.Retained()) }))
		}
		for _, tok := range subs {
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				opts.Log.Warn("mqtt subscription not confirmed", "err", tok.Error())
			}
		}
		c.subscribed.Store(true)
		if opts.OnConnect != nil {
			go opts.OnConnect()
		}
		c.kick()
		c.latest.kick()
	})
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		c.subscribed.Store(false)
		opts.Log.Warn("mqtt connection lost", "err", err)
	})
	c.c = paho.NewClient(po)
	return c
}

// writeTimeout bounds writing one packet to the broker, and how long
// paho's Publish waits to hand a packet to the connection's writer (10 s).
func (c *Client) writeTimeout() time.Duration { return cmp.Or(c.opts.writeTimeout, 10*time.Second) }

// subQoS is the QoS of the station's subscriptions (commands, push
// blocks). With a persistent session the broker keeps QoS 1 and 2
// messages for a subscriber that is away and delivers them when it comes
// back: a command sent while the station was offline would run minutes or
// days late, long after whoever sent it gave up waiting for its reply
// (signed commands would be refused as stale, but status and the lab
// bench's unsigned ones would run). At QoS 0 the broker keeps nothing for
// an absent station; a command lost with a broken connection gets no reply
// and is sent again by its sender, and a push's missing blocks are asked
// for again by the receiver.
const subQoS = 0

// pahoOptions are the connection settings shared by the client and the
// one-off clean-session connection of Start.
func (c *Client) pahoOptions() *paho.ClientOptions {
	po := paho.NewClientOptions().AddBroker(c.opts.Broker).SetClientID(c.opts.ClientID).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(cmp.Or(c.opts.reconnectMax, 5*time.Second)).SetKeepAlive(10 * time.Second).
		SetOrderMatters(false).SetConnectTimeout(5 * time.Second).SetWriteTimeout(c.writeTimeout())
	if c.opts.Username != "" {
		po.SetUsername(c.opts.Username).SetPassword(c.opts.Password)
	}
	if c.opts.TLS != nil {
		po.SetTLSConfig(c.opts.TLS)
	}
	return po
}

// Start connects (retrying in the background while the broker is away)
// and starts delivering the outbox.
func (c *Client) Start() {
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.latestSender()
	}()
	go func() {
		defer c.wg.Done()
		ob := c.opts.Outbox
		if ob != nil && !ob.sessionEstablished() && !c.cleanBrokerSession() {
			return // closed meanwhile
		}
		if ob != nil {
			// paho reserves the packet ids of the stored messages before
			// it connects (see session.reserving).
			ob.reserve(true)
		}
		c.c.Connect() // with ConnectRetry this keeps trying in the background
		if ob != nil {
			ob.reserve(false)
		}
		c.flusher()
	}()
}

// cleanBrokerSession connects once with a clean session under the
// station's client id and disconnects, before the first persistent
// connection from a new outbox file: whatever the broker kept under that
// id (an explicit mqtt.client_id whose outbox was replaced) is discarded.
// A broker left holding a QoS 2 packet id awaiting its release would take
// a new message with that id for a repeat and drop it. It retries every
// second until it succeeds or the client closes (false).
func (c *Client) cleanBrokerSession() bool {
	po := c.pahoOptions().SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetStore(noResendStore{paho.NewMemoryStore()})
	for {
		pc := paho.NewClient(po)
		tok := pc.Connect()
		ok := tok.WaitTimeout(10*time.Second) && tok.Error() == nil
		if ok {
			pc.Disconnect(100)
			if err := c.opts.Outbox.setEstablished(); err != nil {
				c.opts.Log.Error("mqtt session", "err", err)
			}
			return true
		}
		select {
		case <-c.done:
			return false
		case <-time.After(time.Second):
		}
	}
}

// Connected reports whether the broker connection is up.
func (c *Client) Connected() bool { return c.c.IsConnectionOpen() }

// Ready reports a connection whose subscriptions the broker has confirmed:
// from then on commands and handled topics are heard.
func (c *Client) Ready() bool { return c.Connected() && c.subscribed.Load() }

// Published counts messages the broker acknowledged (QoS>0) or took (QoS
// 0): sent without the outbox, and delivered from it (QoS 2 completed).
func (c *Client) Published() uint64 {
	n := c.published.Load()
	if ob := c.opts.Outbox; ob != nil {
		n += ob.Delivered()
	}
	return n
}

func (c *Client) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Item is one message for Publish.
type Item struct {
	Kind     byte // KindResult or KindMap
	Topic    string
	Retained bool
	Payload  []byte
	// Latest marks a retained latest-value topic (verdict, score): it
	// does not go through the outbox; only its newest value is kept (in
	// memory) and published, retained at QoS 1, once the messages queued
	// before it were handed to the broker (latest.go). Kind and Retained
	// are ignored.
	Latest bool
}

// Publish queues messages in the outbox (in one transaction) for the
// flusher, which hands them to the MQTT session in order: every message
// takes the one path that delivers it exactly once. Without an outbox they
// are sent now, and dropped if that fails. Latest items are set after the
// others, whatever their place in items.
func (c *Client) Publish(items ...Item) {
	ms := make([]*Message, 0, len(items))
	for _, it := range items {
		if !it.Latest {
			ms = append(ms, &Message{Kind: it.Kind, Topic: c.Topic(it.Topic), Retained: it.Retained, Payload: it.Payload})
		}
	}
	if ob := c.opts.Outbox; ob != nil && len(ms) > 0 {
		if err := ob.Add(ms...); err != nil {
			c.opts.Log.Error("mqtt outbox", "err", err)
		} else {
			for _, m := range ms { // a map not kept (maps off) has no key
				c.latest.queuedThrough(m.Key)
			}
		}
		c.kick()
	} else {
		for _, m := range ms {
			if err := c.send(m, 5*time.Second); err != nil {
				c.opts.Log.Warn("mqtt publish failed; dropped (no outbox)", "topic", m.Topic, "err", err)
			}
		}
	}
	for _, it := range items {
		if it.Latest {
			c.latest.set(c.Topic(it.Topic), it.Payload)
		}
	}
}

// LatestPending counts the latest-value topics whose newest value is not
// published yet.
func (c *Client) LatestPending() int { return c.latest.pending() }

// PublishNow sends without the outbox (status, replies): nothing to keep
// if the broker is away.
func (c *Client) PublishNow(topic string, retained bool, payload []byte) error {
	return c.send(&Message{Topic: c.Topic(topic), Retained: retained, Payload: payload}, 5*time.Second)
}

// PublishAllNow is PublishNow for several messages: all are handed to the
// connection (in order) before it waits for their acknowledgements, so
// that a set of PLC handshake topics costs one round trip, not one each.
// It returns the first error.
func (c *Client) PublishAllNow(items ...Item) error {
	if !c.Connected() {
		return errors.New("not connected")
	}
	toks := make([]paho.Token, len(items))
	for i, it := range items {
		toks[i] = c.c.Publish(c.Topic(it.Topic), c.nowQoS, it.Retained, it.Payload)
	}
	deadline := time.Now().Add(5 * time.Second)
	var first error
	for _, t := range toks {
		if !t.WaitTimeout(time.Until(deadline)) {
			return errors.New("publish timed out")
		}
		if err := t.Error(); err != nil && first == nil {
			first = err
			continue
		}
		c.published.Add(1)
	}
	return first
}

func (c *Client) send(m *Message, timeout time.Duration) error {
	if !c.Connected() {
		return errors.New("not connected")
	}
	t := c.c.Publish(m.Topic, c.nowQoS, m.Retained, m.Payload)
	if !t.WaitTimeout(timeout) {
		return errors.New("publish timed out")
	}
	if err := t.Error(); err != nil {
		return err
	}
	c.published.Add(1)
	return nil
}

// flusher delivers the outbox in order whenever the broker is reachable.
func (c *Client) flusher() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		case <-tick.C:
		}
		ob := c.opts.Outbox
		if ob == nil {
			continue
		}
		for c.Connected() && c.flush(ob) {
			select {
			case <-c.done:
				return
			default:
			}
		}
	}
}

// flushBatch is how many queued messages are read from the outbox at a
// time; at most Options.MaxInFlight of them are with the broker at once.
const flushBatch = 256

// flush hands the oldest queued messages to the MQTT session, in order, and
// waits (bounded) for the broker to complete them. It reports whether to
// go on (a whole batch went and more may be queued).
//
// Nothing new is handed over while messages handed over earlier are still
// in flight: after a reconnection (or a restart) paho sends those again
// (resume) concurrently with new publishes, and a new one could reach the
// broker, or be released (PUBREL), before them; mosquitto delivers a QoS 2
// message on its PUBREL, mochi on its PUBLISH. Waiting for them keeps seq
// order; in steady state a batch is complete before the next anyway.
func (c *Client) flush(ob *Outbox) bool {
	if r, m := ob.InFlight(); r+m > 0 {
		return false // woken again as they complete
	}
	if !ob.waitResumed(c.Connected, c.done, 5*time.Second) {
		return false // down or closing
	}
	gen := ob.connGen() // a batch goes on one connection (see waitInFlightBelow)
	ms, err := ob.Peek(flushBatch)
	defer ob.Unlease()
	if err != nil {
		c.opts.Log.Error("mqtt outbox", "err", err)
	}
	if len(ms) == 0 {
		return err != nil // damaged entries were dropped: look again
	}
	toks := make([]paho.Token, 0, len(ms))
	for _, m := range ms {
		if !c.Connected() || !ob.waitInFlightBelow(c.opts.MaxInFlight, gen, c.Connected, c.done, 5*time.Second) {
			break
		}
		var t paho.Token
		if !ob.handOver(m, func() { t = c.c.Publish(m.Topic, 2, m.Retained, m.Payload) }) {
			// paho refused it before storing it (not connected, no
			// packet id free): it stays queued.
			if t != nil && t.Error() != nil {
				c.opts.Log.Debug("mqtt publish not taken; it stays queued", "err", t.Error())
			}
			break
		}
		toks = append(toks, t)
		// Hand over the next once this one is written: a Publish blocked
		// behind a busy writer when the connection breaks is what the
		// reconnecting handler has to wait for.
		ob.waitWritten(t, c.Connected, c.writeTimeout())
	}
	// paho completes a token on PUBCOMP, or when the message is sent again
	// after a reconnection; either way the session owns it, and delivery
	// is counted by the session (Published).
	deadline := time.Now().Add(5*time.Second + time.Duration(len(toks))*time.Millisecond)
	for i, t := range toks {
		if !t.WaitTimeout(time.Until(deadline)) {
			return false
		}
		c.latest.handedThrough(ms[i].Key)
	}
	return len(toks) == len(ms)
}

// onCommand parses cmd/<name> and replies on cmd/<name>/reply. A malformed
// or unknown command gets an error reply and changes nothing.
func (c *Client) onCommand(_ paho.Client, msg paho.Message) {
	name := strings.TrimPrefix(msg.Topic(), c.Topic(TopicCommandPrefix))
	if name == "" || strings.HasSuffix(name, TopicReplySuffix) || name == "reply" {
		return
	}
	reply := c.command(name, msg.Payload(), msg.Retained())
	b, _ := json.Marshal(reply)
	go func() {
		if err := c.PublishNow(TopicCommandPrefix+name+TopicReplySuffix, false, b); err != nil {
			c.opts.Log.Warn("mqtt command reply failed", "cmd", name, "err", err)
		}
	}()
}

// command runs one command and makes its reply; what is refused before it
// runs is told to Options.Refused.
func (c *Client) command(name string, payload []byte, retained bool) Reply {
	refused := func(id, format string, a ...any) Reply {
		reason := fmt.Sprintf(format, a...)
		if c.opts.Refused != nil {
			c.opts.Refused(name, reason)
		}
		return Reply{ID: id, Error: reason}
	}
	switch {
	case retained:
		// A retained command would run again on every reconnect and
		// restart, long after whoever sent it meant it to.
		return refused("", "retained commands are refused: publish commands without the retain flag (and clear this one with an empty retained message)")
	case len(payload) > c.opts.MaxCommandBytes:
		return refused("", "command of %d bytes refused (at most %d)", len(payload), c.opts.MaxCommandBytes)
	case !c.limit.allow(time.Now()):
		return refused("", "too many commands: at most %g a second (bursts of %d); try again", c.opts.CommandRate, c.opts.CommandBurst)
	}
	var req Request
	if err := json.Unmarshal(payload, &req); err != nil {
		return refused("", "malformed command: payload is not a JSON object: %v", err)
	}
	req.Raw, req.Name = append(json.RawMessage(nil), payload...), name
	res, err := c.opts.Command(name, req)
	if err != nil {
		return Reply{ID: req.ID, Error: err.Error()}
	}
	return Reply{ID: req.ID, OK: true, Result: res}
}

// rateLimit is a token bucket.
type rateLimit struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newRateLimit(rate float64, burst int) *rateLimit {
	return &rateLimit{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (l *rateLimit) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// Close drains the outbox (queued and in flight) while connected, until
// ctx ends, publishes offline (when given), and disconnects. What is left
// in flight is sent again, with its packet ids, by the next start.
func (c *Client) Close(ctx context.Context, offline []byte) {
	if ob := c.opts.Outbox; ob != nil {
		for c.Connected() && ctx.Err() == nil {
			if r, m := ob.Len(); r+m == 0 || ob.Failing() != nil {
				break // delivered, or the outbox cannot be written (disk full): waiting will not help
			}
			c.kick()
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Then the newest verdict and score (they wait for the results queued
	// before them, so only once the outbox is drained).
	for c.Connected() && ctx.Err() == nil && c.latest.pending() > 0 {
		if ob := c.opts.Outbox; ob != nil {
			if r, m := ob.Len(); r+m > 0 {
				break
			}
		}
		c.latest.kick()
		time.Sleep(20 * time.Millisecond)
	}
	if offline != nil && c.Connected() {
		c.PublishNow("status", true, offline)
	}
	close(c.done)
	c.wg.Wait()
	c.c.Disconnect(250)
}
