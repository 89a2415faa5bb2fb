package sparkplug

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"
)

// Options configures an EdgeNode.
type Options struct {
	// Servers are the MQTT servers (tcp://, ssl://, ws://); the node is
	// connected to one at a time and walks to the next on "Next Server"
	// or when the primary host is offline on the current one.
	Servers  []string
	ClientID string
	Username string
	Password string
	TLS      *tls.Config

	Group  string // group_id
	Node   string // edge_node_id
	Device string // device_id (one device: the inspection station)
	// PrimaryHost is the primary host application's host_id: births wait
	// for its STATE to say online. "" publishes births on connect.
	PrimaryHost string
	// BdSeqFile keeps the next bdSeq across restarts ("" = start at 0).
	BdSeqFile string

	// NodeMetrics are the node's own metrics for NBIRTH (besides bdSeq
	// and Node Control), read at every birth. Like DeviceMetrics, it runs
	// under the node's publishing lock and must not call the node.
	NodeMetrics func() []Metric
	// Definitions are template definitions (Type Template, Value a
	// *Template with Definition set), published in NBIRTH as
	// "_types_/<Ref>" [tck-id-payloads-template-definition-nbirth-only].
	Definitions []Metric
	// DeviceMetrics are every metric of the device with its value now,
	// for DBIRTH; later DDATA may carry only these names.
	DeviceMetrics func() []Metric
	// OnWrite takes a host's writes: NCMD metrics other than Node Control
	// (device "") and DCMD metrics (device = Options.Device). It runs on
	// the MQTT client's goroutine and must not block for long.
	OnWrite func(device string, ws []Write)
	// Rejected is told of each command that did not decode (for the
	// station's audit log); may be nil.
	Rejected func(topic string, err error)

	KeepAlive time.Duration // default 10 s
	Log       *slog.Logger
}

// EdgeNode is a Sparkplug B edge node with one device (see the package
// documentation for the rules it follows).
type EdgeNode struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex  // serialises publishing: seq order is wire order
	c         paho.Client // the current connection, nil between them
	ev        chan string // events of the current connection for run
	bdSeq     uint64      // of the current connection
	nextBdSeq uint64
	seq       uint64 // the next message's seq
	born      bool   // births published on this connection
	lastState uint64 // timestamp of the last STATE taken
	server    int    // index in Options.Servers

	// Aliases, one namespace across the node and its device
	// [tck-id-payloads-alias-uniqueness], kept across births so that a
	// host's cached alias stays right.
	alias     map[string]uint64
	byAlias   map[uint64]string
	types     map[string]DataType
	device    map[string]bool // names of device metrics
	nextAlias uint64

	published atomic.Uint64
	dropped   atomic.Uint64 // DDATA not sent: no session, or births not yet out
	births    atomic.Uint64

	stop    chan struct{}
	closing sync.Once
	done    chan struct{}
}

// Events of a connection.
const (
	evLost        = "connection lost"
	evHostOffline = "primary host offline"
	evNextServer  = "Next Server command"
)

// New prepares an edge node; Start connects it.
func New(o Options) (*EdgeNode, error) {
	if len(o.Servers) == 0 {
		return nil, errors.New("sparkplug: no MQTT server")
	}
	for what, id := range map[string]string{"group_id": o.Group, "edge_node_id": o.Node, "device_id": o.Device} {
		if err := CheckID(id); err != nil {
			return nil, fmt.Errorf("sparkplug: %s: %w", what, err)
		}
	}
	if o.PrimaryHost != "" {
		if err := CheckID(o.PrimaryHost); err != nil {
			return nil, fmt.Errorf("sparkplug: primary host_id: %w", err)
		}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 10 * time.Second
	}
	if o.NodeMetrics == nil {
		o.NodeMetrics = func() []Metric { return nil }
	}
	if o.DeviceMetrics == nil {
		o.DeviceMetrics = func() []Metric { return nil }
	}
	n := &EdgeNode{opts: o, log: o.Log.With("sparkplug", o.Group+"/"+o.Node), alias: map[string]uint64{}, byAlias: map[uint64]string{},
		types: map[string]DataType{}, device: map[string]bool{}, nextAlias: 1, stop: make(chan struct{}), done: make(chan struct{})}
	n.nextBdSeq = n.loadBdSeq()
	return n, nil
}

