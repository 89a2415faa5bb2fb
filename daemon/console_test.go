package daemon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

func testImage(w, h int) *rgb.Image {
	return &rgb.Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
}

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

func TestParseConsoleUsers(t *testing.T) {
	good := "# who may log in\nanna operator " + tokenHash("anna-token-123") + "\n\n  vic   viewer " + tokenHash("vic-token-4567") + "  # the night shift\n"
	users, err := parseConsoleUsers([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users["anna"].role != roleOperator || users["vic"].role != roleViewer || users["anna"].hash != sha256.Sum256([]byte("anna-token-123")) {
		t.Fatalf("users = %+v", users)
	}
	h := tokenHash("x")
	for _, bad := range []struct{ in, want string }{
		{"", "no users"},
		{"# only a comment\n", "no users"},
		{"anna operator", "line 1: want"},
		{"anna admin " + h, `role "admin"`},
		{"an/na operator " + h, "user name"},
		{"anna operator " + h[:63], "SHA-256"},
		{"anna operator " + strings.Repeat("g", 64), "SHA-256"},
		{"anna operator " + h + "\nanna viewer " + h, "named twice"},
		{strings.Repeat("#", usersMaxBytes+1), "bytes"},
	} {
		if _, err := parseConsoleUsers([]byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%.40q: err = %v, want %q", bad.in, err, bad.want)
		}
	}
}

func FuzzConsoleUsers(f *testing.F) {
	f.Add([]byte("anna operator " + tokenHash("t") + "\n"))
	f.Add([]byte("# c\nvic viewer " + tokenHash("u") + " # x\n"))
	f.Add([]byte("a b c\n\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		users, err := parseConsoleUsers(data)
		if err == nil && (len(users) == 0 || len(users) > usersMax) {
			t.Fatalf("%d users accepted", len(users))
		}
		for _, u := range users {
			if u.role != roleOperator && u.role != roleViewer {
				t.Fatalf("role %q accepted", u.role)
			}
		}
	})
}

func TestLoopbackAddresses(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:9090": true, "[::1]:9090": true, "localhost:9090": true, "127.0.0.5:1": true,
		":9090": false, "0.0.0.0:9090": false, "[::]:9090": false, "10.0.0.2:9090": false, "example.com:80": false, "garbage": false} {
		if got := isLoopbackListen(addr); got != want {
			t.Errorf("isLoopbackListen(%q) = %v", addr, got)
		}
	}
	for host, want := range map[string]bool{"127.0.0.1:9090": true, "localhost:9090": true, "LOCALHOST": true, "[::1]:80": true, "[::1]": true,
		"evil.example:9090": false, "10.0.0.2:9090": false, "localhost.evil.example": false} {
		if got := isLoopbackHost(host); got != want {
			t.Errorf("isLoopbackHost(%q) = %v", host, got)
		}
	}
}

// TestPreviewFlips: hand-counted. A part fails when its score is above
// the threshold; at 2.0 the part at exactly 2.0 passes.
func TestPreviewFlips(t *testing.T) {
	rs := []recent{{score: 1.0}, {score: 2.0}, {score: 2.5, fail: true}, {score: 1.9}, {score: 3.1, fail: true}, {score: 2.2}}
	got := previewFlips(rs, 2.0)
	want := flips{N: 6, Failed: 2, WouldFail: 3, ToFail: 1, ToPass: 0, T: 2.0}
	if got != want {
		t.Errorf("at 2.0: %+v, want %+v", got, want)
	}
	got = previewFlips(rs, 2.6)
	want = flips{N: 6, Failed: 2, WouldFail: 1, ToFail: 0, ToPass: 1, T: 2.6}
	if got != want {
		t.Errorf("at 2.6: %+v, want %+v", got, want)
	}
}

// TestConsoleHubRing: the ring keeps the last ringSize results in order,
// counts hours, and copies the latest frame only while someone watches.
func TestConsoleHubRing(t *testing.T) {
	h := newConsoleHub()
	img := testImage(8, 6)
	at := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	for i := 1; i <= ringSize+10; i++ {
		r := patchcore.Result{Score: float64(i), Threshold: 100, Fail: i%10 == 0, Map: make([]float32, 4), Geometry: patchcore.Geometry{FrameW: 8, FrameH: 6}}
		res := mqtt.Result{Seq: uint64(i), BankVersion: 1}
		if i == ringSize+5 {
			_, cancel := h.subscribe()
			defer cancel()
		}
		h.publish(img, &r, &res, []byte(fmt.Sprint(i)), &bank.Threshold{Value: 100}, at.Add(time.Duration(i)*time.Second))
	}
	rs := h.recentResults(0)
	if len(rs) != ringSize || rs[0].seq != 11 || rs[len(rs)-1].seq != ringSize+10 {
		t.Fatalf("ring: %d results, %d..%d", len(rs), rs[0].seq, rs[len(rs)-1].seq)
	}
	if rs := h.recentResults(3); len(rs) != 3 || rs[0].seq != ringSize+8 {
		t.Errorf("last 3: %+v", rs)
	}
	var pass, fail uint32
	for _, hc := range h.hourCounts() {
		pass, fail = pass+hc.pass, fail+hc.fail
	}
	if n := ringSize + 10; int(fail) != n/10 || int(pass+fail) != n {
		t.Errorf("hours: %d pass %d fail", pass, fail)
	}
	if f, ok := h.liveCopy(); !ok || f.seq != ringSize+10 || f.frame.W != 8 {
		t.Errorf("live frame: seq %d ok %v", f.seq, ok)
	}
	if _, ok := h.failMap(ringSize / 10 * 10); !ok { // the last failure (every 10th part fails)
		t.Error("the last failure's map was not kept")
	}
	if raw, seq := h.latestResult(); string(raw) != fmt.Sprint(ringSize+10) || seq != ringSize+10 || h.liveSeq() != seq {
		t.Errorf("latest = %q, seq %d, live %d", raw, seq, h.liveSeq())
	}
}

// TestConsolePublishAllocs: the pipeline's hook allocates nothing per
// frame after warm-up, watched or not.
func TestConsolePublishAllocs(t *testing.T) {
	h := newConsoleHub()
	img := testImage(64, 48)
	r := patchcore.Result{Score: 3, Threshold: 2, Fail: true, Map: make([]float32, 32*32), Regions: make([]patchcore.Region, 2), Geometry: patchcore.Geometry{FrameW: 64, FrameH: 48}}
	res := mqtt.Result{Seq: 1}
	th := bank.Threshold{Value: 2}
	payload := []byte("{}")
	_, cancel := h.subscribe()
	defer cancel()
	now := time.Now()
	for i := range 2 * failMaps {
		res.Seq = uint64(i + 1)
		h.publish(img, &r, &res, payload, &th, now)
	}
	allocs := testing.AllocsPerRun(100, func() {
		res.Seq++
		h.publish(img, &r, &res, payload, &th, now)
	})
	if allocs != 0 {
		t.Errorf("publish allocates %v per frame", allocs)
	}
}

func TestHistogramShiftsQuantiles(t *testing.T) {
	edges, counts := histogram([]float64{0.1, 0.2, 0.95, 1.0}, 0.5, 4)
	// 0..1.05 in 4 bins of 0.2625: 0.1, 0.2 | - | - | 0.95, 1.0
	if len(edges) != 5 || edges[4] != 1.05 || fmt.Sprint(counts) != "[2 0 0 2]" {
		t.Errorf("histogram: %v %v", edges, counts)
	}
	if v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; nearestRank(v, 0.5) != 5 || nearestRank(v, 0.99) != 10 {
		t.Error("nearest rank")
	}
	loc := time.Local
	hour := func(d, h int) int64 { return time.Date(2026, 12, d, h, 0, 0, 0, loc).Unix() / 3600 }
	rows := shiftRows([]hourCount{{hour(3, 23), 1, 0}, {hour(4, 5), 2, 1}, {hour(4, 6), 4, 0}, {hour(4, 13), 8, 2}, {hour(4, 14), 16, 0}}, []int{6, 14, 22})
	got := fmt.Sprint(rows)
	want := "[{Thu 22:00 3 1} {Fri 06:00 12 2} {Fri 14:00 16 0}]"
	if got != want {
		t.Errorf("shifts: %s, want %s", got, want)
	}
}

// consoleStation is a station with what the console's guard and actions
// need, without a model: the bank database (for the audit log) and an
// MQTT client that never connects.
func consoleStation(t *testing.T, listen, users string, sets ...func(*config.Config)) (*console, http.Handler) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.Station.ID, cfg.Bank.DB, cfg.HTTP.Listen, cfg.HTTP.ConsoleUsersFile = "t1", filepath.Join(dir, "banks.db"), listen, users
	for _, set := range sets {
		set(&cfg)
	}
	s := &station{cfg: &cfg, log: quiet, metrics: newMetrics(), banks: &banks{db: cfg.Bank.DB, log: quiet}}
	s.client = mqtt.New(mqtt.Options{Broker: "tcp://127.0.0.1:1", ClientID: "never", Prefix: "linesight", Station: "t1", Log: quiet})
	c, err := newConsole(s)
	if err != nil {
		t.Fatal(err)
	}
	s.console = c
	mux := http.NewServeMux()
	c.routes(mux)
	return c, mux
}

