package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/linesight/linesight/model/tflite"
)

// File is a backbone read from disk: the parsed graph, the fingerprint
// that banks record, and where it came from. It is the one way the daemon,
// the CLI and the benchmarks load a model, so that what a bank is checked
// against is always computed the same way.
type File struct {
	// Path is the file's absolute path ("" for a model made in memory);
	// banks keep it as a hint for finding the model again.
	Path string
	// SHA256 is the hex SHA-256 of the file's bytes. A bank belongs to a
	// model when its recorded fingerprint equals this.
	SHA256 string
	// Model is the parsed and validated graph.
	Model *tflite.Model
	// Size is the file's length in bytes.
	Size int
}

// Load reads and validates a .tflite file.
func Load(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return Parse(path, raw)
}

// Parse is Load for bytes already in memory; path is recorded as given.
func Parse(path string, raw []byte) (*File, error) {
	m, err := tflite.Read(raw)
	if err != nil {
		if path == "" {
			return nil, fmt.Errorf("model: %w", err)
		}
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return &File{Path: path, SHA256: Fingerprint(raw), Model: m, Size: len(raw)}, nil
}

// Fingerprint is the hex SHA-256 of a model file's bytes, as banks record it.
func Fingerprint(raw []byte) string {
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:])
}

// Store writes a model file's bytes into dir as <sha256>.tflite, unless a
// file of that name is there already, and returns its path. The file
// appears whole or not at all (written aside, synced, then renamed), so a
// crash never leaves a partial model under a fingerprint's name.
func Store(dir string, raw []byte) (string, error) {
	if _, err := tflite.Read(raw); err != nil {
		return "", fmt.Errorf("model: not storing an invalid model: %w", err)
	}
	path := filepath.Join(dir, Fingerprint(raw)+".tflite")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".model-*")
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return "", fmt.Errorf("model: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("model: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // the rename itself survives a power cut
		d.Close()
	}
	return path, nil
}

// Find returns the path of the stored model (Store) with fingerprint sha
// in dir, or "" when there is none.
func Find(dir, sha string) string {
	if len(sha) != 64 || strings.ContainsAny(sha, "/.") {
		return ""
	}
	path := filepath.Join(dir, sha+".tflite")
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}
