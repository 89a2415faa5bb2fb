package daemon

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/mqtt"
)

// scada hands results to the PLC handshake and the Sparkplug edge node, off
// the inspection path: the pipeline queues each result (never waiting), and
// one goroutine publishes, in order, the Sparkplug DDATA and the handshake
// topics. Triggers, acknowledgements and recipe changes come through the
// same queue, so the handshake's state changes one event at a time.
type scada struct {
	s     *station
	ev    chan scadaEvent
	plc   *handshake // nil without plc.enabled
	spark *spark     // nil without sparkplug.enabled
	drops atomic.Uint64
}

// scadaQueue is how many events may wait; beyond it a result is dropped for
// SCADA (counted; the JSON result is published regardless).
const scadaQueue = 64

type scadaKind int

const (
	evResult scadaKind = iota
	evFailed
	evTrigger
	evAck
	evRecipe
	evRepublish
)

// errContinuous: a trigger while the camera runs continuously.
var errContinuous = errors.New("the camera is in continuous mode; set camera.mode: triggered")

type scadaEvent struct {
	kind     scadaKind
	res      mqtt.Result // evResult: the message published (its Regions are its own)
	bankHash string      // evResult: the SHA-256 of the bank that scored it
	seq      uint64      // evFailed: the frame; evAck: the seq acknowledged
	via      string      // evTrigger, evAck: "topic" or "sparkplug"
	code     int         // evRecipe: mqtt.PLCErrRecipe when a selection was refused
	at       time.Time   // when the event happened
}

func newSCADA(s *station) *scada {
	return &scada{s: s, ev: make(chan scadaEvent, scadaQueue)}
}

// send queues e; a full queue drops it (counted).
func (c *scada) send(e scadaEvent) {
	if c == nil {
		return
	}
	if e.at.IsZero() {
		e.at = time.Now()
	}
	select {
	case c.ev <- e:
	default:
		c.drops.Add(1)
	}
}

// result is the pipeline's hand-off of a published result.
func (c *scada) result(res *mqtt.Result, bankHash string) {
	c.send(scadaEvent{kind: evResult, res: *res, bankHash: bankHash})
}

// failed is the pipeline's hand-off of a frame it could not inspect.
func (c *scada) failed(seq uint64) { c.send(scadaEvent{kind: evFailed, seq: seq}) }

// run serves events and the heartbeat until ctx ends, then what is
// still queued (the pipeline's last results, drained before this stops).
func (c *scada) run(ctx context.Context) {
	var hb, health <-chan time.Time
	if c.plc != nil {
		t := time.NewTicker(time.Duration(c.s.cfg.PLC.Heartbeat))
		defer t.Stop()
		hb = t.C
		c.plc.publish(true)
	}
	var seen [3]any
	if c.spark != nil {
		t := time.NewTicker(healthEvery)
		defer t.Stop()
		health = t.C
	}
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case e := <-c.ev:
					c.handle(e)
				default:
					return
				}
			}
		case e := <-c.ev:
			c.handle(e)
		case <-hb:
			c.plc.tick()
		case <-health:
			c.spark.health(&seen)
		}
	}
}

// healthEvery is how often the Sparkplug health metrics are looked at
// (published when they changed).
const healthEvery = 2 * time.Second

// onConnect runs on every connection of the station's MQTT client: the
// status, and the handshake topics again (they are retained: a broker
// without persistence that restarted has lost them).
func (s *station) onConnect() {
	s.publishStatus()
	s.scada.send(scadaEvent{kind: evRepublish})
}

// plcInputs are the PLC's topics the client subscribes to (nil without
// plc.enabled; plc/recipe is refused later without recipes.plc_select).
func (s *station) plcInputs() map[string]func(string, []byte, bool) {
	if !s.cfg.PLC.Enabled {
		return nil
	}
	return map[string]func(string, []byte, bool){mqtt.TopicPLCTrigger: s.plcInput, mqtt.TopicPLCAck: s.plcInput, mqtt.TopicPLCRecipeSelect: s.plcInput}
}

func (c *scada) handle(e scadaEvent) {
	switch e.kind {
	case evResult:
		// The PLC's topics first (the handshake is what a line waits on),
		// then one DDATA with the result and the handshake's change.
		if c.plc != nil {
			c.plc.onResult(&e)
			c.plc.publishTopics(false)
		}
		if c.spark != nil {
			c.spark.onResult(&e, c.plc)
		}
	case evFailed:
		if c.plc != nil {
			c.plc.onFailed()
		}
	case evTrigger:
		if c.plc != nil {
			c.plc.onTrigger(e)
		} else if err := c.s.triggerCamera(); err != nil {
			c.s.log.Warn("trigger refused", "via", e.via, "err", err)
		}
	case evAck:
		if c.plc != nil {
			c.plc.onAck(e.seq)
		}
	case evRepublish:
		if c.plc != nil {
			c.plc.publish(true)
		}
		if c.spark != nil {
			c.spark.recipeChanged()
		}
	case evRecipe:
		if c.plc != nil {
			if e.code == mqtt.PLCErrRecipe { // a refused selection
				c.plc.set(func(st *plcState) { st.Error = mqtt.PLCErrRecipe })
			}
			c.plc.recipeChanged()
		}
		if c.spark != nil {
			c.spark.recipeChanged()
		}
	}
}

