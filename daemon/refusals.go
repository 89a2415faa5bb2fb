package daemon

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/linesight/linesight/bank"
)

// Refused requests are audited one by one up to refusalBurst at once, then
// one every refusalEvery; the others are counted, and the count goes into
// the log as one entry when the next may be recorded. Anyone who can
// reach the broker can send refused requests, and each one recorded costs
// a write to the bank database (two fsyncs) and an audit message through
// the outbox: a flood of them recorded one by one would queue ahead of
// the station's results and wear the disk. The limit is on what is
// recorded only: every request is still checked and answered.
const (
	refusalBurst = 20
	refusalEvery = 3 * time.Second
)

// refusalGate is the rate limit above: a token bucket of refusalBurst
// tokens, one back every refusalEvery, and what it held back since the
// last entry it let through.
type refusalGate struct {
	record func(bank.AuditEntry) // writes and publishes an entry
	warn   func(msg string, args ...any)

	mu     sync.Mutex
	tokens int
	stamp  time.Time // the bucket was last topped up at stamp
	held   int       // refusals not recorded one by one since from
	from   time.Time
	to     time.Time
	byKind map[string]int // held refusals per action
	last   string         // the last held refusal's reason
	timer  *time.Timer    // records what is held when a token is back
	closed bool
}

func newRefusalGate(record func(bank.AuditEntry), warn func(msg string, args ...any)) *refusalGate {
	return &refusalGate{record: record, warn: warn, tokens: refusalBurst, stamp: time.Now(), byKind: map[string]int{}}
}

// admit says whether refusal e is to be recorded now; held is the entry
// summing up the refusals held back before it, to be recorded first (nil
// when there were none). A nil gate admits everything.
func (g *refusalGate) admit(e bank.AuditEntry) (ok bool, held *bank.AuditEntry) {
	if g == nil {
		return true, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return true, nil
	}
	g.topUp(e.Time)
	if g.tokens > 0 {
		g.tokens--
		return true, g.takeHeld()
	}
	if g.held == 0 {
		g.from = e.Time
		g.warn("refused requests beyond the audit rate limit are counted, not recorded one by one",
			"burst", refusalBurst, "then one every", refusalEvery)
	}
	g.held++
	g.to = e.Time
	g.byKind[e.Action]++
	g.last = e.Reason
	if g.timer == nil {
		g.timer = time.AfterFunc(refusalEvery, g.flush)
	}
	return false, nil
}

// topUp gives back the tokens earned since stamp.
func (g *refusalGate) topUp(now time.Time) {
	if n := int(now.Sub(g.stamp) / refusalEvery); n > 0 {
		g.tokens = min(refusalBurst, g.tokens+n)
		g.stamp = g.stamp.Add(time.Duration(n) * refusalEvery)
	}
	if g.tokens == refusalBurst || now.Before(g.stamp) {
		g.stamp = now // a full bucket earns nothing; a clock stepped back starts over
	}
}

// takeHeld returns the entry for the refusals held so far and forgets
// them; nil when none are held.
func (g *refusalGate) takeHeld() *bank.AuditEntry {
	if g.held == 0 {
		return nil
	}
	kinds := slices.Sorted(maps.Keys(g.byKind))
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, g.byKind[k])
	}
	e := &bank.AuditEntry{Time: g.to, Action: "refusals", Who: "station", Result: bank.AuditRefused,
		Reason: fmt.Sprintf("rate limit: %d refused requests from %s to %s not recorded one by one; the last refused by %s",
			g.held, g.from.UTC().Format(time.RFC3339Nano), g.to.UTC().Format(time.RFC3339Nano), g.last),
		Detail: strings.Join(parts, ", ")}
	g.held = 0
	clear(g.byKind)
	return e
}

// flush records what is held once a token is back, and waits again when
// none is (the token went to a refusal recorded meanwhile, which also
// recorded the count).
func (g *refusalGate) flush() {
	g.mu.Lock()
	g.timer = nil
	if g.closed || g.held == 0 {
		g.mu.Unlock()
		return
	}
	g.topUp(time.Now())
	if g.tokens == 0 {
		g.timer = time.AfterFunc(refusalEvery, g.flush)
		g.mu.Unlock()
		return
	}
	g.tokens--
	e := g.takeHeld()
	g.mu.Unlock()
	g.record(*e)
}

// close records what is held, whatever the tokens, and stops the gate:
// refusals after it are recorded one by one (the station is stopping).
func (g *refusalGate) close() {
	g.mu.Lock()
	g.closed = true
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	e := g.takeHeld()
	g.mu.Unlock()
	if e != nil {
		g.record(*e)
	}
}
