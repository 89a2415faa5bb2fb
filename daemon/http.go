package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	sdaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// metrics are the Prometheus series of /metrics that the pipeline updates;
// the others are read from their owners when scraped (handler).
type metrics struct {
	reg    *prometheus.Registry
	frames *prometheus.CounterVec
	drops  *prometheus.CounterVec
	errors prometheus.Counter
	stages *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.frames = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linesight_frames_total", Help: "Inspected frames by verdict."}, []string{"verdict"})
	m.drops = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linesight_drops_total", Help: "Anomaly maps skipped because the encoder was behind (where=map)."}, []string{"where"})
	m.errors = prometheus.NewCounter(prometheus.CounterOpts{Name: "linesight_inspection_errors_total", Help: "Frames that could not be inspected."})
	m.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "linesight_stage_seconds", Help: "Time per pipeline stage.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"stage"})
	m.reg.MustRegister(m.frames, m.drops, m.errors, m.stages, prometheus.NewGoCollector())
	return m
}

// observe records one inspected frame: its verdict, the detector's stages
// (patchcore.Stage names), the time it waited before inspection
// ("capture") and from capture to result ("total").
func (m *metrics) observe(verdict string, t *patchcore.Timing, queued, total time.Duration) {
	m.frames.WithLabelValues(verdict).Inc()
	m.stages.WithLabelValues("capture").Observe(queued.Seconds())
	for st, d := range t {
		m.stages.WithLabelValues(patchcore.Stage(st).String()).Observe(d.Seconds())
	}
	m.stages.WithLabelValues("total").Observe(total.Seconds())
}

// errNeedsBank: the station runs but has no bank to inspect with.
var errNeedsBank = errors.New(mqtt.StateNeedsBank + ": no bank to inspect with yet; teach one (cmd/bank/enroll, linesight enroll), push one or activate one")

// healthy returns why the station is unhealthy, or nil.
func (s *station) healthy() error {
	h := s.cam.Health()
	switch {
	case !h.Connected:
		return errors.New("camera not connected: " + h.LastError)
	case h.Stalled:
		return errors.New("camera stalled")
	case !s.client.Connected():
		return errors.New("MQTT broker not connected")
	case s.banks.current() == nil:
		return errNeedsBank
	}
	if err := s.banks.dbError(); err != nil {
		return fmt.Errorf("serving the bank loaded, but the bank database is unusable: %w", err)
	}
	return nil
}

