package daemon

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/heatmap"
	"github.com/linesight/linesight/internal/qgemm"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/vec"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// The station console: the pages at / on http.listen for the people at
// the line (live view, trends, failures, threshold, banks, health). Pages
// are Go templates rendered here; console.js adds the live updates (one
// server-sent event stream per page, no polling), the charts (uPlot), the
// confirmation dialogs and the actions. Everything is embedded in the
// binary: no CDN, no build step, works offline. Actions go through the
// station's command table (commands.go) exactly like MQTT commands, with
// the console's login in place of a signature, and are audited with who
// asked (see console_auth.go for the security).

//go:embed web
var webFS embed.FS

// console serves the console's pages for station s.
type console struct {
	s      *station
	hub    *consoleHub
	guard  *consoleGuard
	pages  map[string]*template.Template
	static http.Handler
	shifts []int // hours at which shifts start, local time
	start  time.Time

	stop     chan struct{} // closed when the server shuts down: event streams end
	stopOnce sync.Once
}

// close ends the event streams (the HTTP server is shutting down).
func (c *console) close() { c.stopOnce.Do(func() { close(c.stop) }) }

// Console pages: path, template, title.
var consolePages = []struct{ path, name, title string }{
	{"/{$}", "live", "Live"},
	{"/trends", "trends", "Trends"},
	{"/failures", "failures", "Failures"},
	{"/failures/{seq}", "failure", "Failure"},
	{"/threshold", "threshold", "Threshold"},
	{"/banks", "banks", "Banks"},
	{"/health", "health", "Health"},
	{"/login", "login", "Log in"},
}

func newConsole(s *station) (*console, error) {
	g, err := newConsoleGuard(s.cfg.HTTP.Listen, s.cfg.HTTP.ConsoleUsersFile, s.cfg.Bank.AllowUnsigned && s.cfg.Bank.TrustedKeys == "")
	if err != nil {
		return nil, err
	}
	c := &console{s: s, hub: newConsoleHub(), guard: g, pages: map[string]*template.Template{}, shifts: s.cfg.HTTP.ConsoleShifts, start: time.Now(),
		stop: make(chan struct{})}
	funcs := template.FuncMap{"ftime": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format("2006-01-02 15:04:05")
	}, "short": func(s string) string { return s[:min(12, len(s))] }}
	for _, p := range consolePages {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(webFS, "web/layout.html", "web/"+p.name+".html")
		if err != nil {
			return nil, fmt.Errorf("console templates: %w", err)
		}
		c.pages[p.name] = t
	}
	sub, _ := fs.Sub(webFS, "web/static")
	c.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	switch g.mode {
	case guardClosed:
		s.log.Warn("the console is off: http.listen is not loopback and there is no http.console_users_file to log in with", "listen", s.cfg.HTTP.Listen)
	case guardLogin:
		s.log.Info("console: log in with http.console_users_file", "users", len(g.users))
	default:
		s.log.Info("console: loopback only, no login; acting from it needs http.console_users_file unless the station takes unsigned changes", "local_role", g.local)
	}
	return c, nil
}

