// Package mqtt publishes Linesight's results, anomaly maps and status to an
// MQTT broker for the PLC/SCADA side, receives commands, keeps what cannot be
// sent in a bounded outbox while the broker is away, and can run an embedded
// broker for a zero-setup start. Topics live under <prefix>/<station>/.
package mqtt

import (
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

// noResendStore keeps paho from storing outbound PUBLISH packets. The
// outbox owns delivery: a publish that is not acknowledged in time goes back
// to the outbox and is sent again from there. Left to itself, paho v1.5.1
// would also re-send its stored copy on reconnect (even with a clean
// session), which delivered a result twice in the 60 s outage test, and it
// sets the DUP flag on that stored packet while the new connection's writer
// may be serialising it (a data race the race detector caught in
// TestBrokerOutageLosesNoResult). Inbound packets and the other outbound
// ones (PUBREL of QoS 2) are kept as paho expects.
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
	Broker   string // tcp://host:1883, ssl://host:8883
	ClientID string
	Prefix   string
	Station  string
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
	// 1, on every connection) to handlers called with the full topic and
	// the payload, e.g. the blocks of a bank push.
	Handlers map[string]func(topic string, payload []byte)
	// Inputs are Handlers that also get the retain flag: a PLC's trigger
	// or acknowledgement left retained must be refused, not taken again
	// on every reconnect (the PLC handshake, issue 20).
	Inputs map[string]func(topic string, payload []byte, retained bool)
}

// Client is a connection to the broker.
type Client struct {
	opts       Options
	limit      *rateLimit
	c          paho.Client
	base       string
	wake       chan struct{}
	published  atomic.Uint64
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
	c := &Client{opts: opts, base: opts.Prefix + "/" + opts.Station + "/", wake: make(chan struct{}, 1), done: make(chan struct{}),
		limit: newRateLimit(opts.CommandRate, opts.CommandBurst)}
	po := paho.NewClientOptions().AddBroker(opts.Broker).SetClientID(opts.ClientID).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).SetKeepAlive(10 * time.Second).
		SetCleanSession(true).SetOrderMatters(false).SetConnectTimeout(5 * time.Second).
		SetStore(noResendStore{paho.NewMemoryStore()})
	if opts.Username != "" {
		po.SetUsername(opts.Username).SetPassword(opts.Password)
	}
	if opts.TLS != nil {
		po.SetTLSConfig(opts.TLS)
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
			subs = append(subs, pc.Subscribe(c.Topic(TopicCommandPrefix+"#"), 1, c.onCommand))
		}
		for filter, h := range opts.Handlers {
			subs = append(subs, pc.Subscribe(c.Topic(filter), 1, func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload()) }))
		}
		for filter, h := range opts.Inputs {
			subs = append(subs, pc.Subscribe(c.Topic(filter), 1, func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload(), m.Retained()) }))
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
	})
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		c.subscribed.Store(false)
		opts.Log.Warn("mqtt connection lost", "err", err)
	})
	c.c = paho.NewClient(po)
	return c
}

// Start connects (retrying in the background while the broker is away)
// and starts delivering the outbox.
func (c *Client) Start() {
	c.c.Connect() // with ConnectRetry this keeps trying in the background
	c.wg.Add(1)
	go c.flusher()
}

// Connected reports whether the broker connection is up.
func (c *Client) Connected() bool { return c.c.IsConnectionOpen() }

// Ready reports a connection whose subscriptions the broker has confirmed:
// from then on commands and handled topics are heard.
func (c *Client) Ready() bool { return c.Connected() && c.subscribed.Load() }

// Published counts messages the broker acknowledged (QoS>0) or took (QoS 0).
func (c *Client) Published() uint64 { return c.published.Load() }

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
}

// Publish sends messages now if connected and nothing is queued before
// them, else queues them in the outbox (in one transaction), so that order
// is kept across an outage.
func (c *Client) Publish(items ...Item) {
	ms := make([]*Message, len(items))
	for i, it := range items {
		ms[i] = &Message{Kind: it.Kind, Topic: c.Topic(it.Topic), Retained: it.Retained, Payload: it.Payload}
	}
	ob := c.opts.Outbox
	queue := func(ms []*Message) {
		if err := ob.Add(ms...); err != nil {
			c.opts.Log.Error("mqtt outbox", "err", err)
		}
		c.kick()
	}
	if ob != nil {
		if r, mp := ob.Len(); r+mp > 0 || !c.Connected() {
			queue(ms)
			return
		}
	}
	for i, m := range ms {
		if err := c.send(m, 5*time.Second); err != nil {
			if ob != nil {
				queue(ms[i:])
				return
			}
			c.opts.Log.Warn("mqtt publish failed; dropped (no outbox)", "topic", m.Topic, "err", err)
		}
	}
}

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
		toks[i] = c.c.Publish(c.Topic(it.Topic), c.opts.QoS, it.Retained, it.Payload)
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
	t := c.c.Publish(m.Topic, c.opts.QoS, m.Retained, m.Payload)
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
	defer c.wg.Done()
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

// flushBatch is how many queued messages are in flight at once: the broker
// acknowledges them in order, and one disk sync removes them all.
const flushBatch = 256

// flush sends the oldest queued messages and removes those the broker
// acknowledged, in order up to the first that failed. It reports whether
// to go on (a whole batch went and more may be queued).
func (c *Client) flush(ob *Outbox) bool {
	ms, err := ob.Peek(flushBatch)
	if err != nil {
		c.opts.Log.Error("mqtt outbox", "err", err)
	}
	if len(ms) == 0 {
		return err != nil // damaged entries were dropped: look again
	}
	toks := make([]paho.Token, len(ms))
	for i, m := range ms {
		toks[i] = c.c.Publish(m.Topic, c.opts.QoS, m.Retained, m.Payload)
	}
	done := len(ms)
	deadline := time.Now().Add(5*time.Second + time.Duration(len(ms))*time.Millisecond)
	for i, t := range toks {
		if !t.WaitTimeout(time.Until(deadline)) || t.Error() != nil {
			done = i
			break
		}
	}
	c.published.Add(uint64(done))
	if done > 0 {
		if err := ob.Remove(ms[:done]...); err != nil {
			c.opts.Log.Error("mqtt outbox", "err", err)
			return false
		}
	}
	return done == len(ms)
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

// Close publishes offline (when given), drains the outbox for at most
// grace, and disconnects.
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
	if offline != nil && c.Connected() {
		c.PublishNow("status", true, offline)
	}
	close(c.done)
	c.wg.Wait()
	c.c.Disconnect(250)
}
