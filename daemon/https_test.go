package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/linesight/linesight/config"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial
// number serial and its key to cert and key, and returns the certificate.
func writeCert(t *testing.T, cert, key string, serial int64) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "station t1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConsoleOverHTTPS: with http.tls the console is served over HTTPS only
// (a plain HTTP request gets no page), its session cookie is Secure, a
// certificate renewed on disk is served from the next connection on, and
// files that do not load (half written) leave the one in use serving; a
// station does not start with a pair that does not load.
func TestConsoleOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, cert, key, 1)
	if err := os.WriteFile(filepath.Join(dir, "bad.pem"), []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := httpListener(config.HTTP{Listen: "127.0.0.1:0", TLS: config.HTTPTLS{Cert: cert, Key: filepath.Join(dir, "bad.pem")}}, quiet); err == nil {
		t.Error("listening with a key that does not load")
	}

	_, h := consoleStation(t, "127.0.0.1:9090", "")
	ln, err := httpListener(config.HTTP{Listen: "127.0.0.1:0", TLS: config.HTTPTLS{Cert: cert, Key: key}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()

	get := func(trusted *x509.Certificate) (*http.Response, error) {
		pool := x509.NewCertPool()
		pool.AddCert(trusted)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		resp, err := c.Get("https://" + addr + "/api/preview?t=1")
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(first)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatalf("over HTTPS: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if cs := resp.Cookies(); len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly {
		t.Errorf("session cookie over HTTPS: %+v", cs)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + addr + "/api/preview?t=1"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("a plain HTTP request got the page")
		}
	}

	// Renewed: the next connection gets the new certificate. The files'
	// times are moved on, as a rewrite within the clock's tick would not.
	second := writeCert(t, cert, key, 2)
	later := time.Now().Add(time.Minute)
	os.Chtimes(cert, later, later)
	os.Chtimes(key, later, later)
	if resp, err := get(second); err != nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 2 {
		t.Fatalf("after renewal: %v", err)
	}
	// Half written: the certificate in use stays.
	if err := os.WriteFile(key, []byte("-----BEGIN EC PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if resp, err := get(second); err != nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 2 {
		t.Fatalf("with a key file that does not load: %v", err)
	}
}