func do(h http.Handler, method, target, host string, hdr map[string]string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(`{"set": 1}`))
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func auditLog(t *testing.T, db string) []bank.AuditEntry {
	t.Helper()
	st, err := bank.OpenStore(db, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, err := st.AuditLog(100)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// TestConsoleGuardLocal: on loopback without users, a browser gets a
// session on its first request; requests naming another host (DNS
// rebinding) are refused; a POST without the CSRF token, or from another
// origin, is refused and audited; every response has the secure headers.
// Local users may only look, unless the station takes unsigned changes
// from anyone anyway (bank.allow_unsigned, a lab bench).
func TestConsoleGuardLocal(t *testing.T) {
	c, h := consoleStation(t, "127.0.0.1:9090", "")
	if w := do(h, "GET", "/api/preview?t=1", "evil.example:9090", nil); w.Code != http.StatusForbidden {
		t.Errorf("Host evil.example: %d", w.Code)
	}
	w := do(h, "GET", "/api/preview?t=1", "127.0.0.1:9090", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"n":0`) {
		t.Fatalf("preview: %d %s", w.Code, w.Body)
	}
	for k, want := range map[string]string{"Content-Security-Policy": "script-src 'self'", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
		if got := w.Header().Get(k); !strings.Contains(got, want) {
			t.Errorf("%s = %q", k, got)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline code: %s", csp)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie: %+v", cookies)
	}
	sess := c.guard.session(&http.Request{Header: http.Header{"Cookie": {cookies[0].String()}}})
	if sess == nil || sess.user != "local" || sess.role != roleViewer {
		t.Fatalf("session %+v, want local viewer", sess)
	}
	if w := do(h, "POST", "/api/threshold", "127.0.0.1:9090", map[string]string{"X-CSRF-Token": sess.csrf}, cookies...); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "role") {
		t.Errorf("a local viewer's POST: %d %s", w.Code, w.Body)
	}

	// A lab bench: local users act.
	c, h = consoleStation(t, "127.0.0.1:9090", "", func(cfg *config.Config) { cfg.Bank.AllowUnsigned = true })
	cookies = do(h, "GET", "/api/preview?t=1", "localhost:9090", nil).Result().Cookies()
	sess = c.guard.session(&http.Request{Header: http.Header{"Cookie": {cookies[0].String()}}})
	if sess == nil || sess.role != roleOperator {
		t.Fatalf("lab bench session %+v, want local operator", sess)
	}
	if w := do(h, "POST", "/api/threshold", "127.0.0.1:9090", nil, cookies...); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "csrf") {
		t.Errorf("POST without a CSRF token: %d %s", w.Code, w.Body)
	}
	if w := do(h, "POST", "/api/threshold", "127.0.0.1:9090", map[string]string{"X-CSRF-Token": sess.csrf, "Origin": "http://evil.example"}, cookies...); w.Code != http.StatusForbidden {
		t.Errorf("POST from another origin: %d %s", w.Code, w.Body)
	}
	// With the token it reaches the command, which refuses: no bank.
	if w := do(h, "POST", "/api/threshold", "127.0.0.1:9090", map[string]string{"X-CSRF-Token": sess.csrf, "Origin": "http://127.0.0.1:9090"}, cookies...); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "needs-bank") {
		t.Errorf("POST with the token: %d %s", w.Code, w.Body)
	}
	log := auditLog(t, c.s.cfg.Bank.DB)
	if len(log) != 3 || log[0].Who != "console:local" || log[0].Result != bank.AuditRefused || !strings.HasPrefix(log[0].Reason, "csrf") ||
		!strings.HasPrefix(log[1].Reason, "csrf") || log[2].Action != "command" || log[2].Detail != mqtt.CmdThreshold {
		t.Errorf("audit log: %+v", log)
	}
}

// TestConsoleGuardClosed: bound beyond loopback without users, the
// console serves nothing.
func TestConsoleGuardClosed(t *testing.T) {
	_, h := consoleStation(t, "0.0.0.0:9090", "")
	for _, p := range []string{"/", "/banks", "/api/trends", "/events", "/static/console.js"} {
		if w := do(h, "GET", p, "127.0.0.1:9090", nil); w.Code != http.StatusForbidden {
			t.Errorf("GET %s: %d", p, w.Code)
		}
	}
}

// TestConsoleLogin: with a users file, pages send to the login and data
// needs a session; the login form needs its own CSRF token; wrong tokens
// are refused (and, from one address, throttled); a viewer may look but
// not act.
func TestConsoleLogin(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users")
	os.WriteFile(users, []byte("anna operator "+tokenHash("anna-token-123")+"\nvic viewer "+tokenHash("vic-token-4567")+"\n"), 0o640)
	c, h := consoleStation(t, "0.0.0.0:9090", users)
	srv := httptest.NewServer(h)
	defer srv.Close()
	if w := do(h, "GET", "/trends", "10.0.0.2:9090", nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2Ftrends" {
		t.Errorf("GET /trends: %d %q", w.Code, w.Header().Get("Location"))
	}
	if w := do(h, "GET", "/api/trends", "10.0.0.2:9090", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("GET /api/trends: %d", w.Code)
	}
	login := func(name, token string, withCSRF bool) (*http.Client, *http.Response, string) {
		jar, _ := cookiejar.New(nil)
		cl := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := cl.Get(srv.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no CSRF token in the login form: %s", body)
		}
		form := url.Values{"name": {name}, "token": {token}, "next": {"/banks"}}
		if withCSRF {
			form.Set("csrf", string(m[1]))
		}
		resp, err = cl.PostForm(srv.URL+"/login", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return cl, resp, string(m[1])
	}
	if _, resp, _ := login("anna", "anna-token-123", false); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form's CSRF token: %d", resp.StatusCode)
	}
	if _, resp, _ := login("anna", "wrong-token-000", true); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	cl, resp, _ := login("anna", "anna-token-123", true)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/banks" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if r, err := cl.Get(srv.URL + "/api/trends"); err != nil || r.StatusCode != 200 {
		t.Fatalf("after login: %v %v", r, err)
	}

	// The viewer: may look, may not act (even with the right CSRF token).
	cl, _, _ = login("vic", "vic-token-4567", true)
	u, _ := url.Parse(srv.URL)
	var sess *session
	for _, ck := range cl.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			sess = c.guard.session(&http.Request{Header: http.Header{"Cookie": {ck.String()}}})
		}
	}
	if sess == nil || sess.role != roleViewer {
		t.Fatalf("viewer session %+v", sess)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/bank/rollback", strings.NewReader(`{"confirmed": true}`))
	req.Header.Set("X-CSRF-Token", sess.csrf)
	r, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "viewer") {
		t.Errorf("viewer's rollback: %d %s", r.StatusCode, b)
	}
	log := auditLog(t, c.s.cfg.Bank.DB)
	if len(log) != 1 || log[0].Who != "console:vic" || log[0].Result != bank.AuditRefused || !strings.HasPrefix(log[0].Reason, "role") {
		t.Errorf("audit log: %+v", log)
	}

	// Throttling: after loginFailures wrong tokens from one address.
	for range loginFailures {
		login("anna", "wrong-token-000", true)
	}
	if _, err := c.guard.login("127.0.0.1", "anna", "anna-token-123"); err != errTooManyLogins {
		t.Errorf("login after %d failures: %v", loginFailures, err)
	}
}

// TestSessionsBounded: sessions stay at most sessionsMax; opening login
// forms by the thousand evicts forms, not a logged-in operator.
func TestSessionsBounded(t *testing.T) {
	g := &consoleGuard{mode: guardLogin, now: time.Now, sessions: map[string]*session{}, failures: map[string][]time.Time{}}
	w := httptest.NewRecorder()
	anna := g.newSession(w, nil, "anna", roleOperator)
	cookie := w.Result().Cookies()[0]
	for range sessionsMax + 100 {
		g.newSession(httptest.NewRecorder(), nil, "", "")
	}
	if len(g.sessions) != sessionsMax {
		t.Errorf("%d sessions, want at most %d", len(g.sessions), sessionsMax)
	}
	if s := g.session(&http.Request{Header: http.Header{"Cookie": {cookie.String()}}}); s != anna {
		t.Error("the logged-in session was evicted by login forms")
	}
	// Expired sessions are not served.
	g.now = func() time.Time { return time.Now().Add(sessionLifetime + time.Minute) }
	if s := g.session(&http.Request{Header: http.Header{"Cookie": {cookie.String()}}}); s != nil {
		t.Error("an expired session was served")
	}
}

// TestFailureImageSources: a failure's picture is drawn with the map the
// console kept, else served from maps.dir, else drawn with its region
// boxes; the gallery lists failures only, newest first.
func TestFailureImageSources(t *testing.T) {
	maps := t.TempDir()
	c, h := consoleStation(t, "127.0.0.1:9090", "", func(cfg *config.Config) { cfg.Maps.Dir = maps })
	e, err := openEvidence(t.TempDir(), 10, 1<<20, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c.s.evidence = e
	region := mqtt.Region{X: 4, Y: 5, W: 10, H: 8}
	for seq := uint64(1); seq <= 4; seq++ {
		img := testImage(32, 24)
		res := mqtt.Result{Station: "t1", Seq: seq, Verdict: mqtt.Fail, Score: 3, Threshold: 2, Regions: []mqtt.Region{region}}
		if seq == 4 {
			res.Verdict = mqtt.Pass
		}
		raw, _ := json.Marshal(res)
		e.add(seq, img, raw)
		e.write(<-e.jobs)
	}
	// Part 1: its map is in the console (all of it hot).
	m := make([]float32, 16*16)
	for i := range m {
		m[i] = 10
	}
	r := patchcore.Result{Score: 3, Threshold: 2, Fail: true, Map: m, Regions: []patchcore.Region{{X: 4, Y: 5, W: 10, H: 8}},
		Geometry: patchcore.Geometry{FrameW: 32, FrameH: 24, W: 32, H: 24, InW: 16, InH: 16}}
	c.hub.publish(testImage(32, 24), &r, &mqtt.Result{Seq: 1}, []byte("{}"), &bank.Threshold{Value: 2, Pixel: 1, PixelStats: bank.Stats{Max: 2}}, time.Now())
	// Part 2: its map is in maps.dir.
	want2 := []byte("\x89PNG map 2")
	os.WriteFile(filepath.Join(maps, "map_000002.png"), want2, 0o644)

	get := func(seq int) []byte {
		w := do(h, "GET", fmt.Sprintf("/failures/%d/image.png", seq), "127.0.0.1:9090", nil)
		if w.Code != 200 {
			t.Fatalf("part %d: %d %s", seq, w.Code, w.Body)
		}
		return w.Body.Bytes()
	}
	decode := func(b []byte) image.Image {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	// 1: drawn over the black frame: the map's colours, not black.
	if img := decode(get(1)); img.Bounds().Dx() != 32 {
		t.Errorf("part 1: %v", img.Bounds())
	} else if r, g, b, _ := img.At(20, 20).RGBA(); r|g|b == 0 {
		t.Error("part 1: no map drawn")
	}
	if got := get(2); !bytes.Equal(got, want2) {
		t.Errorf("part 2: %q, want the maps.dir file", got)
	}
	// 3: the black frame with a red box on the region's edge, black inside.
	img := decode(get(3))
	if r, g, b, _ := img.At(region.X, region.Y+3).RGBA(); r>>8 != 255 || g != 0 || b != 0 {
		t.Errorf("part 3: edge pixel %v %v %v, want red", r>>8, g>>8, b>>8)
	}
	if r, g, b, _ := img.At(region.X+5, region.Y+4).RGBA(); r|g|b != 0 {
		t.Error("part 3: inside the box is not the frame")
	}
	var seqs []uint64
	for _, f := range c.failures(10) {
		seqs = append(seqs, f.Seq)
	}
	if fmt.Sprint(seqs) != "[3 2 1]" {
		t.Errorf("gallery %v, want [3 2 1]", seqs)
	}
}
