// Package daemon is the process a line sees: it wires camera -> PatchCore
// -> MQTT, loads the model and the active bank, swaps banks between frames,
// serves health and metrics over HTTP, talks to systemd, and shuts down in
// order. Its subsystems start and stop in Run, in one visible place.
package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/model/tflite"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// Version is the daemon's version, reported in status.
var Version = "dev"

// Daemon is one running station.
type Daemon struct {
	cfg     config.Config
	log     *slog.Logger
	model   *tflite.Model
	sha     string
	cam     *camera.Camera
	client  *mqtt.Client
	broker  *mqtt.Broker
	outbox  *mqtt.Outbox
	metrics *metrics

	det       atomic.Pointer[patchcore.Detector] // the detector in use
	swap      chan *patchcore.Detector           // detectors waiting to take over
	threshold atomic.Pointer[float64]            // operator override, nil = bank's

	queue    chan *camera.Frame
	mapJobs  chan mapJob
	lastDone atomic.Int64 // unix nanos of the last inspected frame
	started  time.Time
	bankMu   sync.Mutex // serialises bank activation
}

// Run serves until ctx is done, then drains and stops.
func Run(ctx context.Context, cfg *config.Loaded, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	d := &Daemon{cfg: cfg.Config, log: log, swap: make(chan *patchcore.Detector, 1), started: time.Now(),
		queue: make(chan *camera.Frame, cfg.Queue.Size), mapJobs: make(chan mapJob, 2), metrics: newMetrics()}

	// Model and bank first: without them there is nothing to serve.
	raw, err := os.ReadFile(d.cfg.Model.Path)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if d.model, err = tflite.Read(raw); err != nil {
		return fmt.Errorf("model %s: %w", d.cfg.Model.Path, err)
	}
	d.sha = patchcore.Fingerprint(raw)
	det, err := d.loadBank(0)
	if err != nil {
		return err
	}
	d.det.Store(det)
	defer func() {
		d.det.Load().Close()
		// A bank loaded but never swapped in (no frame came after it) has
		// its own backbone and workers too.
		select {
		case next := <-d.swap:
			next.Close()
		default:
		}
	}()
	if t := d.cfg.Scoring.Threshold; t > 0 {
		d.threshold.Store(&t)
	}

	// MQTT: the embedded broker, the outbox, the client.
	brokerURL := d.cfg.MQTT.Broker
	if brokerURL == "embedded" {
		if d.broker, err = mqtt.StartBroker(d.cfg.MQTT.Embedded, log); err != nil {
			return err
		}
		defer d.broker.Close()
		brokerURL = d.broker.URL()
		log.Info("embedded MQTT broker listening", "addr", d.broker.Addr)
	}
	obPath := d.cfg.MQTT.Outbox.Path
	if obPath == "" {
		obPath = filepath.Join(filepath.Dir(d.cfg.Bank.DB), "outbox.db")
	}
	if d.outbox, err = mqtt.OpenOutbox(obPath, d.cfg.MQTT.Outbox.MaxResults, d.cfg.MQTT.Outbox.MaxMaps); err != nil {
		return err
	}
	defer d.outbox.Close()
	tlsCfg, password, err := d.credentials()
	if err != nil {
		return err
	}
	clientID := d.cfg.MQTT.ClientID
	if clientID == "" {
		clientID = "linesight-" + d.cfg.Station.ID
	}
	// Camera.
	camCfg, err := cameraConfig(&d.cfg)
	if err != nil {
		return err
	}
	if d.cam, err = camera.New(camCfg, log); err != nil {
		return err
	}

	d.client = mqtt.New(mqtt.Options{Broker: brokerURL, ClientID: clientID, Prefix: d.cfg.MQTT.Prefix, Station: d.cfg.Station.ID,
		QoS: byte(d.cfg.MQTT.QoS), Username: d.cfg.MQTT.Username, Password: password, TLS: tlsCfg, Outbox: d.outbox, Log: log,
		Offline: d.statusJSON("offline"), OnConnect: d.publishStatus, Command: d.command})
	d.client.Start()

	// Start everything; stop in reverse.
	camCtx, stopCam := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); d.cam.Run(camCtx) }()
	go func() { defer wg.Done(); d.capture(camCtx) }()
	inferDone := make(chan struct{})
	go func() { defer wg.Done(); defer close(inferDone); d.infer() }()
	go func() { defer wg.Done(); d.encodeMaps() }()
	var httpSrv *http.Server
	if d.cfg.HTTP.Listen != "" {
		if httpSrv, err = d.serveHTTP(); err != nil {
			stopCam()
			return err
		}
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	go d.watchBank(watchCtx)
	go d.watchdog(watchCtx)
	sdaemon.SdNotify(false, sdaemon.SdNotifyReady)
	log.Info("linesight serving", "station", d.cfg.Station.ID, "camera", d.cfg.Camera.Source, "bank", det.Bank().Meta.Version, "broker", brokerURL)

	<-ctx.Done()
	log.Info("stopping: draining in-flight frames")
	sdaemon.SdNotify(false, sdaemon.SdNotifyStopping)
	stopWatch()
	stopCam() // no new frames; capture closes the queue
	select {
	case <-inferDone:
	case <-time.After(10 * time.Second):
		log.Warn("in-flight frames not drained within 10s")
	}
	wg.Wait()
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		httpSrv.Shutdown(sctx)
		cancel()
	}
	flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	d.client.Close(flush, d.statusJSON("offline"))
	cancel()
	log.Info("stopped")
	return nil
}

