package trust

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenerateLoadSignVerify(t *testing.T) {
	dir := t.TempDir()
	id, err := Generate(dir, "line 7 workstation")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "signing.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing.key mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := Generate(dir, ""); err == nil {
		t.Fatal("Generate overwrote an existing key")
	}
	s, err := LoadSigner(filepath.Join(dir, "signing.key"))
	if err != nil || s.ID != id {
		t.Fatalf("LoadSigner: id %v, %v; want %s", s, err, id)
	}
	ks, err := LoadKeys(filepath.Join(dir, "signing.pub"))
	if err != nil || len(ks) != 1 || ks[id].Comment != "line 7 workstation" {
		t.Fatalf("LoadKeys = %+v, %v", ks, err)
	}
	msg := []byte("manifest bytes")
	sig := s.Sign(msg)
	if err := ks.Verify(id, msg, sig); err != nil {
		t.Fatal(err)
	}
	if err := ks.Verify(id, []byte("manifest bytez"), sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered message: %v", err)
	}
	if err := ks.Verify("0123456789abcdef", msg, sig); !errors.Is(err, ErrUntrusted) {
		t.Errorf("unknown key: %v", err)
	}
	if err := ks.Verify(id, msg, nil); !errors.Is(err, ErrUnsigned) {
		t.Errorf("no signature: %v", err)
	}
	// openssl reads the private key (PKCS #8 PEM), when it is installed.
	if _, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command("openssl", "pkey", "-in", filepath.Join(dir, "signing.key"), "-noout", "-text").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ED25519") {
			t.Errorf("openssl does not read signing.key: %v\n%s", err, out)
		}
	}
}

func TestParseKeysNamesTheLine(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	good := FormatPublic(pub, "a")
	ks, err := ParseKeys([]byte("# trusted\n\n" + good + "\n" + good + "\n"))
	if err != nil || len(ks) != 1 {
		t.Fatalf("ParseKeys = %v, %v", ks, err)
	}
	for _, c := range []struct{ in, want string }{
		{"rsa AAAA\n", "line 1"},
		{good + "\ned25519 notbase64!\n", "line 2"},
		{"ed25519 " + base64.StdEncoding.EncodeToString([]byte("short")) + "\n", "32 bytes"},
	} {
		if _, err := ParseKeys([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseKeys(%q) = %v, want an error with %q", c.in, err, c.want)
		}
	}
	if _, err := LoadKeys(writeFile(t, "# nothing\n")); err == nil {
		t.Error("a trusted-keys file without keys was accepted")
	}
}

func writeFile(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignedCommands(t *testing.T) {
	dir := t.TempDir()
	id, _ := Generate(dir, "")
	s, _ := LoadSigner(filepath.Join(dir, "signing.key"))
	ks, _ := LoadKeys(filepath.Join(dir, "signing.pub"))
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	body := []byte(`{"set":12.5}`)
	sc := s.SignCommand("press-7", "threshold", body, now)
	if sc.Key != id || len(sc.Nonce) != 32 {
		t.Fatalf("signed command %+v", sc)
	}
	nonces := NewNonces(5*time.Minute, 100)
	got, key, err := ks.VerifyCommand("press-7", "threshold", &sc, now.Add(time.Minute), nonces)
	if err != nil || string(got) != string(body) || key != id {
		t.Fatalf("VerifyCommand = %q, %q, %v", got, key, err)
	}
	if _, _, err := ks.VerifyCommand("press-7", "threshold", &sc, now.Add(2*time.Minute), nonces); !errors.Is(err, ErrReplay) {
		t.Errorf("replayed command: %v", err)
	}
	for _, c := range []struct {
		name             string
		station, command string
		mutate           func(*Signed)
		at               time.Time
		want             error
	}{
		{"another station", "press-8", "threshold", nil, now, ErrBadSignature},
		{"another command", "press-7", "bank/activate", nil, now, ErrBadSignature},
		{"body changed", "press-7", "threshold", func(s *Signed) { s.Cmd = `{"set":1e9}` }, now, ErrBadSignature},
		{"time changed", "press-7", "threshold", func(s *Signed) { s.Time = now.Add(time.Second).Format(time.RFC3339Nano) }, now, ErrBadSignature},
		{"stale", "press-7", "threshold", nil, now.Add(6 * time.Minute), ErrStale},
		{"from the future", "press-7", "threshold", nil, now.Add(-6 * time.Minute), ErrStale},
		{"unsigned", "press-7", "threshold", func(s *Signed) { s.Sig = "" }, now, ErrUnsigned},
		{"untrusted key", "press-7", "threshold", func(s *Signed) { s.Key = "0000000000000000" }, now, ErrUntrusted},
	} {
		sc := s.SignCommand("press-7", "threshold", body, now)
		if c.mutate != nil {
			c.mutate(&sc)
		}
		if _, _, err := ks.VerifyCommand(c.station, c.command, &sc, c.at, NewNonces(5*time.Minute, 100)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestNoncesAreBounded(t *testing.T) {
	n := NewNonces(time.Minute, 3)
	t0 := time.Unix(0, 0)
	for i, nonce := range []string{"a", "b", "c", "d"} {
		if !n.add(nonce, t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("fresh nonce %s refused", nonce)
		}
	}
	if len(n.seen) > 3 || n.add("d", t0.Add(5*time.Second)) {
		t.Errorf("nonces %v: over the bound, or d accepted twice", n.order)
	}
	if !n.add("b", t0.Add(2*time.Minute)) {
		t.Error("a nonce past the window is still refused")
	}
}

func FuzzParseKeys(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(nil)
	f.Add([]byte(FormatPublic(pub, "x") + "\n# c\n"))
	f.Add([]byte("ed25519 AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, err := ParseKeys(data)
		if err != nil {
			return
		}
		for id, k := range ks {
			if len(k.Public) != ed25519.PublicKeySize || KeyID(k.Public) != id {
				t.Fatalf("key %s: %d bytes, id %s", id, len(k.Public), KeyID(k.Public))
			}
		}
	})
}
