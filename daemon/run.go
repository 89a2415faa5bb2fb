// Package daemon is the process a line sees: it wires camera -> PatchCore
// -> MQTT, loads the model and the active bank, swaps banks between frames,
// serves health and metrics over HTTP, talks to systemd, and shuts down in
// order.
//
// Each concept has its file: run.go is the lifecycle (what starts, in which
// order, and how it stops), pipeline.go moves frames from the camera
// through the detector to MQTT, maps.go renders anomaly maps off the
// inspection path, banks.go owns the detector in use (loading, activation,
// rollback, hot swap, the operator's threshold), commands.go answers MQTT
// commands, http.go serves health, metrics and the retained status,
// teach.go enrols a bank from the station's own frames (teach mode and
// append), push.go takes signed banks pushed over MQTT, canary.go tries a
// new bank beside the one in use, evidence.go keeps the ring of recent
// frames, recipes.go holds one bank per product recipe (all loaded, so the
// PLC's switch is quick), handshake.go is the PLC handshake on plc/*
// topics, sparkplug.go is the Sparkplug B device on its own connection,
// and console*.go with web/ serve the operator console.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	sdaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/internal/qgemm"
	"github.com/linesight/linesight/internal/trust"
	"github.com/linesight/linesight/internal/vec"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/mqtt"
)

// Version is the daemon's version, reported in status.
var Version = "dev"

// drainTimeout bounds how long shutdown waits for the frames already
// captured to be inspected and published.
const drainTimeout = 10 * time.Second

// station is one running station: the parts Run starts, shared by the
// pipeline, the commands and the HTTP handlers.
type station struct {
	cfg     *config.Config
	log     *slog.Logger
	model   *model.File
	banks   *banks
	cam     *camera.Camera
	client  *mqtt.Client
	outbox  *mqtt.Outbox
	metrics *metrics
	pipe    *pipeline
	started time.Time

	// Remote changes: the trusted keys (nil: none), the nonces of signed
	// commands taken, the bank push receiver and who sent each transfer.
	keys    trust.Keys
	nonces  *trust.Nonces
	recv    *mqtt.Receiver
	pushWho sync.Map

	// The station teaching itself: the evidence ring of the last frames
	// (nil when evidence.frames is 0) and teach mode.
	evidence *evidence
	teach    teach

	// SCADA and PLC (issue 20): the product recipes (recipes.go; empty
	// without recipes.list) and the hand-off to the PLC handshake and the
	// Sparkplug edge node (handshake.go, sparkplug.go; nil when both are off).
	recipes *recipes
	scada   *scada

	// The rate limit on recording refused requests (refusals.go); nil
	// records every one.
	refusals *refusalGate

	// The station console at / on http.listen (console.go), nil when off.
	console *console
}

// nonceWindow is how old (or how far ahead of this station's clock) a
// signed command may be.
const nonceWindow = 5 * time.Minute

