package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/patchcore"
)

// bankPoll is how often the bank database is checked for activations made
// outside the daemon (`linesight bank activate`).
const bankPoll = 5 * time.Second

// banks owns the detector in use and the one waiting to take over. A new
// bank is loaded and checked against the model before anything is recorded;
// the pipeline swaps it in between frames (swapIn), so a frame is always
// scored by one bank from start to end.
type banks struct {
	db      string
	model   *model.File
	threads int
	log     *slog.Logger

	cur atomic.Pointer[patchcore.Detector]

	mu       sync.Mutex // serialises loading and activation; guards the rest
	next     *patchcore.Detector
	override float64 // the operator's threshold, 0 = the bank's
}

// openBanks loads the active bank of cfg's database for mf.
func openBanks(cfg *config.Config, mf *model.File, threads int, log *slog.Logger) (*banks, error) {
	b := &banks{db: cfg.Bank.DB, model: mf, threads: threads, log: log, override: cfg.Scoring.Threshold}
	det, err := b.load(0)
	if err != nil {
		return nil, err
	}
	b.cur.Store(det)
	return b, nil
}

// current is the detector in use. Only the pipeline inspects with it.
func (b *banks) current() *patchcore.Detector { return b.cur.Load() }

// load opens the database briefly (read-only, so the CLI can use it while
// the daemon runs), loads version v (0: the active one) and makes a
// detector for it, with the operator's threshold. A bank that does not fit
// the model is refused.
func (b *banks) load(v uint64) (*patchcore.Detector, error) {
	st, err := bank.OpenStore(b.db, true)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	bk, err := st.Get(v)
	if err != nil {
		return nil, fmt.Errorf("bank %s: %w", b.db, err)
	}
	det, err := patchcore.Open(bk, b.model, patchcore.Options{Threads: b.threads})
	if err != nil {
		return nil, err
	}
	det.SetThreshold(b.override)
	return det, nil
}

// offer hands det to the pipeline, replacing (and closing) any detector
// still waiting. Called with b.mu held.
func (b *banks) offer(det *patchcore.Detector) uint64 {
	if b.next != nil {
		b.next.Close()
	}
	b.next = det
	v := det.Bank().Meta.Version
	b.log.Info("bank version loaded; swapping in between frames", "version", v)
	return v
}

// swapIn puts the waiting detector, if any, in use and closes the old one;
// it reports whether it did. The pipeline calls it between frames.
func (b *banks) swapIn() bool {
	b.mu.Lock()
	next := b.next
	b.next = nil
	b.mu.Unlock()
	if next == nil {
		return false
	}
	b.cur.Swap(next).Close()
	return true
}

// pendingVersion is the version that is in use or about to be.
func (b *banks) pendingVersion() uint64 {
	if b.next != nil {
		return b.next.Bank().Meta.Version
	}
	return b.cur.Load().Bank().Meta.Version
}

// activate loads version v, checks it against the model, and only then
// records the activation; the pipeline swaps it in. A bank that does not
// load changes nothing.
func (b *banks) activate(v uint64) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	det, err := b.load(v)
	if err != nil {
		return 0, err
	}
	if err := b.write(func(st *bank.Store) error { return st.Activate(v) }); err != nil {
		det.Close()
		return 0, err
	}
	return b.offer(det), nil
}

// rollback re-activates the version active before the current one, the
// store's choice (bank.Store.RollbackTarget), loading it first.
func (b *banks) rollback() (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := bank.OpenStore(b.db, true)
	if err != nil {
		return 0, err
	}
	v, err := st.RollbackTarget()
	st.Close()
	if err != nil {
		return 0, err
	}
	det, err := b.load(v)
	if err != nil {
		return 0, err
	}
	err = b.write(func(st *bank.Store) error {
		got, err := st.Rollback()
		if err == nil && got != v {
			err = fmt.Errorf("bank: the activation history changed while version %d was loading (rollback went to %d)", v, got)
		}
		return err
	})
	if err != nil {
		det.Close()
		return 0, err
	}
	return b.offer(det), nil
}

// write opens the database for writing, briefly, and applies f.
func (b *banks) write(f func(*bank.Store) error) error {
	st, err := bank.OpenStore(b.db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	return f(st)
}

// watch follows activations made outside the daemon until ctx ends.
func (b *banks) watch(ctx context.Context) {
	t := time.NewTicker(bankPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.follow()
	}
}

// follow loads the database's active version when it differs from the one
// in use or waiting.
func (b *banks) follow() {
	st, err := bank.OpenStore(b.db, true)
	if err != nil {
		return
	}
	v, err := st.ActiveVersion()
	st.Close()
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if v == b.pendingVersion() {
		return
	}
	det, err := b.load(v)
	if err != nil {
		b.log.Error("bank activated outside the daemon does not load; keeping the current one", "version", v, "err", err)
		return
	}
	b.offer(det)
}

// setThreshold sets the operator's threshold (0: the bank's) on the
// detector in use, the one waiting, and every one loaded later.
func (b *banks) setThreshold(t float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.override = t
	b.cur.Load().SetThreshold(t)
	if b.next != nil {
		b.next.SetThreshold(t)
	}
}

// close closes the detectors. The pipeline must have stopped.
func (b *banks) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next != nil {
		b.next.Close()
		b.next = nil
	}
	b.cur.Load().Close()
}
