// Package trust holds Linesight's signing keys and the checks that use them:
// ed25519 key pairs (generated, written and read), the set of public keys a
// station trusts (bank.trusted_keys), and signatures over bank bundles and
// MQTT commands.
//
// File formats, chosen to be read and diffed by people:
//
//   - signing.key: the private key as PKCS #8 in PEM ("PRIVATE KEY"), mode
//     0600, the form openssl and Go read.
//   - signing.pub and trusted-keys files: one public key per line,
//     "ed25519 <base64 of the 32 key bytes> [comment]"; blank lines and
//     lines starting with # are ignored.
//
// A key's id is the first 16 hex digits of the SHA-256 of its 32 bytes: it
// names the key in manifests, commands and the audit log.
package trust

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Errors callers can test with errors.Is.
var (
	// ErrUntrusted: signed by a key that is not in the trusted set.
	ErrUntrusted = errors.New("trust: signed by a key this station does not trust")
	// ErrBadSignature: the signature does not match the signed bytes.
	ErrBadSignature = errors.New("trust: signature does not verify")
	// ErrUnsigned: a signature was required and none was given.
	ErrUnsigned = errors.New("trust: not signed")
)

// keyType is the first word of a public key line.
const keyType = "ed25519"

// maxKeyFile bounds what key files may hold.
const maxKeyFile = 1 << 20

// KeyID names a public key: 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// Signer is a private key with its id.
type Signer struct {
	key ed25519.PrivateKey
	ID  string
}

// Sign signs msg.
func (s *Signer) Sign(msg []byte) []byte { return ed25519.Sign(s.key, msg) }

// Public is the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Generate writes a new key pair into dir: signing.key (mode 0600; an
// existing one is never overwritten) and signing.pub, whose comment is
// comment. It returns the key id.
func Generate(dir, comment string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("trust: generating a key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("trust: encoding the key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("trust: %w", err)
	}
	keyPath := filepath.Join(dir, "signing.key")
	f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("trust: %w (keys are never overwritten; move the old pair away first)", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(keyPath)
		return "", fmt.Errorf("trust: writing %s: %w", keyPath, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(keyPath)
		return "", fmt.Errorf("trust: writing %s: %w", keyPath, err)
	}
	line := FormatPublic(pub, comment)
	if err := os.WriteFile(filepath.Join(dir, "signing.pub"), []byte(line+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("trust: %w", err)
	}
	return KeyID(pub), nil
}

// FormatPublic is pub's line in a public key file.
func FormatPublic(pub ed25519.PublicKey, comment string) string {
	line := keyType + " " + base64.StdEncoding.EncodeToString(pub)
	if comment = strings.Join(strings.Fields(comment), " "); comment != "" {
		line += " " + comment
	}
	return line
}

// LoadSigner reads a private key written by Generate.
func LoadSigner(path string) (*Signer, error) {
	raw, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(raw)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("trust: %s holds no PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("trust: %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("trust: %s is a %T, not an ed25519 key", path, k)
	}
	return &Signer{key: priv, ID: KeyID(priv.Public().(ed25519.PublicKey))}, nil
}

// Key is a trusted public key.
type Key struct {
	ID      string
	Public  ed25519.PublicKey
	Comment string
}

// Keys is a set of trusted public keys, by id.
type Keys map[string]Key

// ParseKeys reads public key lines (see the package documentation). Errors
// name the line.
func ParseKeys(data []byte) (Keys, error) {
	ks := Keys{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxKeyFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != keyType {
			return nil, fmt.Errorf("trust: line %d: want \"ed25519 <base64 key> [comment]\"", n)
		}
		raw, err := base64.StdEncoding.DecodeString(f[1])
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("trust: line %d: %q is not a base64 ed25519 public key (32 bytes)", n, f[1])
		}
		pub := ed25519.PublicKey(raw)
		ks[KeyID(pub)] = Key{ID: KeyID(pub), Public: pub, Comment: strings.Join(f[2:], " ")}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	return ks, nil
}

// LoadKeys reads a trusted-keys file. A file without any key is an error:
// it would trust nothing while looking configured.
func LoadKeys(path string) (Keys, error) {
	raw, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	ks, err := ParseKeys(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("trust: %s holds no public key", path)
	}
	return ks, nil
}

// Verify checks that sig is keyID's signature over msg and that keyID is
// trusted. Errors wrap ErrUnsigned, ErrUntrusted or ErrBadSignature.
func (ks Keys) Verify(keyID string, msg, sig []byte) error {
	if keyID == "" || len(sig) == 0 {
		return ErrUnsigned
	}
	k, ok := ks[keyID]
	if !ok {
		return fmt.Errorf("%w (key id %s)", ErrUntrusted, keyID)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(k.Public, msg, sig) {
		return fmt.Errorf("%w (key id %s)", ErrBadSignature, keyID)
	}
	return nil
}

func readSmall(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	if fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("trust: %s is %d bytes; a key file is a few hundred", path, fi.Size())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	return raw, nil
}