// triggerCamera asks the camera for one frame (triggered mode).
func (s *station) triggerCamera() error {
	if s.cam.Mode() != camera.Triggered {
		return errContinuous
	}
	return s.cam.Trigger()
}

// handshake is the PLC handshake's state: what the retained plc/* topics
// and the Sparkplug "PLC/*" metrics say. Only the scada goroutine changes
// it; mu lets the edge node's births read it.
//
//	trigger --> busy=1 ready=0 --> (inspection) --> result_seq, ok/ng,
//	error=0, busy=0, result_ready=1 --> ack=<result_seq> --> result_ready=0,
//	ready=1
type handshake struct {
	s *station

	mu      sync.Mutex
	st      plcState
	sent    plcState // what the topics say now
	anySent bool

	pending bool // a trigger waits for its result
	trigAt  time.Time
	// lat is trigger -> result_ready acknowledged by the broker, in
	// /metrics (linesight_plc_trigger_to_result_seconds).
	lat prometheus.Histogram
}

// plcState is the handshake's values.
type plcState struct {
	Ready, Busy, ResultReady, OK, NG bool
	ResultSeq                        uint64
	Error                            int
	Heartbeat                        uint64
	Recipe                           int
}

func newHandshake(s *station) *handshake {
	h := &handshake{s: s, lat: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "linesight_plc_trigger_to_result_seconds",
		Help:    "PLC handshake: from a trigger taken to result_ready acknowledged by the broker.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)})}
	s.metrics.reg.MustRegister(h.lat)
	h.st.Ready = h.canTake()
	h.st.Recipe = h.recipeNumber()
	return h
}

// state returns the values now (for births).
func (h *handshake) state() plcState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st
}

func (h *handshake) set(f func(*plcState)) {
	h.mu.Lock()
	f(&h.st)
	h.mu.Unlock()
}

// canTake is whether a trigger can be taken now, besides busy and an
// unacknowledged result: a bank, a triggered camera that is connected.
func (h *handshake) canTake() bool {
	s := h.s
	return s.banks.current() != nil && s.cam.Mode() == camera.Triggered && s.cam.Health().Connected
}

func (h *handshake) recipeNumber() int {
	if rc := h.s.recipes.active(); rc != nil {
		return rc.Number
	}
	return 0
}

// ready is the value of ready for the state st.
func (h *handshake) ready(st *plcState) bool {
	return !st.Busy && !(h.s.cfg.PLC.AckRequired && st.ResultReady) && h.canTake()
}

func (h *handshake) onTrigger(e scadaEvent) {
	s := h.s
	st := h.state()
	code := mqtt.PLCErrNone
	switch {
	case s.banks.current() == nil:
		code = mqtt.PLCErrNoBank
	case s.cam.Mode() != camera.Triggered:
		code = mqtt.PLCErrTrigger
	case !s.cam.Health().Connected:
		code = mqtt.PLCErrCamera
	case st.Busy || (s.cfg.PLC.AckRequired && st.ResultReady):
		code = mqtt.PLCErrNotReady
	}
	if code == mqtt.PLCErrNone {
		// The camera first: the frame is on its way while the topics go out.
		if err := s.cam.Trigger(); err != nil {
			code = mqtt.PLCErrTrigger
		}
	}
	if code != mqtt.PLCErrNone {
		s.log.Warn("PLC trigger refused", "via", e.via, "error", code)
		h.set(func(st *plcState) { st.Error = code; st.Ready = h.ready(st) })
		h.publish(false)
		return
	}
	h.pending, h.trigAt = true, e.at
	h.set(func(st *plcState) { st.Busy, st.Ready, st.Error = true, false, mqtt.PLCErrNone })
	h.publish(false)
}

func (h *handshake) onResult(e *scadaEvent) {
	fail := e.res.Verdict == mqtt.Fail
	h.set(func(st *plcState) {
		st.ResultSeq, st.OK, st.NG, st.Error = e.res.Seq, !fail, fail, mqtt.PLCErrNone
		st.Busy, st.ResultReady = false, true
		st.Recipe = e.res.RecipeNumber
		st.Ready = h.ready(st)
	})
}

// resultOut is told that result_ready went out: the trigger's latency.
func (h *handshake) resultOut(now time.Time) {
	if !h.pending {
		return
	}
	h.pending = false
	h.lat.Observe(now.Sub(h.trigAt).Seconds())
}

func (h *handshake) onFailed() {
	h.pending = false
	h.set(func(st *plcState) { st.Busy, st.Error = false, mqtt.PLCErrInspection; st.Ready = h.ready(st) })
	h.publish(false)
}