// CheckID checks a group_id, edge_node_id, device_id or host_id: a
// non-empty UTF-8 topic level without '/', '+' or '#' [tck-id-intro-group-id-chars].
func CheckID(id string) error {
	if id == "" || strings.ContainsAny(id, "/+#") {
		return fmt.Errorf("%q: must be non-empty, without '/', '+' or '#'", id)
	}
	return nil
}

func (n *EdgeNode) topic(kind string, device bool) string {
	t := Namespace + "/" + n.opts.Group + "/" + kind + "/" + n.opts.Node
	if device {
		t += "/" + n.opts.Device
	}
	return t
}

// StateTopic is where host_id's STATE is published (Sparkplug 3.0).
func StateTopic(host string) string { return Namespace + "/" + STATE + "/" + host }

// Start connects in the background (and reconnects, until Close).
func (n *EdgeNode) Start() { go n.run() }

// Close ends the session as the specification asks of an intentional
// disconnect: NDEATH, then DISCONNECT (the will is then not sent).
// Close may be called more than once.
func (n *EdgeNode) Close() {
	n.closing.Do(func() { close(n.stop) })
	<-n.done
}

// Online reports whether births are out on a live connection: DDATA goes
// out from now on.
func (n *EdgeNode) Online() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.born && n.c != nil && n.c.IsConnectionOpen()
}

// Stats are counters for metrics and tests: messages published, DDATA not
// sent (no session), births published (NBIRTH count).
func (n *EdgeNode) Stats() (published, dropped, births uint64) {
	return n.published.Load(), n.dropped.Load(), n.births.Load()
}

// loadBdSeq reads the next bdSeq from BdSeqFile (0 when there is none or
// it does not parse).
func (n *EdgeNode) loadBdSeq() uint64 {
	if n.opts.BdSeqFile == "" {
		return 0
	}
	b, err := os.ReadFile(n.opts.BdSeqFile)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v > 255 {
		n.log.Warn("sparkplug bdSeq file unreadable; starting at 0", "file", n.opts.BdSeqFile)
		return 0
	}
	return v
}

// takeBdSeq is the bdSeq of the next CONNECT; the one after it is saved.
func (n *EdgeNode) takeBdSeq() uint64 {
	v := n.nextBdSeq
	n.nextBdSeq = (v + 1) % 256
	if f := n.opts.BdSeqFile; f != "" {
		tmp := f + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.FormatUint(n.nextBdSeq, 10)+"\n"), 0o640); err == nil {
			err = os.Rename(tmp, f)
		}
	}
	return v
}

// deathPayload is NDEATH: the bdSeq of the connection, nothing else
// (no seq) [tck-id-payloads-ndeath-seq, tck-id-payloads-ndeath-bdseq].
func deathPayload(bdSeq uint64, now time.Time) []byte {
	p := &Payload{Timestamp: proto.Uint64(millis(now)), Metrics: []*Payload_Metric{{Name: proto.String(MetricBdSeq),
		Datatype: proto.Uint32(uint32(DataType_Int64)), Value: &Payload_Metric_LongValue{LongValue: bdSeq}}}}
	b, _ := proto.Marshal(p)
	return b
}

// run connects, serves a session until it ends, and connects again.
func (n *EdgeNode) run() {
	defer close(n.done)
	pause := time.Second
	for {
		select {
		case <-n.stop:
			return
		default:
		}
		ev, err := n.session()
		if err != nil {
			n.log.Warn("sparkplug: no session", "server", n.opts.Servers[n.server], "err", err)
			if len(n.opts.Servers) > 1 {
				n.server = (n.server + 1) % len(n.opts.Servers)
			}
			d := pause/2 + rand.N(pause/2+1)
			pause = min(2*pause, 5*time.Second)
			select {
			case <-n.stop:
				return
			case <-time.After(d):
			}
			continue
		}
		pause = time.Second
		// The session ended: by the server (the will went out), by the
		// primary host going offline or a Next Server command (NDEATH
		// was published), or by Close.
		n.log.Info("sparkplug session ended", "why", ev)
		if ev == evHostOffline || ev == evNextServer {
			n.server = (n.server + 1) % len(n.opts.Servers)
		}
		if ev == "stop" {
			return
		}
		// A short pause before the next CONNECT: a server whose primary
		// host stays offline must not see a connection a millisecond.
		select {
		case <-n.stop:
			return
		case <-time.After(pause/2 + rand.N(pause/2+1)):
		}
	}
}

