package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
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
	models  string // pushed backbones, by fingerprint
	threads int
	log     *slog.Logger

	cur atomic.Pointer[patchcore.Detector]

	mu       sync.Mutex // serialises loading and activation; guards the rest
	next     *patchcore.Detector
	override float64                // the operator's threshold, 0 = the bank's
	loaded   map[string]*model.File // backbones by fingerprint
	canary   *canary                // a new bank scoring beside the current one
	dbErr    error                  // what is wrong with the database file, nil when nothing

	kept sync.Map // *patchcore.Detector -> true: recipes' detectors, kept loaded out of use (recipes.go)
	// onOffer, when set, is told of every detector offered and the one it
	// replaces (the waiting one, else the one in use), with mu held: the
	// recipes follow the bank put in use (recipes.follow).
	onOffer func(prev, det *patchcore.Detector)
}

// openBanks loads the active bank of cfg's database; mf is the configured
// backbone (model.path), others are found by fingerprint in the models
// folder.
func openBanks(cfg *config.Config, mf *model.File, threads int, log *slog.Logger) (*banks, error) {
	b := &banks{db: cfg.Bank.DB, models: cfg.ModelsDir(), threads: threads, log: log, override: cfg.Scoring.Threshold,
		loaded: map[string]*model.File{mf.SHA256: mf}}
	if _, err := os.Stat(b.db); errors.Is(err, fs.ErrNotExist) {
		log.Warn("NO BANK YET: the bank database does not exist; serving without inspection until a bank is taught (cmd/bank/enroll), pushed or built", "db", b.db)
		return b, nil
	}
	det, err := b.load(0)
	if errors.Is(err, bank.ErrNotFound) {
		log.Warn("NO BANK YET: no active bank in the database; serving without inspection until a bank is taught (cmd/bank/enroll), pushed or activated", "db", b.db, "why", err)
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	b.cur.Store(det)
	return b, nil
}

// current is the detector in use, nil while the station has no bank yet
// (it reports needs-bank). Only the pipeline inspects with it.
func (b *banks) current() *patchcore.Detector { return b.cur.Load() }

// pending is the detector about to be swapped in, else the one in use
// (nil without a bank): what a change made now must start from.
func (b *banks) pending() *patchcore.Detector {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next != nil {
		return b.next
	}
	return b.cur.Load()
}

// version is the version of the bank in use, 0 when there is none.
func (b *banks) version() uint64 {
	if det := b.cur.Load(); det != nil {
		return det.Bank().Meta.Version
	}
	return 0
}

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
	return b.detector(bk)
}

// detector makes a detector for bk with its backbone and the operator's
// threshold. Called with b.mu held (or before the banks are shared).
func (b *banks) detector(bk *bank.Bank) (*patchcore.Detector, error) {
	mf, err := b.modelFor(bk.Meta.Model.SHA256)
	if err != nil {
		return nil, fmt.Errorf("bank %d: %w", bk.Meta.Version, err)
	}
	det, err := patchcore.Open(bk, mf, patchcore.Options{Threads: b.threads})
	if err != nil {
		return nil, err
	}
	det.SetThreshold(b.override)
	return det, nil
}

// modelFor is the backbone with fingerprint sha: the configured one, or
// one pushed with a bank (kept in the models folder). Loaded once.
func (b *banks) modelFor(sha string) (*model.File, error) {
	if mf := b.loaded[sha]; mf != nil {
		return mf, nil
	}
	path := model.Find(b.models, sha)
	if path == "" {
		return nil, fmt.Errorf("%w: this station has no backbone with sha256 %.12s (model.path is another; push the bank with --with-model)", patchcore.ErrMismatch, sha)
	}
	mf, err := model.Load(path)
	if err != nil {
		return nil, err
	}
	if mf.SHA256 != sha {
		return nil, fmt.Errorf("model: %s does not hash to its name", path)
	}
	b.loaded[sha] = mf
	return mf, nil
}

// haveModel reports whether the backbone with fingerprint sha is here.
func (b *banks) haveModel(sha string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.loaded[sha] != nil || model.Find(b.models, sha) != ""
}