// Run serves until ctx is done, then drains and stops. Everything it starts
// is stopped, in reverse order, when it returns: after ctx ends, and on
// every error path too.
func Run(ctx context.Context, cfg *config.Loaded, log *slog.Logger) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lc := lifecycle{log: log}
	defer lc.stopAll()
	s := &station{cfg: &cfg.Config, log: log, metrics: newMetrics(), started: time.Now()}
	s.refusals = newRefusalGate(s.record, log.Warn)
	failed := make(chan error, 1) // a subsystem that cannot go on

	// Model and bank first. Without a model there is nothing to serve;
	// without a bank yet (a fresh install) the station serves and says
	// needs-bank until one is taught, pushed or activated.
	if s.model, err = model.Load(s.cfg.Model.Path); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.Bank.DB), 0o750); err != nil {
		return fmt.Errorf("bank.db: %w", err)
	}
	if s.banks, err = openBanks(s.cfg, s.model, threads(s.cfg), log); err != nil {
		return err
	}
	lc.started("banks", s.banks.close)
	s.recipes = openRecipes(s)
	s.nonces = trust.NewNonces(nonceWindow, 100000)
	switch {
	case s.cfg.Bank.TrustedKeys != "":
		if s.keys, err = trust.LoadKeys(s.cfg.Bank.TrustedKeys); err != nil {
			return fmt.Errorf("bank.trusted_keys: %w", err)
		}
		log.Info("remote bank pushes and commands: signed by a trusted key only", "keys", len(s.keys))
	case s.cfg.Bank.AllowUnsigned:
		log.Warn("UNSIGNED REMOTE CHANGES ARE ALLOWED (bank.allow_unsigned: true): anyone who can publish to the broker can push banks; set bank.trusted_keys on a line")
	default:
		log.Info("remote bank pushes are off (no bank.trusted_keys)")
	}

	// MQTT: the embedded broker, the outbox, the client.
	brokerURL := s.cfg.MQTT.Broker
	creds := mqtt.Credentials{Username: s.cfg.MQTT.Username, PasswordFile: s.cfg.MQTT.PasswordFile,
		CA: s.cfg.MQTT.TLS.CA, Cert: s.cfg.MQTT.TLS.Cert, Key: s.cfg.MQTT.TLS.Key}
	tlsCfg, password, err := creds.Load(brokerURL)
	if err != nil {
		return err
	}
	if brokerURL == "embedded" {
		// With mqtt.password_file, the embedded broker admits only clients
		// with mqtt.username and that password, this daemon among them.
		b, err := mqtt.StartBroker(s.cfg.MQTT.Embedded, s.cfg.MQTT.Username, password, log)
		if err != nil {
			return err
		}
		lc.started("embedded broker", func() { b.Close() })
		brokerURL = b.URL()
		log.Info("embedded MQTT broker listening", "addr", b.Addr, "password", password != "")
	}
	obPath := s.cfg.MQTT.Outbox.Path
	if obPath == "" {
		obPath = filepath.Join(filepath.Dir(s.cfg.Bank.DB), "outbox.db")
	}
	// A damaged outbox must not keep the station down: it is moved aside
	// (its queued results stay in it for recovery) and a new one started.
	var aside string
	if s.outbox, aside, err = mqtt.OpenOrRecoverOutbox(obPath, s.cfg.MQTT.Outbox.MaxResults, s.cfg.MQTT.Outbox.MaxMaps); err != nil {
		return err
	}
	if aside != "" {
		log.Error("the outbox file was damaged: moved aside, started a new one; results still queued in it were not sent, and seq continues above every number it handed out",
			"damaged", aside, "outbox", obPath)
	}
	lc.started("outbox", func() { s.outbox.Close() })

	if n := s.cfg.Evidence.Frames; n > 0 {
		if s.evidence, err = openEvidence(s.cfg.EvidenceDir(), n, int64(s.cfg.Evidence.MaxMB)<<20, log); err != nil {
			return err
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.evidence.run(stop)
		}()
		lc.started("evidence writer", func() { close(stop); <-done })
	}

	// Camera.
	camCfg, err := s.cfg.CameraConfig()
	if err != nil {
		return err
	}
	camCfg.Memory = s.outbox // frame numbers and folder files, across restarts
	if s.cam, err = camera.New(camCfg, log); err != nil {
		return err
	}
	if s.cfg.PLC.Enabled || s.cfg.Sparkplug.Enabled {
		s.scada = newSCADA(s)
		if s.cfg.PLC.Enabled {
			s.scada.plc = newHandshake(s)
		}
		if s.cfg.Sparkplug.Enabled {
			if s.scada.spark, err = newSpark(s, brokerURL, password, tlsCfg); err != nil {
				return err
			}
		}
	}

	// Teach mode runs under ctx, from before the first command can come;
	// stopping waits for an enrollment or append to end (a build stops at
	// its next image). Its folders left by a crash go first.
	cleanTeachFolders(filepath.Dir(s.cfg.Bank.DB))

	clientID := s.cfg.MQTT.ClientID
	if clientID == "" {
		// A random suffix: a client id anyone can guess lets anyone kick
		// the station off the broker by connecting with it.
		// It is kept in the outbox file: the broker keeps the station's
		// persistent session (QoS 2, exactly once) under it across restarts.
		suffix, err := s.outbox.ClientIDSuffix(func() string {
			var r [4]byte
			rand.Read(r[:])
			return hex.EncodeToString(r[:])
		})
		if err != nil {
			return err
		}
		clientID = "linesight-" + s.cfg.Station.ID + "-" + suffix
	}
	s.recv, err = mqtt.NewReceiver(filepath.Join(filepath.Dir(s.cfg.Bank.DB), "staging"),
		func(topic string, payload []byte) {
			if err := s.client.PublishNow(topic, false, payload); err != nil {
				s.log.Debug("bank push message not sent; it is sent again", "topic", topic, "err", err)
			}
		}, s.pushed, s.publishStatus, log)
	if err != nil {
		return err
	}
	tctx, tcancel := context.WithCancel(ctx)
	s.teach.mu.Lock()
	s.teach.ctx = tctx
	s.teach.mu.Unlock()
	s.client = mqtt.New(mqtt.Options{Broker: brokerURL, ClientID: clientID, Prefix: s.cfg.MQTT.Prefix, Station: s.cfg.Station.ID,
		QoS: byte(s.cfg.MQTT.QoS), Username: s.cfg.MQTT.Username, Password: password, TLS: tlsCfg, Outbox: s.outbox, Log: log,
		Offline: s.statusJSON(mqtt.StateOffline), OnConnect: s.onConnect, Command: s.command, Refused: s.commandRefused,
		Handlers: map[string]func(string, []byte){mqtt.TopicPushPrefix + "+" + mqtt.TopicBlockSuffix: s.recv.Block}, Inputs: s.plcInputs()})
	s.client.Start()
	lc.started("mqtt client", func() {
		flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.client.Close(flush, s.statusJSON(mqtt.StateOffline))
	})
	// What the rate limit holds is recorded at the end, before the
	// client closes (stopped in reverse order).
	lc.started("refusal audit", s.refusals.close)

	// Teach mode stops before the client, so that its last replies go out
	// (until then, Run's own cancel ends it on an error path).
	lc.started("teach mode", func() { s.teach.stop(tcancel) })

	// The Sparkplug edge node (its own connection; NDEATH when it stops),
	// then the SCADA hand-off, which stops first and sends what the
	// pipeline handed it before the edge node says goodbye.
	if s.scada != nil {
		if sp := s.scada.spark; sp != nil {
			sp.node.Start()
			lc.started("sparkplug edge node", sp.node.Close)
		}
		lc.spawn(ctx, "scada hand-off", s.scada.run, nil)
	}

	// HTTP: listen now, so that a taken port fails the start.
	if s.cfg.HTTP.Listen != "" && s.cfg.HTTP.Console {
		if s.console, err = newConsole(s); err != nil {
			return err
		}
	}
	if s.cfg.HTTP.Listen != "" {
		ln, err := httpListener(s.cfg.HTTP, log)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
		if s.console != nil {
			srv.RegisterOnShutdown(s.console.close) // its event streams end, or Shutdown would wait for them
		}
		lc.spawn(ctx, "http", func(context.Context) {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				select {
				case failed <- fmt.Errorf("http: %w", err):
				default:
				}
			}
		}, func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		})
		log.Info("HTTP health and metrics", "addr", ln.Addr().String(), "https", s.cfg.HTTP.TLS.Cert != "")
		if s.console != nil && s.cfg.HTTP.TLS.Cert == "" && !isLoopbackListen(s.cfg.HTTP.Listen) {
			log.Warn("the console is served over plain HTTP beyond loopback: its logins and session cookies cross the network in clear; set http.tls.cert and http.tls.key")
		}
	}

	// The frame path. Stops run in reverse: the camera stops first (no new
	// frames), the pipeline then inspects what was captured, the map
	// encoder finishes last.
	s.pipe = newPipeline(s)
	lc.spawn(ctx, "map encoder", s.pipe.encodeMaps, nil)
	lc.spawnDraining(ctx, "pipeline", s.pipe.run, drainTimeout)
	lc.spawn(ctx, "camera", func(ctx context.Context) { s.cam.Run(ctx) }, nil)
	lc.spawn(ctx, "bank watcher", s.banks.watch, nil)
	lc.spawn(ctx, "watchdog", s.watchdog, nil)
	lc.spawn(ctx, "bank push receiver", s.recv.Run, nil)

	sdaemon.SdNotify(false, sdaemon.SdNotifyReady)
	avail, kern := qgemm.Kernels()
	log.Info("linesight serving", "station", s.cfg.Station.ID, "camera", camera.Redact(s.cfg.Camera.Source), "bank", s.banks.version(), "state", s.state(),
		"broker", brokerURL, "goarch", runtime.GOARCH, "cpus", runtime.NumCPU(), "threads", threads(s.cfg),
		"cpu", qgemm.CPUFeatures(), "gemm", kern, "gemm_available", avail, "elementwise", vec.Kernel())

	select {
	case <-ctx.Done():
	case err = <-failed:
		log.Error("stopping: a subsystem failed", "err", err)
	}
	log.Info("stopping: draining in-flight frames")
	sdaemon.SdNotify(false, sdaemon.SdNotifyStopping)
	lc.stopAll()
	log.Info("stopped")
	return err
}