// session runs one MQTT connection: CONNECT with the will, subscriptions,
// births (now, or on the primary host's STATE), until an event ends it.
func (n *EdgeNode) session() (string, error) {
	server := n.opts.Servers[n.server]
	bd := n.takeBdSeq()
	ev := make(chan string, 4)
	po := paho.NewClientOptions().AddBroker(server).SetClientID(n.opts.ClientID).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5*time.Second).SetKeepAlive(n.opts.KeepAlive).SetOrderMatters(false).
		SetBinaryWill(n.topic(NDEATH, false), deathPayload(bd, time.Now()), 1, false)
	if n.opts.Username != "" {
		po.SetUsername(n.opts.Username).SetPassword(n.opts.Password)
	}
	if n.opts.TLS != nil {
		po.SetTLSConfig(n.opts.TLS)
	}
	po.SetConnectionLostHandler(func(paho.Client, error) { send(ev, evLost) })
	c := paho.NewClient(po)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		if tok.Error() != nil {
			return "", fmt.Errorf("connect: %w", tok.Error())
		}
		return "", errors.New("connect: no answer in 10 s")
	}
	n.mu.Lock()
	n.c, n.ev, n.bdSeq, n.born = c, ev, bd, false
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.c, n.born = nil, false
		n.mu.Unlock()
	}()
	n.log.Info("sparkplug connected", "server", server, "bdSeq", bd)

	// Commands and STATE are subscribed before any birth, so that a rebirth
	// request or a STATE change right after the births is heard.
	subs := map[string]paho.MessageHandler{
		n.topic(NCMD, false): func(_ paho.Client, m paho.Message) { n.onNCMD(c, m) },
		n.topic(DCMD, true):  func(_ paho.Client, m paho.Message) { n.onDCMD(c, m) },
	}
	if n.opts.PrimaryHost != "" {
		subs[StateTopic(n.opts.PrimaryHost)] = func(_ paho.Client, m paho.Message) { n.onState(c, m) }
	}
	for topic, h := range subs {
		if tok := c.Subscribe(topic, 1, h); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			c.Disconnect(0) // the will goes out: nothing was born
			return "", fmt.Errorf("subscribe %s: %v", topic, tok.Error())
		}
	}
	if n.opts.PrimaryHost == "" {
		n.birth(c)
	} else {
		n.log.Info("sparkplug: waiting for the primary host to be online before the births", "host_id", n.opts.PrimaryHost)
	}
	select {
	case e := <-ev:
		if e != evLost {
			n.die(c)
		}
		return e, nil
	case <-n.stop:
		n.die(c)
		return "stop", nil
	}
}

func send(ch chan string, e string) {
	select {
	case ch <- e:
	default:
	}
}

// die publishes NDEATH (QoS 1, as the will would be) and disconnects.
func (n *EdgeNode) die(c paho.Client) {
	n.mu.Lock()
	bd := n.bdSeq
	n.born = false
	n.mu.Unlock()
	if c.IsConnectionOpen() {
		tok := c.Publish(n.topic(NDEATH, false), 1, false, deathPayload(bd, time.Now()))
		if tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
			n.published.Add(1)
		}
	}
	c.Disconnect(250)
}

// current reports whether c is still the node's connection (a handler of
// an ended connection must not act).
func (n *EdgeNode) current(c paho.Client) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.c == c
}

// nextSeqLocked is the next message's seq, 0..255 [tck-id-payloads-sequence-num-incrementing].
func (n *EdgeNode) nextSeqLocked() uint64 {
	s := n.seq
	n.seq = (n.seq + 1) % 256
	return s
}

// aliasLocked gives name its alias (the same one for the process's life).
func (n *EdgeNode) aliasLocked(name string, t DataType, device bool) uint64 {
	a, ok := n.alias[name]
	if !ok {
		a = n.nextAlias
		n.nextAlias++
		n.alias[name], n.byAlias[a] = a, name
	}
	n.types[name] = t
	if device {
		n.device[name] = true
	}
	return a
}

