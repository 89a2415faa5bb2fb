package daemon

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/linesight/linesight/config"
)

// certFiles serves http.tls's certificate and takes a renewed one written
// over the files (certbot, an internal CA's agent) at the next connection,
// without a restart: the files' sizes and times are looked at on each
// handshake, the pair loaded again when they moved. A pair that does not
// load (half written, a key that does not match) leaves the one in use
// serving, and is logged once.
type certFiles struct {
	cert, key string
	log       *slog.Logger

	mu    sync.Mutex
	stamp string // the files' sizes and times when last loaded or refused
	pair  *tls.Certificate
}

// newCertFiles loads the pair once: a station must not start with one
// that does not load.
func newCertFiles(c config.HTTPTLS, log *slog.Logger) (*certFiles, error) {
	f := &certFiles{cert: c.Cert, key: c.Key, log: log}
	if _, err := f.get(nil); err != nil {
		return nil, err
	}
	return f, nil
}

// filesStamp is what tells a rewritten file: size and modification time
// of both.
func (f *certFiles) filesStamp() (string, error) {
	var stamp string
	for _, p := range []string{f.cert, f.key} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d.%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

// get is tls.Config.GetCertificate.
func (f *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stamp, err := f.filesStamp()
	if err != nil || stamp == f.stamp {
		if f.pair == nil {
			return nil, fmt.Errorf("http.tls: %w", err)
		}
		return f.pair, nil // files gone for a moment (being replaced), or unchanged
	}
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		if f.pair == nil {
			return nil, fmt.Errorf("http.tls: %w", err)
		}
		// Logged once per change of the files: the stamp is kept.
		f.log.Error("http.tls: the certificate files changed but do not load; serving the previous certificate", "cert", f.cert, "key", f.key, "err", err)
		f.stamp = stamp
		return f.pair, nil
	}
	if f.pair != nil && pair.Leaf != nil {
		f.log.Info("http.tls: certificate reloaded", "cert", f.cert, "not_after", pair.Leaf.NotAfter.Format(time.RFC3339))
	}
	f.stamp, f.pair = stamp, &pair
	return f.pair, nil
}

// httpListener listens on http.listen, over TLS when http.tls is set.
func httpListener(c config.HTTP, log *slog.Logger) (net.Listener, error) {
	var certs *certFiles
	if c.TLS.Cert != "" {
		var err error
		if certs, err = newCertFiles(c.TLS, log); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	if certs == nil {
		return ln, nil
	}
	return tls.NewListener(ln, &tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12}), nil
}
