package bank

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
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

var (
	bucketAudit = []byte("audit")
	// Refused requests are kept apart, under their own bound: anyone who
	// can reach the broker can send refused requests, and in one log they
	// would push the record of the changes that were made out of it.
	bucketAuditRefused = []byte("audit-refused")
)

// maxAudit bounds the log of changes made (and failed), maxAuditRefused
// that of refused requests: the oldest entries of each go first.
const (
	maxAudit        = 20000
	maxAuditRefused = 5000
)

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
	name, bound := bucketAudit, uint64(maxAudit)
	if e.Result == AuditRefused {
		name, bound = bucketAuditRefused, maxAuditRefused
	}
	b, err := tx.CreateBucketIfNotExists(name)
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
	if n <= bound {
		return nil
	}
	// Collect first: deleting under a moving cursor can skip keys.
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= n-bound; k, _ = c.Next() {
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
// changes and refusals together in the order of their times, oldest
// first. Entries that do not decode are reported by error after the
// others.
func (s *Store) AuditLog(n int) ([]AuditEntry, error) {
	var out []AuditEntry
	var bad int
	err := s.view(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketAudit, bucketAuditRefused} {
			b := tx.Bucket(name)
			if b == nil {
				continue
			}
			// The last n of each bucket hold the last n of both.
			c := b.Cursor()
			k, v := c.Last()
			for got := 0; k != nil && (n <= 0 || got < n); k, v = c.Prev() {
				var e AuditEntry
				if json.Unmarshal(v, &e) != nil {
					bad++
					continue
				}
				out = append(out, e)
				got++
			}
		}
		return nil
	})
	// Each bucket was read newest first; a stable sort keeps a bucket's
	// order among entries of one time, and reversing gives oldest first.
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b AuditEntry) int { return a.Time.Compare(b.Time) })
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	if err == nil && bad > 0 {
		err = fmt.Errorf("%w: %d audit entries do not decode", ErrCorrupt, bad)
	}
	return out, err
}