// routes adds the console to mux.
func (c *console) routes(mux *http.ServeMux) {
	for _, p := range consolePages {
		if p.name == "login" {
			continue
		}
		mux.Handle("GET "+p.path, c.page(p.name, p.title))
	}
	mux.HandleFunc("GET /login", c.serveLogin)
	mux.HandleFunc("POST /login", c.serveLogin)
	mux.Handle("POST /logout", c.act(false, func(w http.ResponseWriter, r *http.Request, _ *session) {
		c.guard.endSession(w, r)
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.Handle("GET /static/", c.guarded(false, func(w http.ResponseWriter, r *http.Request, _ *session) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		c.static.ServeHTTP(w, r)
	}))
	mux.Handle("GET /events", c.guarded(false, c.serveEvents))
	mux.Handle("GET /live/frame.png", c.guarded(false, c.serveLiveFrame))
	mux.Handle("GET /failures/{seq}/image.png", c.guarded(false, c.serveFailureImage))
	mux.Handle("GET /api/trends", c.guarded(false, c.serveTrends))
	mux.Handle("GET /api/preview", c.guarded(false, c.servePreview))
	mux.Handle("GET /api/state", c.guarded(false, func(w http.ResponseWriter, _ *http.Request, _ *session) { writeJSON(w, c.state()) }))
	mux.Handle("POST /api/threshold", c.act(true, c.postThreshold))
	mux.Handle("POST /api/bank/activate", c.act(true, c.postActivate))
	mux.Handle("POST /api/bank/rollback", c.act(true, c.postRollback))
	mux.Handle("POST /api/bank/enroll", c.act(true, c.postEnroll))
	mux.Handle("POST /api/bank/append", c.act(true, c.postAppend))
}

// guarded serves h to a request with a session. Without one it redirects
// pages to the login (page true) or answers 401; on loopback without
// users, a browser gets a session ("local", see consoleGuard) on its
// first request.
func (c *console) guarded(page bool, h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secureHeaders(w.Header())
		sess, ok := c.authenticate(w, r, page)
		if !ok {
			return
		}
		h(w, r, sess)
	})
}

// authenticate finds or makes the request's session; false when it
// answered the request itself (refused or redirected).
func (c *console) authenticate(w http.ResponseWriter, r *http.Request, page bool) (*session, bool) {
	switch c.guard.mode {
	case guardClosed:
		http.Error(w, "The station console is off: this station listens beyond loopback (http.listen) and has no http.console_users_file to log in with.", http.StatusForbidden)
		return nil, false
	case guardLocal:
		if !isLoopbackHost(r.Host) {
			http.Error(w, "The console answers only to localhost or a loopback address (Host: "+r.Host+")", http.StatusForbidden)
			return nil, false
		}
	}
	if sess := c.guard.session(r); sess != nil {
		return sess, true
	}
	if c.guard.mode == guardLocal {
		return c.guard.newSession(w, r, "local", c.guard.local), true
	}
	if page {
		http.Redirect(w, r, "/login?next="+urlPath(r), http.StatusSeeOther)
	} else {
		http.Error(w, "log in first", http.StatusUnauthorized)
	}
	return nil, false
}

// urlPath is the request's path, for coming back after the login.
func urlPath(r *http.Request) string {
	if p := r.URL.Path; len(p) > 0 && p[0] == '/' && (len(p) == 1 || p[1] != '/') {
		return template.URLQueryEscaper(p)
	}
	return "/"
}

// act serves a state-changing POST: a session (no login page), the CSRF
// token, and, when operator is set, the operator role. A refusal of an
// action is audited with who tried.
func (c *console) act(operator bool, h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return c.guarded(false, func(w http.ResponseWriter, r *http.Request, sess *session) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		err := checkCSRF(r, sess)
		if err == nil && operator && sess.role != roleOperator {
			err = fmt.Errorf("role: %s is a %s and may not act", sess.user, sess.role)
		}
		if err != nil {
			if operator {
				c.s.audit(bank.AuditEntry{Action: "console", Who: "console:" + sess.user, Result: bank.AuditRefused, Reason: err.Error(), Detail: r.URL.Path})
			}
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		h(w, r, sess)
	})
}

// pageData is what every page's template gets.
type pageData struct {
	Title, Page, Station, User, Role, CSRF, Mode string
	CanAct                                       bool
	Data                                         any
}

