package daemon

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// The console's security (see consoleGuard):
//
//   - Bound to loopback (the default, http.listen: 127.0.0.1:9090) and
//     without http.console_users_file, anyone on the line PC may look,
//     without a login, as "console:local". They may act only on a station
//     that already takes unsigned changes from anyone on its broker
//     (bank.allow_unsigned without bank.trusted_keys, a lab bench): any
//     local account can reach loopback, and the console must not give it
//     more than the station's own policy gives the network. Elsewhere
//     acting takes a login. Requests must name a loopback host (Host:
//     localhost or a loopback address), so a web page on the internet
//     cannot reach the console through DNS rebinding.
//   - With http.console_users_file, every page needs a login (name and
//     token); operators may act, viewers may only look.
//   - Bound beyond loopback without a users file, the console serves only
//     a page saying so: a station never exposes an unauthenticated console
//     to the network. /healthz and /metrics are not the console's and stay.
//   - Every response carries a Content-Security-Policy without inline
//     scripts or styles, X-Frame-Options: DENY and nosniff; every
//     state-changing POST carries the session's CSRF token in a header
//     (and an Origin, when the browser sends one, naming this host), and
//     every action is audited with who asked (bank.AuditEntry.Who:
//     "console:<name>").

// Console roles.
const (
	roleOperator = "operator"
	roleViewer   = "viewer"
)

// consoleUser is one line of http.console_users_file.
type consoleUser struct {
	name string
	role string
	hash [sha256.Size]byte // SHA-256 of the token
}

// Limits of a users file: it is a short hand-written list.
const (
	usersMaxBytes   = 64 << 10
	usersMax        = 256
	minTokenLength  = 12
	sessionLifetime = 12 * time.Hour
	// A login form's pre-session (it only carries the form's CSRF token).
	loginFormLifetime = 15 * time.Minute
	sessionsMax       = 1024
	loginFailures     = 5 // per client address and minute, then 429
)

var userName = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// parseConsoleUsers reads a users file: one user a line, "name role
// sha256-hex-of-token" separated by blanks, '#' starts a comment. The
// tokens themselves are not in the file (make one with `openssl rand -hex
// 16`, store `printf %s TOKEN | sha256sum`): a copy of the file does not
// let anyone in. Tokens are random, long strings, not passwords a person
// chose, so one SHA-256 is enough and no slow hash is needed.
func parseConsoleUsers(data []byte) (map[string]consoleUser, error) {
	if len(data) > usersMaxBytes {
		return nil, fmt.Errorf("users file is %d bytes; at most %d", len(data), usersMaxBytes)
	}
	users := map[string]consoleUser{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want \"name role sha256-of-token\", got %d fields", line, len(f))
		}
		u := consoleUser{name: f[0], role: f[1]}
		if !userName.MatchString(u.name) {
			return nil, fmt.Errorf("line %d: user name %q: 1 to 64 of A-Z a-z 0-9 . _ @ -", line, u.name)
		}
		if u.role != roleOperator && u.role != roleViewer {
			return nil, fmt.Errorf("line %d: role %q: want %s or %s", line, u.role, roleOperator, roleViewer)
		}
		h, err := hex.DecodeString(f[2])
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("line %d: %q is not a SHA-256 in hex (64 characters; printf %%s TOKEN | sha256sum)", line, f[2])
		}
		copy(u.hash[:], h)
		if _, dup := users[u.name]; dup {
			return nil, fmt.Errorf("line %d: user %q named twice", line, u.name)
		}
		if len(users) == usersMax {
			return nil, fmt.Errorf("line %d: more than %d users", line, usersMax)
		}
		users[u.name] = u
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, errors.New("no users in the file")
	}
	return users, nil
}

// loadConsoleUsers reads http.console_users_file, refusing one that
// others may read (it names who may change pass/fail).
func loadConsoleUsers(path string) (map[string]consoleUser, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("http.console_users_file: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("http.console_users_file: %s is readable by everyone (mode %v); chmod 640", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("http.console_users_file: %w", err)
	}
	users, err := parseConsoleUsers(data)
	if err != nil {
		return nil, fmt.Errorf("http.console_users_file %s: %w", path, err)
	}
	return users, nil
}

