package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// Credentials are the files that authenticate a connection to a broker:
// a password file (its content without trailing line breaks) and TLS
// files for ssl:// and wss:// brokers. Empty fields are unused.
type Credentials struct {
	Username     string
	PasswordFile string
	CA           string // PEM CA certificates to trust (default: the system's)
	Cert, Key    string // PEM client certificate and key
}

// Load reads the files for a connection to broker: the password, and a TLS
// configuration when the broker's scheme is ssl:// or wss:// or TLS files
// are given (nil otherwise). Errors name the file that failed.
func (c Credentials) Load(broker string) (*tls.Config, string, error) {
	var password string
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, "", fmt.Errorf("mqtt: password file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	if c.CA == "" && c.Cert == "" && !strings.HasPrefix(broker, "ssl://") && !strings.HasPrefix(broker, "wss://") {
		return nil, password, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, "", fmt.Errorf("mqtt: TLS CA: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("mqtt: TLS CA: no PEM certificates in %s", c.CA)
		}
	}
	if c.Cert != "" || c.Key != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, "", fmt.Errorf("mqtt: TLS client certificate %s / key %s: %w", c.Cert, c.Key, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, password, nil
}