// Rebirth publishes NBIRTH and DBIRTH again on the current session (what
// a host's "Node Control/Rebirth" asks for); false without a session.
func (n *EdgeNode) Rebirth() bool {
	n.mu.Lock()
	c := n.c
	n.mu.Unlock()
	if c == nil {
		return false
	}
	return n.birth(c)
}

// birth publishes NBIRTH (seq 0, the session's bdSeq) and DBIRTH, as one
// sequence no DDATA can enter.
func (n *EdgeNode) birth(c paho.Client) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.c != c {
		return false
	}
	// The values are read under the lock that orders publishing: a DDATA
	// of newer values cannot go out between reading them and the DBIRTH
	// (the host would keep the older ones). The callbacks must not call
	// back into the node.
	node, dev := n.opts.NodeMetrics(), n.opts.DeviceMetrics()
	ts := proto.Uint64(millis(time.Now()))
	n.seq = 0 // [tck-id-payloads-nbirth-seq]
	nb := &Payload{Timestamp: ts, Seq: proto.Uint64(n.nextSeqLocked())}
	nb.Metrics = append(nb.Metrics, &Payload_Metric{Name: proto.String(MetricBdSeq), Timestamp: ts,
		Datatype: proto.Uint32(uint32(DataType_Int64)), Value: &Payload_Metric_LongValue{LongValue: n.bdSeq}})
	ctl := []Metric{{Name: MetricRebirth, Type: DataType_Boolean, Value: false}, {Name: MetricNextServer, Type: DataType_Boolean, Value: false}}
	for _, list := range [][]Metric{ctl, node} {
		for i := range list {
			if pm, err := n.birthMetricLocked(&list[i], ts, false); err == nil {
				nb.Metrics = append(nb.Metrics, pm)
			} else {
				n.log.Error("sparkplug: node metric left out of NBIRTH", "err", err)
			}
		}
	}
	for i := range n.opts.Definitions {
		d := n.opts.Definitions[i]
		pm := &Payload_Metric{Name: proto.String(TypesPrefix + d.Name), Timestamp: ts}
		if err := encodeMetric(pm, &d, true); err != nil {
			n.log.Error("sparkplug: template definition left out of NBIRTH", "err", err)
			continue
		}
		nb.Metrics = append(nb.Metrics, pm)
	}
	db := &Payload{Timestamp: ts}
	for i := range dev {
		if pm, err := n.birthMetricLocked(&dev[i], ts, true); err == nil {
			db.Metrics = append(db.Metrics, pm)
		} else {
			n.log.Error("sparkplug: device metric left out of DBIRTH", "err", err)
		}
	}
	if !n.publishLocked(c, n.topic(NBIRTH, false), nb) {
		return false
	}
	db.Seq = proto.Uint64(n.nextSeqLocked())
	if !n.publishLocked(c, n.topic(DBIRTH, true), db) {
		return false
	}
	n.born = true
	n.births.Add(1)
	n.log.Info("sparkplug births published", "bdSeq", n.bdSeq, "device_metrics", len(db.Metrics))
	return true
}

func (n *EdgeNode) birthMetricLocked(m *Metric, ts *uint64, device bool) (*Payload_Metric, error) {
	pm := &Payload_Metric{Name: proto.String(m.Name), Timestamp: ts}
	if err := encodeMetric(pm, m, true); err != nil {
		return nil, err
	}
	pm.Alias = proto.Uint64(n.aliasLocked(m.Name, m.Type, device))
	return pm, nil
}

// publishLocked sends p at QoS 0, not retained (every Sparkplug message
// but NDEATH and STATE [tck-id-topics-nbirth-qos, tck-id-topics-ddata-qos]).
func (n *EdgeNode) publishLocked(c paho.Client, topic string, p *Payload) bool {
	b, err := proto.Marshal(p)
	if err != nil {
		n.log.Error("sparkplug: encoding", "topic", topic, "err", err)
		return false
	}
	tok := c.Publish(topic, 0, false, b)
	// QoS 0: the token completes when the packet is written. Waiting keeps
	// the wire order of this lock, and tells a dead connection at once.
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		n.log.Warn("sparkplug: publish failed", "topic", topic, "err", tok.Error())
		return false
	}
	n.published.Add(1)
	return true
}