func (c *console) page(name, title string) http.Handler {
	return c.guarded(true, func(w http.ResponseWriter, r *http.Request, sess *session) {
		d := pageData{Title: title, Page: name, Station: c.s.cfg.Station.ID, User: sess.user, Role: sess.role, CSRF: sess.csrf,
			Mode: c.guard.mode, CanAct: sess.role == roleOperator}
		var err error
		switch name {
		case "banks":
			d.Data, err = c.banksData()
		case "health":
			d.Data = c.healthData()
		case "failures":
			d.Data = c.failures(48)
		case "failure":
			d.Data, err = c.failure(r.PathValue("seq"))
		case "threshold", "live", "trends":
			d.Data = c.state()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		c.render(w, name, d)
	})
}

func (c *console) render(w http.ResponseWriter, name string, d pageData) {
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, d); err != nil {
		c.s.log.Error("console page", "page", name, "err", err)
		http.Error(w, "page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// serveLogin shows the login form and checks it. The form carries the
// token of a pre-login session cookie (login CSRF: another site must not
// log a browser in as someone else).
func (c *console) serveLogin(w http.ResponseWriter, r *http.Request) {
	secureHeaders(w.Header())
	if c.guard.mode != guardLogin {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	next := r.FormValue("next")
	if next == "" || next[0] != '/' || (len(next) > 1 && (next[1] == '/' || next[1] == '\\')) {
		next = "/"
	}
	pre := c.guard.session(r)
	if pre != nil && pre.user != "" && r.Method == http.MethodGet {
		http.Redirect(w, r, next, http.StatusSeeOther) // logged in already
		return
	}
	d := pageData{Title: "Log in", Page: "login", Station: c.s.cfg.Station.ID, Mode: c.guard.mode, Data: map[string]string{"Next": next}}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
		if pre == nil || pre.user != "" || r.PostFormValue("csrf") != pre.csrf {
			http.Error(w, "csrf: the login form is stale; reload it", http.StatusForbidden)
			return
		}
		u, err := c.guard.login(clientAddr(r), r.PostFormValue("name"), r.PostFormValue("token"))
		if err == nil {
			c.guard.endSession(w, r)
			c.guard.newSession(w, r, u.name, u.role)
			c.s.log.Info("console login", "user", u.name, "role", u.role, "from", clientAddr(r))
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
		c.s.log.Warn("console login refused", "name", r.PostFormValue("name"), "from", clientAddr(r), "err", err)
		d.Data = map[string]string{"Next": next, "Error": err.Error()}
		w.WriteHeader(http.StatusUnauthorized)
	}
	if pre == nil || pre.user != "" {
		pre = c.guard.newSession(w, r, "", "") // a pre-login session: no user, no role
	}
	d.CSRF = pre.csrf
	c.render(w, "login", d)
}

// liveState is what the live, trends and threshold pages show besides the
// results themselves, sent on the event stream every few seconds.
type liveState struct {
	State        string            `json:"state"`
	Bank         uint64            `json:"bank_version"`
	Threshold    float64           `json:"threshold"`
	BankTh       float64           `json:"bank_threshold"`
	Override     bool              `json:"override"`
	Lo           float64           `json:"threshold_min"`
	Hi           float64           `json:"threshold_max"`
	ExpectedFRR  *float64          `json:"expected_frr"` // at the threshold in force, from the bank's calibration
	Model        string            `json:"model"`        // backbone and input size of the bank in use
	Recipe       string            `json:"recipe"`       // the product recipe of the bank in use ("" without recipes)
	RecipeNumber int               `json:"recipe_number"`
	Camera       bool              `json:"camera_connected"`
	Broker       bool              `json:"broker_connected"`
	Enroll       *mqtt.EnrollState `json:"enroll,omitempty"`
	Transfer     any               `json:"transfer,omitempty"`
	LastResult   json.RawMessage   `json:"last_result,omitempty"`
	LastFrameAge float64           `json:"last_frame_age_s"`
}

func (c *console) state() liveState {
	s := c.s
	st := liveState{State: s.state(), Broker: s.client.Connected(), Enroll: s.enrollState(), LastFrameAge: -1}
	if s.cam != nil {
		st.Camera = s.cam.Health().Connected
	}
	if s.pipe != nil {
		if t := s.pipe.lastDone.Load(); t > 0 {
			st.LastFrameAge = time.Since(time.Unix(0, t)).Seconds()
		}
	}
	if det := s.banks.current(); det != nil {
		m := &det.Bank().Meta
		st.Bank, st.BankTh = m.Version, m.Threshold.Value
		st.Threshold, st.Override = det.Threshold()
		st.Lo, st.Hi = thresholdBounds(m)
		if len(m.Threshold.Scores) > 0 {
			f := patchcore.ExpectedFRR(m.Threshold.Scores, st.Threshold)
			st.ExpectedFRR = &f
		} else if !st.Override && m.Threshold.ExpectedFRR > 0 {
			f := m.Threshold.ExpectedFRR
			st.ExpectedFRR = &f
		}
		st.Model = modelName(m)
		st.Recipe, st.RecipeNumber = s.recipes.of(m.Version)
	}
	if s.recv != nil {
		if t := s.recv.State(); t != nil {
			st.Transfer = t
		}
	}
	if raw, _ := c.hub.latestResult(); raw != nil {
		st.LastResult = raw
	}
	return st
}

// modelName is how the live view names what the bank in use scores with:
// the backbone's file and the input size (the product recipe, on stations
// with recipes, comes with each result).
func modelName(m *bank.Meta) string {
	return fmt.Sprintf("%s %dx%d", filepath.Base(m.Model.Path), m.Preprocess.Width, m.Preprocess.Height)
}

// serveEvents is the event stream: "result" after each result (the
// message as published on MQTT), "frame" when its frame can be drawn
// (/live/frame.png), "state" on connect and every 2 s.
func (c *console) serveEvents(w http.ResponseWriter, r *http.Request, _ *session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	wake, cancel := c.hub.subscribe()
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	send := func(event string, data []byte) bool {
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
		fl.Flush()
		return err == nil
	}
	state := func() bool { raw, _ := json.Marshal(c.state()); return send("state", raw) }
	if !state() {
		return
	}
	// A result, then "frame" when the live view has that part's frame to
	// draw (it keeps one only while someone watches).
	var last uint64
	result := func() bool {
		raw, seq := c.hub.latestResult()
		if raw == nil || seq == last {
			return true
		}
		last = seq
		if !send("result", raw) {
			return false
		}
		if c.hub.liveSeq() == seq {
			return send("frame", strconv.AppendUint(nil, seq, 10))
		}
		return true
	}
	if !result() {
		return
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.stop:
			return // the server shuts down
		case <-tick.C:
			if !state() {
				return
			}
		case <-wake:
			if !result() {
				return
			}
		}
	}
}

// consoleMapWidth is how wide the console draws frames with their map.
const consoleMapWidth = 1280

// serveLiveFrame draws the latest frame with its heatmap overlay and
// region boxes (patchcore.RenderMap, as the published maps).
func (c *console) serveLiveFrame(w http.ResponseWriter, r *http.Request, _ *session) {
	f, ok := c.hub.liveCopy()
	if !ok {
		http.Error(w, "no frame yet", http.StatusNotFound)
		return
	}
	res := patchcore.Result{Map: f.mapv, Geometry: f.geom, Regions: f.regions}
	writePNG200(w, patchcore.RenderMap(&f.frame, &res, &f.threshold, patchcore.MapHeatmap, consoleMapWidth), f.seq)
}

func writePNG200(w http.ResponseWriter, img image.Image, seq uint64) {
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Seq", strconv.FormatUint(seq, 10))
	w.Write(buf.Bytes())
}

// failuresScan is how many of the newest evidence frames the gallery
// looks through for failures.
const failuresScan = 2000

// failureItem is one failed part of the evidence ring.
type failureItem struct {
	Seq     uint64
	Time    string
	Score   float64
	Th      float64
	Regions int
	Bank    uint64
	HasMap  bool
}

// failures lists the failed frames kept in the evidence ring, newest
// first, at most n.
func (c *console) failures(n int) []failureItem {
	e := c.s.evidence
	if e == nil {
		return nil
	}
	e.mu.Lock()
	seqs := make([]uint64, len(e.entries))
	for i, en := range e.entries {
		seqs[i] = en.seq
	}
	e.mu.Unlock()
	// The newest failuresScan frames at most: a ring of many frames with
	// few failures must not have every page view read all its files.
	var out []failureItem
	for i := len(seqs) - 1; i >= max(0, len(seqs)-failuresScan) && len(out) < n; i-- {
		r, err := c.evidenceResult(seqs[i])
		if err != nil || r.Verdict != mqtt.Fail {
			continue
		}
		_, hasMap := c.hub.failMap(r.Seq)
		out = append(out, failureItem{Seq: r.Seq, Time: r.Time, Score: r.Score, Th: r.Threshold, Regions: len(r.Regions), Bank: r.BankVersion, HasMap: hasMap})
	}
	return out
}

func (c *console) evidenceResult(seq uint64) (mqtt.Result, error) {
	raw, err := os.ReadFile(filepath.Join(c.s.evidence.dir, evidenceName(seq, ".json")))
	if err != nil {
		return mqtt.Result{}, err
	}
	return parseEvidenceResult(raw, seq)
}

func (c *console) failure(seqText string) (any, error) {
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || c.s.evidence == nil {
		return nil, errors.New("no such frame")
	}
	r, err := c.evidenceResult(seq)
	if err != nil {
		return nil, fmt.Errorf("frame %d is not in the evidence ring (it keeps the last %d)", seq, c.s.evidence.maxFrames)
	}
	_, hasMap := c.hub.failMap(seq)
	return map[string]any{"R": r, "HasMap": hasMap}, nil
}

// serveFailureImage draws a frame of the evidence ring: with its anomaly
// map when the console kept it (recent failures) or maps.dir has it, else
// with its regions.
func (c *console) serveFailureImage(w http.ResponseWriter, r *http.Request, _ *session) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || c.s.evidence == nil {
		http.NotFound(w, r)
		return
	}
	res, err := c.evidenceResult(seq)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	img, err := rgb.ReadFile(filepath.Join(c.s.evidence.dir, evidenceName(seq, ".png")))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	width := consoleMapWidth
	if v, err := strconv.Atoi(r.URL.Query().Get("w")); err == nil && v >= 64 && v < width {
		width = v
	}
	if f, ok := c.hub.failMap(seq); ok && f.geom.FrameW == img.W && f.geom.FrameH == img.H {
		pr := patchcore.Result{Map: f.mapv, Geometry: f.geom, Regions: f.regions}
		writePNG200(w, patchcore.RenderMap(img, &pr, &f.threshold, patchcore.MapHeatmap, width), seq)
		return
	}
	// The map the station wrote to maps.dir for it (maps.go), if any.
	if dir := c.s.cfg.Maps.Dir; dir != "" && c.s.cfg.Maps.Format == patchcore.MapHeatmap {
		if raw, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("map_%06d.png", seq))); err == nil {
			w.Header().Set("Content-Type", "image/png")
			w.Header().Set("Cache-Control", "no-store")
			w.Write(raw)
			return
		}
	}
	for _, g := range res.Regions {
		heatmap.Box(img, g.X, g.Y, g.W, g.H, color.RGBA{255, 0, 0, 255})
	}
	writePNG200(w, heatmap.Shrink(img.ToImage(), width), seq)
}