func cameraConfig(c *config.Config) (camera.Config, error) {
	roi, err := camera.ParseROI(c.Camera.ROI)
	if err != nil {
		return camera.Config{}, err
	}
	mode := camera.Continuous
	if c.Camera.Mode == "triggered" {
		mode = camera.Triggered
	}
	return camera.Config{Source: c.Camera.Source, ID: c.Station.ID + ":camera", Mode: mode, MaxFPS: c.Camera.MaxFPS,
		Width: c.Camera.Width, Height: c.Camera.Height, FPS: c.Camera.FPS, Format: c.Camera.Format, Buffers: c.Camera.Buffers, ROI: roi,
		Settle: time.Duration(c.Camera.Folder.Settle), Poll: time.Duration(c.Camera.Folder.Poll), Done: c.Camera.Folder.Done,
		BackoffMax: time.Duration(c.Camera.Backoff)}, nil
}

func (d *Daemon) credentials() (*tls.Config, string, error) {
	m := d.cfg.MQTT
	var password string
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return nil, "", fmt.Errorf("mqtt.password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	if m.TLS.CA == "" && m.TLS.Cert == "" && !strings.HasPrefix(m.Broker, "ssl://") && !strings.HasPrefix(m.Broker, "wss://") {
		return nil, password, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if m.TLS.CA != "" {
		pem, err := os.ReadFile(m.TLS.CA)
		if err != nil {
			return nil, "", fmt.Errorf("mqtt.tls.ca: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("mqtt.tls.ca: no PEM certificates in %s", m.TLS.CA)
		}
	}
	if m.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(m.TLS.Cert, m.TLS.Key)
		if err != nil {
			return nil, "", fmt.Errorf("mqtt.tls.cert/key: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, password, nil
}

// loadBank opens the bank database briefly (read-only, so the CLI can use
// it while the daemon runs), loads version v (0 = active) and makes a
// detector for it. A bank whose recipe does not fit the model is refused.
func (d *Daemon) loadBank(v uint64) (*patchcore.Detector, error) {
	st, err := bank.OpenStore(d.cfg.Bank.DB, true)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var b *bank.Bank
	if v == 0 {
		b, err = st.Active()
	} else {
		b, err = st.Get(v)
	}
	if err != nil {
		return nil, fmt.Errorf("bank %s: %w", d.cfg.Bank.DB, err)
	}
	return patchcore.Open(b, d.model, d.sha, patchcore.Options{Threads: d.threads()})
}

func (d *Daemon) threads() int {
	if d.cfg.Model.Threads > 0 {
		return d.cfg.Model.Threads
	}
	return max(1, runtimeNumCPU())
}

// watchBank notices activations made with the CLI (`linesight bank
// activate`) and swaps the new bank in.
func (d *Daemon) watchBank(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := bank.OpenStore(d.cfg.Bank.DB, true)
		if err != nil {
			continue
		}
		v, err := st.ActiveVersion()
		st.Close()
		if err == nil && v != d.det.Load().Bank().Meta.Version {
			if _, err := d.activate(v, false); err != nil {
				d.log.Error("bank activated outside the daemon does not load; keeping the current one", "version", v, "err", err)
			}
		}
	}
}

// activate loads version v (0 with write: the version before the current
// one, i.e. a rollback), checks it against the model, and only then, when
// write is set, records the activation in the database; the inference loop
// swaps it in between frames. A bank that does not load changes nothing.
func (d *Daemon) activate(v uint64, write bool) (uint64, error) {
	d.bankMu.Lock()
	defer d.bankMu.Unlock()
	rollback := write && v == 0
	if rollback {
		st, err := bank.OpenStore(d.cfg.Bank.DB, true)
		if err != nil {
			return 0, err
		}
		h, err := st.History()
		st.Close()
		if err != nil {
			return 0, err
		}
		if len(h) == 0 {
			return 0, fmt.Errorf("%w: nothing to roll back to", bank.ErrNotFound)
		}
		v = h[len(h)-1].Version
	}
	det, err := d.loadBank(v)
	if err != nil {
		return 0, err
	}
	if write {
		st, err := bank.OpenStore(d.cfg.Bank.DB, false)
		if err == nil {
			if rollback {
				_, err = st.Rollback()
			} else {
				err = st.Activate(v)
			}
			st.Close()
		}
		if err != nil {
			det.Close()
			return 0, err
		}
	}
	// Replace any detector still waiting to take over.
	select {
	case old := <-d.swap:
		old.Close()
	default:
	}
	d.swap <- det
	d.log.Info("bank version loaded; swapping in between frames", "version", det.Bank().Meta.Version)
	return det.Bank().Meta.Version, nil
}

// capture moves frames from the camera to the bounded queue. When
// inference falls behind, live sources drop by policy (oldest or newest);
// recorded ones simply wait.
func (d *Daemon) capture(ctx context.Context) {
	defer close(d.queue)
	for {
		f, err := d.cam.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if !d.cam.Kind().Live() {
			// Recorded sources (files, folders) wait on disk: no drops.
			select {
			case d.queue <- f:
			case <-ctx.Done():
				f.Release()
				return
			}
			continue
		}
		select {
		case d.queue <- f:
			continue
		default:
		}
		d.metrics.drops.WithLabelValues("queue").Inc()
		if d.cfg.Queue.Drop == "newest" {
			f.Release()
			continue
		}
		select {
		case old := <-d.queue:
			old.Release()
		default:
		}
		select {
		case d.queue <- f:
		default:
			f.Release()
		}
	}
}

// infer scores queued frames and publishes results.
func (d *Daemon) infer() {
	var r patchcore.Result
	for f := range d.queue {
		select {
		case det := <-d.swap:
			old := d.det.Swap(det)
			old.Close()
			d.publishStatus()
		default:
		}
		d.inspect(f, &r)
		f.Release()
	}
	close(d.mapJobs)
}

// latency is the per-stage time of one frame, in milliseconds.
type latency struct {
	Capture    float64 `json:"capture"` // frame captured -> inference start (queueing)
	Preprocess float64 `json:"preprocess"`
	Backbone   float64 `json:"backbone"`
	Search     float64 `json:"search"` // embedding + k-NN
	Map        float64 `json:"map"`
	Total      float64 `json:"total"` // capture to result
}

// Result is the JSON published on <prefix>/<station>/result.
type Result struct {
	Station     string             `json:"station"`
	Seq         uint64             `json:"seq"`
	Time        string             `json:"time"`
	Verdict     string             `json:"verdict"`
	Score       float64            `json:"score"`
	Normalized  float64            `json:"normalized"`
	Threshold   float64            `json:"threshold"`
	BankVersion uint64             `json:"bank_version"`
	Latency     latency            `json:"latency_ms"`
	Frame       [2]int             `json:"frame_size"`
	Regions     []patchcore.Region `json:"regions"`
	Map         *MapRef            `json:"map"`
}

// MapRef says where the frame's anomaly map is published.
type MapRef struct {
	Topic  string `json:"topic"`
	Format string `json:"format"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (d *Daemon) inspect(f *camera.Frame, r *patchcore.Result) {
	start := time.Now()
	det := d.det.Load()
	if err := det.InspectInto(f.Image, r); err != nil {
		d.log.Error("inspection failed", "seq", f.Seq, "err", err)
		d.metrics.errors.Inc()
		return
	}
	th := r.Threshold
	fail := r.Fail
	norm := r.Normalized
	if o := d.threshold.Load(); o != nil {
		th = *o
		fail = r.Score > th
		norm = patchcore.Normalize(r.Score, th, det.Bank().Meta.Threshold.Width)
	}
	verdict := "PASS"
	if fail {
		verdict = "FAIL"
	}
	t := r.Timing
	res := Result{Station: d.cfg.Station.ID, Seq: f.Seq, Time: f.Time.UTC().Format(time.RFC3339Nano), Verdict: verdict,
		Score: r.Score, Normalized: norm, Threshold: th, BankVersion: det.Bank().Meta.Version,
		Latency: latency{Capture: ms(start.Sub(f.Time)), Preprocess: ms(t.Preprocess), Backbone: ms(t.Backbone),
			Search: ms(t.Embed + t.Search), Map: ms(t.Map), Total: ms(time.Since(f.Time))},
		// A copy: the detector reuses its regions buffer on the next frame,
		// while this result is published and its map drawn.
		Frame: [2]int{f.Image.W, f.Image.H}, Regions: slices.Clone(r.Regions)}
	if res.Regions == nil {
		res.Regions = []patchcore.Region{}
	}
	if p := d.cfg.Maps.Policy; p == "always" || (p == "fail" && fail) {
		topic := fmt.Sprintf("map/%d", f.Seq)
		job := mapJob{seq: f.Seq, topic: topic, frame: cloneImage(f.Image), amap: append([]float32(nil), r.Map...), geom: r.Geometry,
			regions: res.Regions, th: det.Bank().Meta.Threshold}
		select {
		case d.mapJobs <- job:
			res.Map = &MapRef{Topic: d.client.Topic(topic), Format: d.cfg.Maps.Format}
		default:
			d.metrics.drops.WithLabelValues("map").Inc() // the encoder is behind: skip this map
		}
	}
	payload, _ := json.Marshal(res)
	d.client.Publish(mqtt.Item{Kind: mqtt.KindResult, Topic: "result", Payload: payload},
		mqtt.Item{Kind: mqtt.KindResult, Topic: "verdict", Retained: true, Payload: []byte(verdict)},
		mqtt.Item{Kind: mqtt.KindResult, Topic: "score", Retained: true, Payload: []byte(fmt.Sprintf("%.6g", r.Score))})
	d.lastDone.Store(time.Now().UnixNano())
	d.metrics.observe(verdict, r.Timing, start.Sub(f.Time), time.Since(f.Time))
	d.log.Debug("frame", "seq", f.Seq, "verdict", verdict, "score", r.Score)
}

// statusJSON is the retained status message.
func (d *Daemon) statusJSON(state string) []byte {
	st := map[string]any{"state": state, "station": d.cfg.Station.ID, "version": Version, "time": time.Now().UTC().Format(time.RFC3339)}
	if state == "online" {
		st["model"] = map[string]any{"path": d.cfg.Model.Path, "sha256": d.sha}
		if det := d.det.Load(); det != nil {
			m := det.Bank().Meta
			st["bank"] = map[string]any{"version": m.Version, "created": m.Created, "vectors": m.Count, "threshold": m.Threshold.Value}
		}
		if d.cam != nil {
			st["camera"] = d.cam.Health()
		}
		if o := d.threshold.Load(); o != nil {
			st["threshold_override"] = *o
		}
	}
	b, _ := json.Marshal(st)
	return b
}

func (d *Daemon) publishStatus() {
	if d.client == nil {
		return
	}
	if err := d.client.PublishNow("status", true, d.statusJSON("online")); err != nil {
		d.log.Warn("status not published", "err", err)
	}
}

// command handles cmd/<name>.
func (d *Daemon) command(name string, req mqtt.Request) (any, error) {
	switch name {
	case "trigger":
		if d.cfg.Camera.Mode != "triggered" {
			return nil, errors.New("the camera is in continuous mode; set camera.mode: triggered")
		}
		d.cam.Trigger()
		return map[string]any{"triggered": true}, nil
	case "status":
		var st any
		json.Unmarshal(d.statusJSON("online"), &st)
		return st, nil
	case "threshold":
		var p struct {
			Set   *float64 `json:"set"`
			Reset bool     `json:"reset"`
		}
		if err := json.Unmarshal(req.Raw, &p); err != nil {
			return nil, fmt.Errorf("threshold: %v", err)
		}
		switch {
		case p.Reset:
			d.threshold.Store(nil)
		case p.Set != nil:
			if !(*p.Set > 0) || *p.Set > 1e9 {
				return nil, fmt.Errorf("threshold: %v is not a positive number", *p.Set)
			}
			v := *p.Set
			d.threshold.Store(&v)
		}
		cur := d.det.Load().Bank().Meta.Threshold.Value
		if o := d.threshold.Load(); o != nil {
			cur = *o
		}
		go d.publishStatus()
		return map[string]any{"threshold": cur, "bank_threshold": d.det.Load().Bank().Meta.Threshold.Value, "override": d.threshold.Load() != nil}, nil
	case "bank/activate":
		var p struct {
			Version uint64 `json:"version"`
		}
		if err := json.Unmarshal(req.Raw, &p); err != nil || p.Version == 0 {
			return nil, errors.New(`bank/activate: want {"id": ..., "version": N}`)
		}
		v, err := d.activate(p.Version, true)
		if err != nil {
			return nil, err
		}
		return map[string]any{"version": v}, nil
	case "bank/rollback":
		v, err := d.activate(0, true)
		if err != nil {
			return nil, err
		}
		return map[string]any{"version": v}, nil
	}
	return nil, fmt.Errorf("unknown command %q (trigger, status, threshold, bank/activate, bank/rollback)", name)
}

// watchdog pings systemd while the pipeline is healthy: frames flow, or
// the camera is waiting (triggered mode, empty folder) but connected.
func (d *Daemon) watchdog(ctx context.Context) {
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
		if d.healthy() == nil {
			sdaemon.SdNotify(false, sdaemon.SdNotifyWatchdog)
		}
	}
}