// Data publishes DDATA with ms (device metrics born in DBIRTH, by alias);
// without a session or before the births it is counted as dropped (the
// next DBIRTH carries the values of then). It reports whether it went out.
func (n *EdgeNode) Data(ms []Metric) bool {
	now := proto.Uint64(millis(time.Now()))
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.c == nil || !n.born {
		n.dropped.Add(1)
		return false
	}
	p := &Payload{Timestamp: now, Metrics: make([]*Payload_Metric, 0, len(ms))}
	for i := range ms {
		m := &ms[i]
		a, ok := n.alias[m.Name]
		if !ok || !n.device[m.Name] {
			n.log.Error("sparkplug: DDATA names a metric DBIRTH did not; left out", "metric", m.Name)
			continue
		}
		pm := &Payload_Metric{Alias: proto.Uint64(a), Timestamp: now}
		if err := encodeMetric(pm, m, false); err != nil {
			n.log.Error("sparkplug: DDATA metric left out", "err", err)
			continue
		}
		p.Metrics = append(p.Metrics, pm)
	}
	p.Seq = proto.Uint64(n.nextSeqLocked())
	if !n.publishLocked(n.c, n.topic(DDATA, true), p) {
		n.dropped.Add(1)
		return false
	}
	return true
}

// lookup resolves a command's metric among node (device false) or device
// metrics.
func (n *EdgeNode) lookup(device bool) Lookup {
	return func(alias uint64, name string) (string, DataType, bool) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if name == "" {
			var ok bool
			if name, ok = n.byAlias[alias]; !ok {
				return "", 0, false
			}
		}
		t, ok := n.types[name]
		if !ok || n.device[name] != device {
			return "", 0, false
		}
		return name, t, true
	}
}

func (n *EdgeNode) reject(topic string, err error) {
	n.log.Warn("sparkplug: command refused", "topic", topic, "err", err)
	if n.opts.Rejected != nil {
		n.opts.Rejected(topic, err)
	}
}

// onNCMD takes Node Control writes and passes the rest on.
func (n *EdgeNode) onNCMD(c paho.Client, m paho.Message) {
	if !n.current(c) {
		return
	}
	ws, err := DecodeCommand(m.Payload(), n.lookup(false))
	if err != nil {
		n.reject(m.Topic(), err)
		return
	}
	var rest []Write
	for _, w := range ws {
		switch w.Name {
		case MetricRebirth:
			if w.Value == true {
				n.log.Info("sparkplug: rebirth requested")
				n.birth(c)
			}
		case MetricNextServer:
			if w.Value == true {
				n.mu.Lock()
				send(n.ev, evNextServer)
				n.mu.Unlock()
			}
		default:
			rest = append(rest, w)
		}
	}
	if len(rest) > 0 && n.opts.OnWrite != nil {
		n.opts.OnWrite("", rest)
	}
}

// onDCMD passes the device's writes on.
func (n *EdgeNode) onDCMD(c paho.Client, m paho.Message) {
	if !n.current(c) {
		return
	}
	ws, err := DecodeCommand(m.Payload(), n.lookup(true))
	if err != nil {
		n.reject(m.Topic(), err)
		return
	}
	if n.opts.OnWrite != nil {
		n.opts.OnWrite(n.opts.Device, ws)
	}
}

// onState follows the primary host: births when it is online, the end of
// the session when it is offline; a STATE older than the last one taken is
// ignored (a retained message overtaken by a newer one).
func (n *EdgeNode) onState(c paho.Client, m paho.Message) {
	if !n.current(c) {
		return
	}
	st, err := ParseState(m.Payload())
	if err != nil {
		n.log.Warn("sparkplug: primary host STATE ignored", "err", err)
		return
	}
	n.mu.Lock()
	if st.Timestamp < n.lastState {
		n.mu.Unlock()
		n.log.Info("sparkplug: an older STATE ignored", "timestamp", st.Timestamp)
		return
	}
	n.lastState = st.Timestamp
	born := n.born
	// Offline: a session with births ends (NDEATH) and the node walks to
	// the next server. One that has not been born yet waits here when
	// there is no other server to try (a reconnect would find the same
	// retained STATE).
	if !st.Online && (born || len(n.opts.Servers) > 1) {
		send(n.ev, evHostOffline)
	}
	n.mu.Unlock()
	if st.Online && !born {
		n.birth(c)
	}
}