func threads(c *config.Config) int {
	if c.Model.Threads > 0 {
		return c.Model.Threads
	}
	return max(1, runtime.NumCPU())
}

// lifecycle records what has started and stops it in reverse order, once.
type lifecycle struct {
	log   *slog.Logger
	names []string
	stops []func()
}

// started records a started part and how to stop it.
func (l *lifecycle) started(name string, stop func()) {
	l.names = append(l.names, name)
	l.stops = append(l.stops, stop)
}

// spawn runs fn on its own goroutine with a context derived from ctx. Its
// stop calls halt (if any; for work that ignores its context, like an HTTP
// server), cancels the context and waits for fn to return.
func (l *lifecycle) spawn(ctx context.Context, name string, fn func(context.Context), halt func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	l.started(name, func() {
		if halt != nil {
			halt()
		}
		cancel()
		<-done
	})
}

// spawnDraining is spawn for work that finishes by itself once its inputs
// stop: its stop waits up to drain for fn to return before cancelling it.
// The context fn gets is not the caller's: the caller's ending must not cut
// the drain short.
func (l *lifecycle) spawnDraining(ctx context.Context, name string, fn func(context.Context), drain time.Duration) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	l.started(name, func() {
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			l.log.Warn("not drained in time; cutting it short", "part", name, "after", drain)
		}
		cancel()
		<-done
	})
}

// stopAll stops everything started, newest first.
func (l *lifecycle) stopAll() {
	for i := len(l.stops) - 1; i >= 0; i-- {
		l.stops[i]()
		l.log.Debug("stopped", "part", l.names[i])
	}
	l.stops, l.names = nil, nil
}