// modelOf is the backbone the detector in use runs.
func (b *banks) modelOf(det *patchcore.Detector) *model.File {
	if det == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.loaded[det.Bank().Meta.Model.SHA256]
}

// offer hands det to the pipeline, replacing (and closing) any detector
// still waiting. Called with b.mu held.
func (b *banks) offer(det *patchcore.Detector) uint64 {
	if b.onOffer != nil {
		prev := b.next
		if prev == nil {
			prev = b.cur.Load()
		}
		b.onOffer(prev, det)
	}
	// The waiting detector goes, unless it is also the one in use (a
	// recipe selected away and back before the next frame).
	if b.next != nil && b.next != det && b.next != b.cur.Load() {
		b.release(b.next)
	}
	v := det.Bank().Meta.Version
	if b.cur.CompareAndSwap(nil, det) {
		// No bank in use (needs-bank): no frame can be inside a detector,
		// so it takes over now rather than at the next frame.
		b.log.Info("bank version loaded and in use: the station inspects from now on", "version", v)
		return v
	}
	b.next = det
	b.log.Info("bank version loaded; swapping in between frames", "version", v)
	return v
}

// prepare makes a detector for bk (not stored yet), to check that this
// station can score with it before it is stored.
func (b *banks) prepare(bk *bank.Bank) (*patchcore.Detector, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.detector(bk)
}

// offerLoaded hands a detector made by prepare (its bank now stored and
// active) to the pipeline.
func (b *banks) offerLoaded(det *patchcore.Detector) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.offer(det)
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
	if old := b.cur.Swap(next); old != nil && old != next {
		b.release(old)
	}
	return true
}

// pendingVersion is the version that is in use or about to be.
func (b *banks) pendingVersion() uint64 {
	if b.next != nil {
		return b.next.Bank().Meta.Version
	}
	return b.version()
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
// in use or waiting. A database file gone or damaged is reported (dbError)
// and the banks in memory keep serving.
func (b *banks) follow() {
	v, err := b.activeVersion()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil && b.cur.Load() == nil && b.next == nil && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, bank.ErrNotFound)) {
		err = nil // no bank yet: needs-bank says so, the file is not broken
	}
	if (err == nil) != (b.dbErr == nil) {
		if err != nil {
			b.log.Error("bank database unusable; serving the bank loaded", "db", b.db, "err", err)
		} else {
			b.log.Info("bank database usable again", "db", b.db)
		}
	}
	b.dbErr = err
	if err != nil || v == b.pendingVersion() {
		return
	}
	det, err := b.load(v)
	if err != nil {
		b.log.Error("bank activated outside the daemon does not load; keeping the current one", "version", v, "err", err)
		return
	}
	b.offer(det)
}

// activeVersion reads the database's active version, saying clearly when
// the file is gone or damaged.
func (b *banks) activeVersion() (uint64, error) {
	if _, err := os.Stat(b.db); err != nil {
		return 0, fmt.Errorf("bank database %s: %w", b.db, err)
	}
	st, err := bank.OpenStore(b.db, true)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.ActiveVersion()
}

// dbError is what is wrong with the bank database file (nil: nothing),
// as of the last check.
func (b *banks) dbError() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dbErr
}

// setThreshold sets the operator's threshold (0: the bank's) on the
// detector in use, the one waiting, and every one loaded later.
func (b *banks) setThreshold(t float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.override = t
	if det := b.cur.Load(); det != nil {
		det.SetThreshold(t)
	}
	if b.next != nil {
		b.next.SetThreshold(t)
	}
}

// close closes the detectors. The pipeline must have stopped.
func (b *banks) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	closed := map[*patchcore.Detector]bool{}
	if b.next != nil {
		closeDetector(b.next)
		closed[b.next] = true
		b.next = nil
	}
	if b.canary != nil {
		b.canary.stop(errors.New("the station is stopping"))
		b.canary = nil
	}
	if det := b.cur.Load(); det != nil && !closed[det] {
		closeDetector(det)
		closed[det] = true
	}
	b.closeKept(closed)
}
