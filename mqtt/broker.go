package mqtt

import (
	"fmt"
	"log/slog"
	"net"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is an embedded MQTT broker (mochi-mqtt) for a zero-setup start. It
// listens on loopback only and lets every local client in.
type Broker struct {
	s    *mochi.Server
	Addr string // host:port it listens on
}

// StartBroker starts an embedded broker on addr (e.g. 127.0.0.1:1883; port
// 0 picks a free one). Only loopback addresses are accepted: an open broker
// must not appear on the plant network by accident.
func StartBroker(addr string, log *slog.Logger) (*Broker, error) {
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
	s := mochi.New(&mochi.Options{Logger: log.With("component", "broker"), InlineClient: false})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
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

// Close stops the broker.
func (b *Broker) Close() error { return b.s.Close() }