// handler serves /metrics, /healthz and the console.
func (s *station) handler() http.Handler {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	s.metrics.reg.MustRegister(
		gauge("linesight_outbox_results", "Results not delivered yet: queued in the outbox, or handed to the MQTT session and not yet completed by the broker (QoS 2 PUBCOMP).", func() float64 { r, _ := s.outbox.Len(); return float64(r) }),
		gauge("linesight_outbox_maps", "Maps not delivered yet: queued in the outbox, or handed to the MQTT session and not yet completed by the broker (QoS 2 PUBCOMP).", func() float64 { _, m := s.outbox.Len(); return float64(m) }),
		outboxDrops{s.outbox},
		counter("linesight_mqtt_session_lost_total", "Reconnections on which the broker had lost the station's session (restarted without persistence, or expired it) while results were in flight; those were sent again.", func() float64 { n, _ := s.outbox.Forgotten(); return float64(n) }),
		counter("linesight_mqtt_resent_total", "Messages sent again as new because the broker lost the session after it had taken their release: each may have been delivered twice.", func() float64 { _, n := s.outbox.Forgotten(); return float64(n) }),
		counter("linesight_camera_reconnects_total", "Camera reconnections.", func() float64 { return float64(s.cam.Health().Reconnects) }),
		counter("linesight_camera_resyncs_total", "Damaged stretches skipped in an exec: or pipe: camera stream.", func() float64 { return float64(s.cam.Health().Resyncs) }),
		counter("linesight_camera_dropped_total", "Captured frames dropped by the frame buffer's policy (queue.size, queue.drop).", func() float64 { return float64(s.cam.Health().Dropped) }),
		gauge("linesight_bank_version", "Active bank version.", func() float64 { return float64(s.banks.version()) }),
		gauge("linesight_evidence_frames", "Frames kept in the evidence ring.", func() float64 {
			if s.evidence == nil {
				return 0
			}
			n, _, _, _ := s.evidence.stats()
			return float64(n)
		}),
		counter("linesight_evidence_skipped_total", "Inspected frames not kept in the evidence ring because its writer was behind.", func() float64 {
			if s.evidence == nil {
				return 0
			}
			return float64(s.evidence.skipped.Load())
		}),
		gauge("linesight_bank_db_ok", "1 while the bank database file is there and readable, 0 when it is gone or damaged.", func() float64 {
			if s.banks.dbError() != nil {
				return 0
			}
			return 1
		}),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", s.serveHealth)
	mux.HandleFunc("GET /map/{key}/{seq}", s.serveMap) // anomaly maps by URL for SCADA (sparkplug.go)
	if s.console != nil {
		s.console.routes(mux)
	}
	return mux
}

func (s *station) serveHealth(w http.ResponseWriter, _ *http.Request) {
	err := s.healthy()
	age := -1.0
	if t := s.pipe.lastDone.Load(); t > 0 {
		age = time.Since(time.Unix(0, t)).Seconds()
	}
	body := map[string]any{"ok": err == nil, "camera": cameraStatus(s.cam.Health()), "broker_connected": s.client.Connected(),
		"bank_version": s.banks.version(), "last_frame_age_s": age, "state": s.state()}
	if err != nil {
		body["error"] = err.Error()
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

func cameraStatus(h camera.Health) *mqtt.CameraStatus {
	return &mqtt.CameraStatus{Source: h.Source, Kind: string(h.Kind), Connected: h.Connected, Backend: h.Backend,
		Width: h.Width, Height: h.Height, FPS: h.FPS, LastFrame: h.LastFrame.UTC().Format(time.RFC3339Nano), Reconnects: h.Reconnects,
		Read: h.Read, Dropped: h.Dropped, Skipped: h.Skipped, Resyncs: h.Resyncs, Stalled: h.Stalled, LastError: h.LastError}
}

// status is the station's state for the retained status topic and
// cmd/status.
func (s *station) status(state string) mqtt.Status {
	st := mqtt.Status{State: state, Station: s.cfg.Station.ID, Version: Version, Time: time.Now().UTC().Format(time.RFC3339)}
	if state != mqtt.StateOnline {
		return st
	}
	st.State = s.state()
	st.Model = &mqtt.ModelStatus{Path: s.model.Path, SHA256: s.model.SHA256}
	if e := s.enrollState(); e != nil {
		st.Enroll = e
	}
	if s.evidence != nil {
		n, bytes, lo, hi := s.evidence.stats()
		st.Evidence = &mqtt.EvidenceStatus{Frames: n, Bytes: bytes, Oldest: lo, Newest: hi, Skipped: s.evidence.skipped.Load()}
	}
	if det := s.banks.current(); det != nil {
		if mf := s.banks.modelOf(det); mf != nil {
			st.Model = &mqtt.ModelStatus{Path: mf.Path, SHA256: mf.SHA256}
		}
		m := det.Bank().Meta
		st.Bank = &mqtt.BankStatus{Version: m.Version, Created: m.Created.Format(time.RFC3339), Vectors: m.Count, Threshold: m.Threshold.Value}
		st.Bank.Recipe, st.Bank.RecipeNumber = s.recipes.of(m.Version)
		if err := s.banks.dbError(); err != nil {
			st.Bank.DBError = err.Error()
		}
		if t, override := det.Threshold(); override {
			st.ThresholdOverride = &t
		}
	}
	if s.cam != nil {
		st.Camera = cameraStatus(s.cam.Health())
	}
	if s.recv != nil {
		st.Transfer = s.recv.State()
	}
	return st
}

// state is StateOnline, or StateNeedsBank while there is no bank.
func (s *station) state() string {
	if s.banks == nil || s.banks.current() == nil {
		return mqtt.StateNeedsBank
	}
	return mqtt.StateOnline
}

func (s *station) statusJSON(state string) []byte {
	b, _ := json.Marshal(s.status(state))
	return b
}

func (s *station) publishStatus() {
	if err := s.client.PublishNow(mqtt.TopicStatus, true, s.statusJSON(mqtt.StateOnline)); err != nil {
		s.log.Warn("status not published", "err", err)
	}
}

// watchdog pings systemd while the process is alive and inspecting: the
// pipeline is not stuck inside a frame. The broker and the camera are not
// its business: restarting the station would bring neither back (it
// reconnects to both by itself), while a broker outage of a few minutes
// would have systemd kill it until its start limit. Their health is in
// /healthz, the status and the metrics.
func (s *station) watchdog(ctx context.Context) {
	iv, err := sdaemon.SdWatchdogEnabled(false)
	if err != nil || iv == 0 {
		return
	}
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.pipe.stuck(iv) {
			s.log.Error("a frame has been in inspection longer than the watchdog interval; withholding WATCHDOG=1", "interval", iv)
			continue
		}
		sdaemon.SdNotify(false, sdaemon.SdNotifyWatchdog)
	}
}

// outboxDrops counts dropped messages by reason (full: the oldest made
// room; write: the outbox could not be written, e.g. a full disk;
// damaged: an entry did not decode), so an alert can tell a long outage
// from a failing disk.
type outboxDrops struct{ ob *mqtt.Outbox }

var outboxDropsDesc = prometheus.NewDesc("linesight_outbox_dropped_total",
	"Messages dropped from the outbox, by reason: full (over max_results/max_maps, the oldest went), write (the outbox could not be written) or damaged (an entry in the file did not decode).",
	[]string{"reason"}, nil)

func (d outboxDrops) Describe(ch chan<- *prometheus.Desc) { ch <- outboxDropsDesc }

func (d outboxDrops) Collect(ch chan<- prometheus.Metric) {
	by := d.ob.DroppedBy()
	for _, reason := range []string{mqtt.DropFull, mqtt.DropWrite, mqtt.DropDamaged} {
		ch <- prometheus.MustNewConstMetric(outboxDropsDesc, prometheus.CounterValue, float64(by[reason]), reason)
	}
}
