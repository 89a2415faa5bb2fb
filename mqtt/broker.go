package mqtt

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is an embedded MQTT broker (mochi-mqtt) for a zero-setup start. It
// listens on loopback only; with a password it lets in only the clients
// that give its username and password, else every local process.
type Broker struct {
	s     *mochi.Server
	Addr  string // host:port it listens on
	close sync.Once
	err   error
}

// StartBroker starts an embedded broker on addr (e.g. 127.0.0.1:1883; port
// 0 picks a free one). Only loopback addresses are accepted: an open broker
// must not appear on the plant network by accident. A non-empty password
// makes it require username and password of every client.
func StartBroker(addr, username, password string, log *slog.Logger) (*Broker, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt: embedded broker address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("mqtt: the embedded broker listens on loopback only, not %q; use a real broker for the network", host)
	}
	// Reserve the port first so that port 0 resolves and errors are early.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt: embedded broker: %w", err)
	}
	addr = ln.Addr().String()
	ln.Close()
	if log == nil {
		log = slog.Default()
	}
	// The broker logs client disconnects as warnings; only its errors
	// matter to a station's log.
	quiet := slog.New(&levelHandler{min: slog.LevelError, h: log.Handler()}).With("component", "broker")
	s := mochi.New(&mochi.Options{Logger: quiet, InlineClient: false})
	var hook mochi.Hook = new(auth.AllowHook)
	if password != "" {
		hook = &passwordHook{user: []byte(username), pass: []byte(password)}
	}
	if err := s.AddHook(hook, nil); err != nil {
		return nil, err
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return nil, fmt.Errorf("mqtt: embedded broker: %w", err)
	}
	if err := s.Serve(); err != nil {
		return nil, fmt.Errorf("mqtt: embedded broker: %w", err)
	}
	return &Broker{s: s, Addr: addr}, nil
}

// URL is the broker's tcp:// URL.
func (b *Broker) URL() string { return "tcp://" + b.Addr }

// Close stops the broker; later calls do nothing (mochi's own Close may
// not be called twice).
func (b *Broker) Close() error {
	b.close.Do(func() { b.err = b.s.Close() })
	return b.err
}

// passwordHook admits clients that give the username and password.
type passwordHook struct {
	mochi.HookBase
	user, pass []byte
}

func (h *passwordHook) ID() string { return "password" }

func (h *passwordHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *passwordHook) OnConnectAuthenticate(_ *mochi.Client, pk packets.Packet) bool {
	u := subtle.ConstantTimeCompare(pk.Connect.Username, h.user)
	p := subtle.ConstantTimeCompare(pk.Connect.Password, h.pass)
	return u&p == 1
}

func (h *passwordHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// levelHandler drops records below min.
type levelHandler struct {
	min slog.Level
	h   slog.Handler
}

func (l *levelHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.h.Enabled(ctx, lv)
}
func (l *levelHandler) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l *levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &levelHandler{l.min, l.h.WithAttrs(a)}
}
func (l *levelHandler) WithGroup(g string) slog.Handler {
	return &levelHandler{l.min, l.h.WithGroup(g)}
}
