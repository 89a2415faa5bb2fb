package bank

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AuditEntry records one change to a station's banks, or one refused: who
// asked for it, when, and what came of it.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// Action is what was asked: "build", "import", "push", "activate",
	// "rollback", "canary", "command", ...
	Action string `json:"action"`
	// Who asked: a signing key id ("key:<id>"), an MQTT client, or the
	// user of a CLI command ("cli:<user>@<host>").
	Who     string `json:"who"`
	Version uint64 `json:"version,omitempty"`
	Serial  uint64 `json:"serial,omitempty"`
	// Result is "ok", "refused" or "failed".
	Result string `json:"result"`
	// Reason says why it was refused or failed; for refusals it starts
	// with the check that refused it ("signature: ...").
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Audit results.
const (
	AuditOK      = "ok"
	AuditRefused = "refused"
	AuditFailed  = "failed"
)

var bucketAudit = []byte("audit")

// maxAudit bounds the audit log: the oldest entries go first.
const maxAudit = 20000

// Audit appends e to the audit log in its own transaction.
func (s *Store) Audit(e AuditEntry) error {
	err := s.update(func(tx *bolt.Tx) error { return appendAudit(tx, e) })
	if err != nil {
		return fmt.Errorf("bank: audit log of %s: %w", s.path, err)
	}
	return nil
}

func appendAudit(tx *bolt.Tx, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	b, err := tx.CreateBucketIfNotExists(bucketAudit)
	if err != nil {
		return err
	}
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := b.Put(vkey(n), raw); err != nil {
		return err
	}
	if n <= maxAudit {
		return nil
	}
	// Collect first: deleting under a moving cursor can skip keys.
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= n-maxAudit; k, _ = c.Next() {
		old = append(old, k)
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// AuditLog returns the last n entries of the audit log (all when n <= 0),
// oldest first. Entries that do not decode are reported by error after the
// others.
func (s *Store) AuditLog(n int) ([]AuditEntry, error) {
	var out []AuditEntry
	var bad int
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.Last()
		for ; k != nil && (n <= 0 || len(out) < n); k, v = c.Prev() {
			var e AuditEntry
			if json.Unmarshal(v, &e) != nil {
				bad++
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if err == nil && bad > 0 {
		err = fmt.Errorf("%w: %d audit entries do not decode", ErrCorrupt, bad)
	}
	return out, err
}