func (h *handshake) onAck(seq uint64) {
	h.set(func(st *plcState) {
		if !st.ResultReady || seq != st.ResultSeq {
			st.Error = mqtt.PLCErrAck
			return
		}
		st.ResultReady = false
		if st.Error == mqtt.PLCErrAck {
			st.Error = mqtt.PLCErrNone
		}
		st.Ready = h.ready(st)
	})
	h.publish(false)
}

func (h *handshake) recipeChanged() {
	n := h.recipeNumber()
	h.set(func(st *plcState) { st.Recipe = n })
	h.publish(false)
}

// tick is the heartbeat; it also times out a trigger without a result and
// follows the camera and bank (ready).
func (h *handshake) tick() {
	timeout := h.pending && time.Since(h.trigAt) > time.Duration(h.s.cfg.PLC.ResultTimeout)
	if timeout {
		h.pending = false
		h.s.log.Warn("PLC trigger without a result in time", "timeout", time.Duration(h.s.cfg.PLC.ResultTimeout))
	}
	h.set(func(st *plcState) {
		st.Heartbeat++
		if timeout {
			st.Busy, st.Error = false, mqtt.PLCErrTimeout
		}
		st.Ready = h.ready(st)
	})
	h.publish(false)
}

// publish sends the topics whose value changed (all with force), result
// fields before result_ready, and the Sparkplug metrics that changed.
func (h *handshake) publish(force bool) {
	st := h.publishTopics(force)
	if sp := h.s.scada.spark; sp != nil {
		sp.plcChanged(&st, force)
	}
}

// publishTopics sends the plc/* topics whose value changed (all with
// force) and returns the state they were sent for.
func (h *handshake) publishTopics(force bool) plcState {
	st := h.state()
	old := h.sent
	all := force || !h.anySent
	type item struct {
		topic string
		val   string
		same  bool
	}
	items := []item{
		{mqtt.TopicPLCResultSeq, strconv.FormatUint(st.ResultSeq, 10), old.ResultSeq == st.ResultSeq},
		{mqtt.TopicPLCOK, bit(st.OK), old.OK == st.OK},
		{mqtt.TopicPLCNG, bit(st.NG), old.NG == st.NG},
		{mqtt.TopicPLCError, strconv.Itoa(st.Error), old.Error == st.Error},
		{mqtt.TopicPLCBusy, bit(st.Busy), old.Busy == st.Busy},
		{mqtt.TopicPLCResultReady, bit(st.ResultReady), old.ResultReady == st.ResultReady && old.ResultSeq == st.ResultSeq},
		{mqtt.TopicPLCReady, bit(st.Ready), old.Ready == st.Ready},
		{mqtt.TopicPLCRecipe, strconv.Itoa(st.Recipe), old.Recipe == st.Recipe},
		{mqtt.TopicPLCHeartbeat, strconv.FormatUint(st.Heartbeat, 10), old.Heartbeat == st.Heartbeat},
	}
	var out []mqtt.Item
	readyOut := false
	for _, it := range items {
		if it.same && !all {
			continue
		}
		out = append(out, mqtt.Item{Topic: it.topic, Retained: true, Payload: []byte(it.val)})
		readyOut = readyOut || (it.topic == mqtt.TopicPLCResultReady && st.ResultReady)
	}
	// One round trip for all: handed over in this order, result fields
	// before result_ready, and the broker keeps one client's order.
	if err := h.s.client.PublishAllNow(out...); err != nil && len(out) > 0 {
		h.s.log.Debug("PLC topics not all published; all are sent again on reconnect", "err", err)
		h.anySent = false
	} else {
		if readyOut {
			h.resultOut(time.Now())
		}
		h.sent, h.anySent = st, true
	}
	return st
}

func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// plcInput takes the PLC's messages on plc/trigger, plc/ack and
// plc/recipe. Retained ones are refused: they would be taken again on
// every reconnect.
func (s *station) plcInput(topic string, payload []byte, retained bool) {
	name := topic[strings.LastIndex(topic, "plc/"):]
	if retained {
		s.log.Warn("retained PLC message refused: publish it without the retain flag (and clear this one with an empty retained message)", "topic", name)
		return
	}
	if len(payload) > 64 {
		s.log.Warn("PLC message refused: too long", "topic", name, "bytes", len(payload))
		return
	}
	v := strings.TrimSpace(string(payload))
	switch name {
	case mqtt.TopicPLCTrigger:
		s.scada.send(scadaEvent{kind: evTrigger, via: "topic"})
	case mqtt.TopicPLCAck:
		seq, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.log.Warn("PLC ack refused: want the result_seq as decimal text", "payload", v)
			return
		}
		s.scada.send(scadaEvent{kind: evAck, seq: seq, via: "topic"})
	case mqtt.TopicPLCRecipeSelect:
		n, err := strconv.Atoi(v)
		if err != nil {
			s.log.Warn("PLC recipe refused: want a recipe number as decimal text", "payload", v)
			return
		}
		if err := s.selectByPLC(n, "topic"); err != nil {
			s.log.Warn("PLC recipe selection refused", "number", n, "err", err)
			s.scada.send(scadaEvent{kind: evRecipe, code: mqtt.PLCErrRecipe})
		}
	}
}