// trends is what the trends page draws.
type trends struct {
	Seq       []uint64  `json:"seq"`
	Time      []int64   `json:"time_ms"`
	Score     []float64 `json:"score"`
	Threshold []float64 `json:"threshold"`
	// Hist is the histogram of the recent good parts' scores: Edges has
	// one more entry than Counts.
	Edges       []float64    `json:"edges"`
	Counts      []int        `json:"counts"`
	Good        int          `json:"good"`
	Hours       []hourRow    `json:"hours"`
	Shifts      []hourRow    `json:"shifts"`
	ThresholdIn float64      `json:"threshold_in_force"`
	ExpectedFRR *float64     `json:"expected_frr"`
	ObservedFR  float64      `json:"observed_fail_rate"`
	Latency     []stageStats `json:"latency"`
}

type hourRow struct {
	Label string `json:"label"`
	Pass  uint32 `json:"pass"`
	Fail  uint32 `json:"fail"`
}

type stageStats struct {
	Stage string  `json:"stage"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
}

func (c *console) trends() trends {
	rs := c.hub.recentResults(0)
	st := c.state()
	t := trends{ThresholdIn: st.Threshold, ExpectedFRR: st.ExpectedFRR}
	var good []float64
	fails := 0
	for _, r := range rs {
		t.Seq = append(t.Seq, r.seq)
		t.Time = append(t.Time, r.unixMs)
		t.Score = append(t.Score, r.score)
		t.Threshold = append(t.Threshold, r.threshold)
		if r.fail {
			fails++
		} else {
			good = append(good, r.score)
		}
	}
	if len(rs) > 0 {
		t.ObservedFR = float64(fails) / float64(len(rs))
	}
	t.Good = len(good)
	t.Edges, t.Counts = histogram(good, st.Threshold, 30)
	hours := c.hub.hourCounts()
	for _, h := range hours {
		t.Hours = append(t.Hours, hourRow{Label: time.Unix(h.hour*3600, 0).Local().Format("Mon 15:00"), Pass: h.pass, Fail: h.fail})
	}
	t.Shifts = shiftRows(hours, c.shifts)
	t.Latency = latencyStats(rs)
	return t
}

// histogram bins scores into n equal bins from 0 to a little beyond the
// larger of the highest score and the threshold (so that the threshold
// line is on the chart).
func histogram(scores []float64, th float64, n int) ([]float64, []int) {
	hi := th
	for _, s := range scores {
		hi = max(hi, s)
	}
	if !(hi > 0) || math.IsInf(hi, 0) {
		return nil, nil
	}
	hi *= 1.05
	edges := make([]float64, n+1)
	for i := range edges {
		edges[i] = hi * float64(i) / float64(n)
	}
	counts := make([]int, n)
	for _, s := range scores {
		i := int(s / hi * float64(n))
		counts[min(max(i, 0), n-1)]++
	}
	return edges, counts
}

// shiftRows sums the hours into shifts that start at the given local
// hours (e.g. 6, 14, 22), newest last; a shift is named by its day and
// start.
func shiftRows(hours []hourCount, starts []int) []hourRow {
	if len(starts) == 0 {
		return nil
	}
	var out []hourRow
	var keys []int64
	idx := map[int64]int{}
	for _, h := range hours {
		t := time.Unix(h.hour*3600, 0).Local()
		// the latest start at or before t's hour, possibly yesterday's
		day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
		start := time.Time{}
		for _, s := range starts {
			if st := day.Add(time.Duration(s) * time.Hour); !st.After(t) {
				start = st
			}
		}
		if start.IsZero() {
			start = day.AddDate(0, 0, -1).Add(time.Duration(starts[len(starts)-1]) * time.Hour)
		}
		k := start.Unix()
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			keys = append(keys, k)
			out = append(out, hourRow{Label: start.Format("Mon 15:04")})
		}
		out[i].Pass += h.pass
		out[i].Fail += h.fail
	}
	return out
}

// latencyStats is p50 and p99 of each stage over the recent results
// (nearest rank).
func latencyStats(rs []recent) []stageStats {
	if len(rs) == 0 {
		return nil
	}
	out := make([]stageStats, len(latencyStages))
	v := make([]float64, len(rs))
	for st, name := range latencyStages {
		for i, r := range rs {
			v[i] = float64(r.latency[st])
		}
		slices.Sort(v)
		out[st] = stageStats{Stage: name, P50: nearestRank(v, 0.50), P99: nearestRank(v, 0.99)}
	}
	return out
}

// nearestRank is the q-quantile of sorted v by the nearest-rank method.
func nearestRank(v []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(i, 0), len(v)-1)]
}

func (c *console) serveTrends(w http.ResponseWriter, _ *http.Request, _ *session) {
	writeJSON(w, c.trends())
}

// previewMax is the most recent parts a preview can look back on.
const previewMax = ringSize

// servePreview: how many of the last n parts (?n=, default 500) would
// change verdict at threshold ?t=.
func (c *console) servePreview(w http.ResponseWriter, r *http.Request, _ *session) {
	t, err := strconv.ParseFloat(r.URL.Query().Get("t"), 64)
	if err != nil || !(t > 0) || math.IsInf(t, 0) {
		http.Error(w, "t: want a positive threshold", http.StatusBadRequest)
		return
	}
	n := 500
	if q := r.URL.Query().Get("n"); q != "" {
		if n, err = strconv.Atoi(q); err != nil || n < 1 || n > previewMax {
			http.Error(w, fmt.Sprintf("n: want 1..%d", previewMax), http.StatusBadRequest)
			return
		}
	}
	writeJSON(w, previewFlips(c.hub.recentResults(n), t))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// readBody decodes a POST's JSON body strictly into v.
func readBody(r *http.Request, v any) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	return strictDecode(raw, v)
}

// run runs command name through the station's command table, as the
// console's user, and audits it as command() does for MQTT.
func (c *console) run(name string, body any, sess *session) (any, error) {
	raw, _ := json.Marshal(body)
	who := "console:" + sess.user
	h := c.s.commands()[name]
	if h == nil {
		return nil, fmt.Errorf("the station has no command %q", name)
	}
	res, err := h(call{req: mqtt.Request{ID: "console-" + randomToken()[:12], Name: name, Raw: raw}, body: raw, who: who})
	if err != nil {
		c.s.audit(bank.AuditEntry{Action: "command", Who: who, Result: bank.AuditRefused, Reason: err.Error(), Detail: name})
		return nil, err
	}
	c.s.audit(bank.AuditEntry{Action: "command", Who: who, Result: bank.AuditOK, Detail: name + " " + string(raw)})
	return res, nil
}

// reply answers an action: its result, or its error as 409 (the station
// refused it) with the message.
func reply(w http.ResponseWriter, res any, err error) {
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, res)
}

func badRequest(w http.ResponseWriter, err error) {
	http.Error(w, "request: "+err.Error(), http.StatusBadRequest)
}

func (c *console) postThreshold(w http.ResponseWriter, r *http.Request, sess *session) {
	var p mqtt.ThresholdRequest
	if err := readBody(r, &p); err != nil {
		badRequest(w, err)
		return
	}
	res, err := c.run(mqtt.CmdThreshold, p, sess)
	reply(w, res, err)
}

// confirmed is the console's form of activate and rollback: the page asks
// the user first and says so; a request without confirmed is refused.
type confirmed struct {
	Version   uint64 `json:"version"`
	Confirmed bool   `json:"confirmed"`
}

func (c *console) postActivate(w http.ResponseWriter, r *http.Request, sess *session) {
	var p confirmed
	if err := readBody(r, &p); err != nil || p.Version == 0 {
		badRequest(w, errors.Join(err, errors.New(`want {"version": N, "confirmed": true}`)))
		return
	}
	if !p.Confirmed {
		badRequest(w, errors.New("activating a bank changes pass/fail: confirm it"))
		return
	}
	res, err := c.run(mqtt.CmdBankActivate, mqtt.ActivateRequest{Version: p.Version}, sess)
	reply(w, res, err)
}

func (c *console) postRollback(w http.ResponseWriter, r *http.Request, sess *session) {
	var p confirmed
	if err := readBody(r, &p); err != nil || p.Version != 0 {
		badRequest(w, errors.Join(err, errors.New(`want {"confirmed": true}`)))
		return
	}
	if !p.Confirmed {
		badRequest(w, errors.New("rolling back changes pass/fail: confirm it"))
		return
	}
	res, err := c.run(mqtt.CmdBankRollback, struct{}{}, sess)
	reply(w, res, err)
}

func (c *console) postEnroll(w http.ResponseWriter, r *http.Request, sess *session) {
	var p mqtt.EnrollRequest
	if err := readBody(r, &p); err != nil {
		badRequest(w, err)
		return
	}
	res, err := c.run(mqtt.CmdBankEnroll, p, sess)
	reply(w, res, err)
}

func (c *console) postAppend(w http.ResponseWriter, r *http.Request, sess *session) {
	var p mqtt.AppendRequest
	if err := readBody(r, &p); err != nil {
		badRequest(w, err)
		return
	}
	if p.Note == "" {
		p.Note = "marked good in the console by " + sess.user
	}
	res, err := c.run(mqtt.CmdBankAppend, p, sess)
	reply(w, res, err)
}

// bankRow is one bank version on the banks page.
type bankRow struct {
	bank.Meta
	Active, Target bool
	Origin         string
	ExpectedFRR    float64
}

func (c *console) banksData() (any, error) {
	d := map[string]any{}
	if _, err := os.Stat(c.s.cfg.Bank.DB); err != nil {
		d["Error"] = "no bank database yet: teach the station (below) or push a bank"
		d["State"] = c.state()
		return d, nil
	}
	st, err := bank.OpenStore(c.s.cfg.Bank.DB, true)
	if err != nil {
		d["Error"] = err.Error()
		return d, nil
	}
	defer st.Close()
	metas, err := st.List()
	if err != nil {
		return nil, err
	}
	active, _ := st.ActiveVersion()
	target, _ := st.RollbackTarget()
	rows := make([]bankRow, 0, len(metas))
	for i := len(metas) - 1; i >= 0; i-- {
		m := metas[i]
		r := bankRow{Meta: m, Active: m.Version == active, Target: m.Version == target, ExpectedFRR: m.Threshold.ExpectedFRR}
		if m.Origin != nil {
			r.Origin = fmt.Sprintf("imported: version %d of %s", m.Origin.Version, m.Origin.Created.Format(time.DateTime))
			if m.Origin.File != "" {
				r.Origin += " (" + filepath.Base(m.Origin.File) + ")"
			}
		}
		rows = append(rows, r)
	}
	audit, _ := st.AuditLog(100)
	slices.Reverse(audit) // newest first
	var pushes []bank.AuditEntry
	for _, a := range audit {
		if a.Action == "push" || a.Action == "import" || a.Action == "canary" {
			pushes = append(pushes, a)
		}
	}
	d["Banks"], d["Active"], d["Target"], d["Audit"], d["Pushes"], d["State"] = rows, active, target, audit, pushes, c.state()
	return d, nil
}

func (c *console) healthData() any {
	s := c.s
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	avail, kern := qgemm.Kernels()
	d := map[string]any{
		"Camera": cameraStatus(s.cam.Health()), "Broker": s.client.Connected(), "State": s.state(),
		"Kernel": kern, "KernelsAvailable": avail, "CPU": qgemm.CPUFeatures(), "Elementwise": vec.Kernel(),
		"HeapMB": float64(ms.HeapAlloc) / (1 << 20), "SysMB": float64(ms.Sys) / (1 << 20), "AvailableMB": float64(memAvailable()) / (1 << 20),
		"Goroutines": runtime.NumGoroutine(), "Uptime": time.Since(s.started).Round(time.Second).String(),
		"Latency": latencyStats(c.hub.recentResults(1000)), "Version": Version, "Threads": threads(s.cfg),
	}
	if err := s.healthy(); err != nil {
		d["Problem"] = err.Error()
	}
	if s.outbox != nil {
		r, m := s.outbox.Len()
		d["OutboxResults"], d["OutboxMaps"] = r, m
	}
	if s.evidence != nil {
		n, b, lo, hi := s.evidence.stats()
		d["Evidence"] = map[string]any{"Frames": n, "MB": float64(b) / (1 << 20), "Oldest": lo, "Newest": hi, "Skipped": s.evidence.skipped.Load()}
	}
	return d
}
