package trust

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Signed is a command signed for one station: Cmd is the command's own
// JSON object as a string (the exact bytes signed), the rest says who
// signed it, when, and once.
//
// The signature covers "linesight-cmd-v1", the station, the command name,
// the time, the nonce and Cmd, each on its own line, so that a signed
// command cannot be replayed to another station, as another command, later
// than the freshness window or twice.
type Signed struct {
	Cmd   string `json:"cmd"`
	Key   string `json:"key"`   // the signer's key id
	Time  string `json:"ts"`    // RFC 3339 with nanoseconds, UTC
	Nonce string `json:"nonce"` // 32 hex digits, random
	Sig   string `json:"sig"`   // base64 ed25519 signature
}

// Errors of command verification, testable with errors.Is.
var (
	// ErrStale: the command's time is outside the freshness window.
	ErrStale = errors.New("trust: command is stale or from the future")
	// ErrReplay: the command's nonce was seen before.
	ErrReplay = errors.New("trust: command was already received (replay)")
)

func signedBytes(station, name, ts, nonce, cmd string) []byte {
	return []byte(strings.Join([]string{"linesight-cmd-v1", station, name, ts, nonce, cmd}, "\n"))
}

// SignCommand signs the command body (a JSON object) named name for
// station, at now.
func (s *Signer) SignCommand(station, name string, body []byte, now time.Time) Signed {
	var n [16]byte
	rand.Read(n[:])
	sc := Signed{Cmd: string(body), Key: s.ID, Time: now.UTC().Format(time.RFC3339Nano), Nonce: hex.EncodeToString(n[:])}
	sc.Sig = base64.StdEncoding.EncodeToString(s.Sign(signedBytes(station, name, sc.Time, sc.Nonce, sc.Cmd)))
	return sc
}

// Nonces remembers the nonces of accepted commands for the freshness
// window, so that a command is accepted once. It is bounded: when full, the
// oldest entries go first (they are the next to expire anyway).
type Nonces struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	seen   map[string]time.Time
	order  []string
}

// NewNonces remembers nonces for window, at most max of them.
func NewNonces(window time.Duration, max int) *Nonces {
	return &Nonces{window: window, max: max, seen: map[string]time.Time{}}
}

// Window is the freshness window.
func (n *Nonces) Window() time.Duration { return n.window }

// add records nonce at t; false if it was seen within the window.
func (n *Nonces) add(nonce string, t time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for len(n.order) > 0 {
		first := n.order[0]
		if exp, ok := n.seen[first]; ok && t.Sub(exp) < n.window && len(n.order) < n.max {
			break
		}
		delete(n.seen, first)
		n.order = n.order[1:]
	}
	if _, dup := n.seen[nonce]; dup {
		return false
	}
	n.seen[nonce] = t
	n.order = append(n.order, nonce)
	return true
}

// VerifyCommand checks a signed command for station and name at now: a
// trusted key, a good signature, a time within the nonces' window of now
// and a nonce not seen before. It returns the command body and the key id.
func (ks Keys) VerifyCommand(station, name string, sc *Signed, now time.Time, nonces *Nonces) ([]byte, string, error) {
	if sc == nil || sc.Sig == "" {
		return nil, "", ErrUnsigned
	}
	sig, err := base64.StdEncoding.DecodeString(sc.Sig)
	if err != nil {
		return nil, sc.Key, fmt.Errorf("%w: signature is not base64", ErrBadSignature)
	}
	if len(sc.Nonce) != 32 {
		return nil, sc.Key, fmt.Errorf("%w: nonce %q is not 32 hex digits", ErrBadSignature, sc.Nonce)
	}
	if err := ks.Verify(sc.Key, signedBytes(station, name, sc.Time, sc.Nonce, sc.Cmd), sig); err != nil {
		return nil, sc.Key, err
	}
	ts, err := time.Parse(time.RFC3339Nano, sc.Time)
	if err != nil {
		return nil, sc.Key, fmt.Errorf("%w: time %q is not RFC 3339", ErrStale, sc.Time)
	}
	if d := now.Sub(ts); d > nonces.window || d < -nonces.window {
		return nil, sc.Key, fmt.Errorf("%w: signed at %s, %v from now (window ±%v)", ErrStale, sc.Time, d.Round(time.Second), nonces.window)
	}
	if !nonces.add(sc.Nonce, now) {
		return nil, sc.Key, ErrReplay
	}
	return []byte(sc.Cmd), sc.Key, nil
}
