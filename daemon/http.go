package daemon

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/linesight/linesight/patchcore"
)

func runtimeNumCPU() int { return runtime.NumCPU() }

// metrics are the Prometheus series of /metrics.
type metrics struct {
	reg    *prometheus.Registry
	frames *prometheus.CounterVec
	drops  *prometheus.CounterVec
	errors prometheus.Counter
	stages *prometheus.HistogramVec
	gauges []prometheus.Collector
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.frames = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linesight_frames_total", Help: "Inspected frames by verdict."}, []string{"verdict"})
	m.drops = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linesight_drops_total", Help: "Frames or maps dropped, by where."}, []string{"where"})
	m.errors = prometheus.NewCounter(prometheus.CounterOpts{Name: "linesight_inspection_errors_total", Help: "Frames that could not be inspected."})
	m.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "linesight_stage_seconds", Help: "Time per pipeline stage.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"stage"})
	m.reg.MustRegister(m.frames, m.drops, m.errors, m.stages, prometheus.NewGoCollector())
	return m
}

func (m *metrics) observe(verdict string, t patchcore.Timing, queued, total time.Duration) {
	m.frames.WithLabelValues(verdict).Inc()
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{"capture", queued}, {"preprocess", t.Preprocess}, {"backbone", t.Backbone}, {"embed", t.Embed}, {"search", t.Search}, {"map", t.Map}, {"total", total}} {
		m.stages.WithLabelValues(s.name).Observe(s.d.Seconds())
	}
}

// healthy returns why the station is unhealthy, or nil.
func (d *Daemon) healthy() error {
	h := d.cam.Health()
	switch {
	case !h.Connected:
		return errors.New("camera not connected: " + h.LastError)
	case h.Stalled:
		return errors.New("camera stalled")
	case !d.client.Connected():
		return errors.New("MQTT broker not connected")
	}
	return nil
}

func (d *Daemon) serveHTTP() (*http.Server, error) {
	ln, err := net.Listen("tcp", d.cfg.HTTP.Listen)
	if err != nil {
		return nil, err
	}
	d.metrics.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "linesight_outbox_results", Help: "Results waiting in the outbox."}, func() float64 { r, _ := d.outbox.Len(); return float64(r) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "linesight_outbox_maps", Help: "Maps waiting in the outbox."}, func() float64 { _, m := d.outbox.Len(); return float64(m) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "linesight_outbox_dropped_total", Help: "Messages dropped from a full outbox."}, func() float64 { r, m := d.outbox.Dropped(); return float64(r + m) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "linesight_camera_reconnects_total", Help: "Camera reconnections."}, func() float64 { return float64(d.cam.Health().Reconnects) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "linesight_camera_dropped_total", Help: "Camera frames not taken (newest-frame policy)."}, func() float64 { return float64(d.cam.Health().Dropped) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "linesight_bank_version", Help: "Active bank version."}, func() float64 { return float64(d.det.Load().Bank().Meta.Version) }),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		err := d.healthy()
		age := -1.0
		if t := d.lastDone.Load(); t > 0 {
			age = time.Since(time.Unix(0, t)).Seconds()
		}
		body := map[string]any{"ok": err == nil, "camera": d.cam.Health(), "broker_connected": d.client.Connected(),
			"bank_version": d.det.Load().Bank().Meta.Version, "last_frame_age_s": age}
		if err != nil {
			body["error"] = err.Error()
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(body)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	d.log.Info("HTTP health and metrics", "addr", ln.Addr().String())
	return srv, nil
}