// isLoopbackListen reports whether a listen address (host:port) binds
// loopback only. An empty host (":9090") binds every interface.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// isLoopbackHost reports whether a request's Host header names this
// machine's loopback (with or without a port).
func isLoopbackHost(h string) bool {
	host := h
	if hh, _, err := net.SplitHostPort(h); err == nil {
		host = hh
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// session is a logged-in browser (or, on loopback without users, any
// browser): who it is, what it may do, and its CSRF token.
type session struct {
	user    string
	role    string
	csrf    string
	expires time.Time
}

// consoleGuard authenticates console requests and keeps the sessions.
type consoleGuard struct {
	mode  string // guardLocal, guardLogin or guardClosed
	local string // guardLocal: the role of everyone (operator on a lab bench, else viewer)
	users map[string]consoleUser
	now   func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
	failures map[string][]time.Time // failed logins by client address
}

// Guard modes.
const (
	guardLocal  = "local"  // loopback, no users file: everyone may look (and act on a lab bench)
	guardLogin  = "login"  // users file: log in first
	guardClosed = "closed" // beyond loopback without users: console off
)

const sessionCookie = "linesight_session"

// newConsoleGuard: localActs says whether the station takes unsigned
// changes from anyone (then loopback users may act without a login).
func newConsoleGuard(listen, usersFile string, localActs bool) (*consoleGuard, error) {
	g := &consoleGuard{now: time.Now, sessions: map[string]*session{}, failures: map[string][]time.Time{}}
	switch {
	case usersFile != "":
		users, err := loadConsoleUsers(usersFile)
		if err != nil {
			return nil, err
		}
		g.mode, g.users = guardLogin, users
	case isLoopbackListen(listen):
		g.mode, g.local = guardLocal, roleViewer
		if localActs {
			g.local = roleOperator
		}
	default:
		g.mode = guardClosed
	}
	return g, nil
}

func randomToken() string {
	var b [24]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newSession records a session for user and sets its cookie (Secure when
// r came over HTTPS).
func (g *consoleGuard) newSession(w http.ResponseWriter, r *http.Request, user, role string) *session {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.sessions) >= sessionsMax {
		// Expired ones first; then a login form never used (anyone can
		// open many); only then the logged-in session expiring soonest.
		var oldest, form string
		for id, s := range g.sessions {
			switch {
			case now.After(s.expires):
				delete(g.sessions, id)
			case s.user == "":
				form = id
			case oldest == "" || s.expires.Before(g.sessions[oldest].expires):
				oldest = id
			}
		}
		if len(g.sessions) >= sessionsMax {
			if form != "" {
				oldest = form
			}
			delete(g.sessions, oldest)
		}
	}
	life := sessionLifetime
	if user == "" {
		life = loginFormLifetime
	}
	s := &session{user: user, role: role, csrf: randomToken(), expires: now.Add(life)}
	id := randomToken()
	g.sessions[id] = s
	// Secure over HTTPS (http.tls): the browser then never sends the
	// session over plain HTTP.
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r != nil && r.TLS != nil, Expires: s.expires})
	return s
}

// session is the request's live session, nil when none.
func (g *consoleGuard) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sessions[c.Value]
	if s != nil && g.now().After(s.expires) {
		delete(g.sessions, c.Value)
		return nil
	}
	return s
}

// endSession forgets the request's session.
func (g *consoleGuard) endSession(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		g.mu.Lock()
		delete(g.sessions, c.Value)
		g.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// login checks a name and token; it returns the user, or an error that
// does not say which of the two was wrong. Too many failures from one
// address within a minute are refused without checking.
func (g *consoleGuard) login(addr, name, token string) (consoleUser, error) {
	g.mu.Lock()
	now := g.now()
	recent := g.failures[addr][:0]
	for _, t := range g.failures[addr] {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	g.failures[addr] = recent
	if len(recent) >= loginFailures {
		g.mu.Unlock()
		return consoleUser{}, errTooManyLogins
	}
	g.mu.Unlock()
	u, ok := g.users[name]
	h := sha256.Sum256([]byte(token))
	if !ok || len(token) < minTokenLength || subtle.ConstantTimeCompare(h[:], u.hash[:]) != 1 {
		g.mu.Lock()
		if len(g.failures) > 4096 { // a scan from many addresses: forget, stay bounded
			clear(g.failures)
		}
		g.failures[addr] = append(g.failures[addr], now)
		g.mu.Unlock()
		return consoleUser{}, errBadLogin
	}
	return u, nil
}

var (
	errBadLogin      = errors.New("unknown name or wrong token")
	errTooManyLogins = errors.New("too many failed logins from this address; wait a minute")
)

// clientAddr is the request's remote IP (no port).
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// checkCSRF accepts a state-changing request only with the session's CSRF
// token in X-CSRF-Token, and, when the browser says where the request
// came from (Origin), only from this host.
func checkCSRF(r *http.Request, s *session) error {
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
		return errors.New("csrf: missing or wrong X-CSRF-Token; reload the page")
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if o != "http://"+r.Host && o != "https://"+r.Host {
			return fmt.Errorf("csrf: request from %q, not from this console", o)
		}
	}
	return nil
}

// consoleCSP: scripts, styles, images and event streams from this
// console only; no inline script or style, no framing, no plugins.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; " +
	"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// secureHeaders sets the headers every console response carries.
func secureHeaders(h http.Header) {
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}
