package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// Teach mode (cmd/bank/enroll): the station takes its next frames as good
// parts, writes them to a folder beside the bank database, builds a bank
// from them on the device with the model and recipe in use, stores it as a
// new version and, when asked, activates it. The pipeline keeps inspecting
// with the bank in use; it only hands copies of its frames over. One
// enrollment runs at a time.

// Limits of an enrollment.
const (
	enrollMin        = 2
	enrollMax        = 1000
	enrollTimeout    = time.Hour
	enrollMaxTimeout = 7 * 24 * 3600 // seconds
	enrollSlots      = 4             // frames waiting to be written; more are not taken
)

// Folders of teach mode and append beside the bank database, one per
// run; what a crash left of them is removed at start (cleanTeachFolders).
const (
	enrollFolders = "enroll-*"
	appendFolders = "append-*"
)

// enrollment is a running teach mode.
type enrollment struct {
	req  mqtt.EnrollRequest
	who  string
	dir  string
	imgs chan *rgb.Image // frames to write, from the pipeline
	free chan *rgb.Image
	last time.Time // when the last frame was taken (the pipeline's only)

	mu    sync.Mutex
	state mqtt.EnrollState
}

// teach holds the current or last enrollment, and serialises the bank
// changes the station makes from its own frames.
type teach struct {
	mu   sync.Mutex
	cur  atomic.Pointer[enrollment] // taking frames, nil when none (the pipeline reads it every frame)
	busy *enrollment                // running (taking frames or building), nil when none
	last *enrollment                // the last one, for the status
	ctx  context.Context
	wg   sync.WaitGroup

	// change serialises enroll's and append's read of the bank in use
	// with the store of the bank they make from it: two appends (an
	// operator's retry) must not both grow the same version.
	change sync.Mutex
}

// start registers a job of teach mode (an enrollment or an append) that
// stop waits for; false when the station is not running.
func (t *teach) start() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx == nil || t.ctx.Err() != nil {
		return false
	}
	t.wg.Add(1)
	return true
}

// stop cancels the jobs and waits for them.
func (t *teach) stop(cancel context.CancelFunc) {
	t.mu.Lock()
	cancel()
	t.mu.Unlock()
	t.wg.Wait()
}

// cleanTeachFolders removes what a crash left of enrollments and appends.
func cleanTeachFolders(bankDir string) {
	for _, pat := range []string{enrollFolders, appendFolders} {
		old, _ := filepath.Glob(filepath.Join(bankDir, pat))
		for _, d := range old {
			os.RemoveAll(d)
		}
	}
}

// enrollState is the current or last enrollment's state for the status.
func (s *station) enrollState() *mqtt.EnrollState {
	s.teach.mu.Lock()
	e := s.teach.last
	s.teach.mu.Unlock()
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.state
	return &st
}

// cmdEnroll starts teach mode; its first reply says it started, later
// replies with the same id report progress and the outcome.
func (s *station) cmdEnroll(c call) (any, error) {
	req := c.req
	var p mqtt.EnrollRequest
	if err := strictDecode(c.body, &p); err != nil {
		return nil, fmt.Errorf("bank/enroll: %v", err)
	}
	if p.Count < enrollMin || p.Count > enrollMax {
		return nil, fmt.Errorf("bank/enroll: count %d outside %d..%d", p.Count, enrollMin, enrollMax)
	}
	if p.Timeout < 0 || p.Timeout > enrollMaxTimeout {
		return nil, fmt.Errorf("bank/enroll: timeout_s %d outside 0..%d", p.Timeout, enrollMaxTimeout)
	}
	if p.Interval < 0 || p.Interval > 3600*1000 {
		return nil, fmt.Errorf("bank/enroll: interval_ms %d outside 0..3600000", p.Interval)
	}
	s.teach.mu.Lock()
	defer s.teach.mu.Unlock()
	if b := s.teach.busy; b != nil {
		return nil, fmt.Errorf("bank/enroll: enrollment %q is still running (%s)", b.state.ID, b.snapshot().State)
	}
	if s.teach.ctx == nil || s.teach.ctx.Err() != nil {
		return nil, errors.New("bank/enroll: the station is not running")
	}
	w, h := 1920, 1080
	if hl := s.cam.Health(); hl.Width > 0 && hl.Height > 0 {
		w, h = hl.Width, hl.Height
	}
	if err := enrollRoom(filepath.Dir(s.cfg.Bank.DB), p.Count, w, h); err != nil {
		return nil, fmt.Errorf("bank/enroll: %w", err)
	}
	if det := s.banks.pending(); det != nil {
		m := &det.Bank().Meta
		if err := enrollMemory(p.Count, m.Embed.GridW*m.Embed.GridH*m.Dim, memAvailable()); err != nil {
			return nil, fmt.Errorf("bank/enroll: %w", err)
		}
	}
	dir, err := os.MkdirTemp(filepath.Dir(s.cfg.Bank.DB), enrollFolders)
	if err != nil {
		return nil, fmt.Errorf("bank/enroll: %w", err)
	}
	e := &enrollment{req: p, who: c.who, dir: dir, imgs: make(chan *rgb.Image, enrollSlots), free: make(chan *rgb.Image, enrollSlots),
		state: mqtt.EnrollState{ID: req.ID, State: mqtt.EnrollCapturing, Count: p.Count, Started: time.Now().UTC().Format(time.RFC3339)}}
	for range enrollSlots {
		e.free <- &rgb.Image{}
	}
	s.teach.cur.Store(e)
	s.teach.busy, s.teach.last = e, e
	s.teach.wg.Add(1) // under teach.mu, with its context checked: stop waits for it
	go func() {
		defer s.teach.wg.Done()
		s.enroll(s.teach.ctx, e)
	}()
	s.log.Info("teach mode: taking the next frames as good parts", "id", req.ID, "count", p.Count, "activate", p.Activate,
		"triggered", s.cam.Mode() == camera.Triggered)
	go s.publishStatus()
	return e.snapshot(), nil
}

// enrollRoom refuses an enrollment whose frames would not fit on the disk
// of the bank database with room to spare: the outbox and the bank
// database live there too, and a full disk would cost results. A frame is
// counted at its raw size (PNG is smaller): w x h, the camera's size
// (1080p when it has not said yet). dir is the bank database's folder.
func enrollRoom(dir string, count, w, h int) error {
	const spare = 256 << 20
	need := uint64(count)*uint64(w)*uint64(h)*3 + spare
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // cannot tell: the writes will say
	}
	if free := uint64(st.Bavail) * uint64(st.Bsize); free < need {
		return fmt.Errorf("%d frames of %dx%d need up to %d MiB beside the bank database (with %d MiB to spare), and %d MiB are free",
			count, w, h, need>>20, spare>>20, free>>20)
	}
	return nil
}

// enrollMemory refuses an enrollment whose build would take more than half
// the memory available (avail bytes; 0 = unknown): the build holds every
// frame's float features (floats per frame), a copy for the fold banks and
// their int8 form, beside the inspection that keeps running; an OOM kill
// would stop the station. Without a bank yet the size is not known before
// the build.
func enrollMemory(count, floats int, avail uint64) error {
	need := uint64(count) * uint64(floats) * (4 + 4 + 1)
	if avail > 0 && need > avail/2 {
		return fmt.Errorf("%d frames need about %d MiB for the build, more than half of the %d MiB available; teach fewer parts", count, need>>20, avail>>20)
	}
	return nil
}

// memAvailable is MemAvailable from /proc/meminfo in bytes, 0 when unknown.
func memAvailable() uint64 {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

func (e *enrollment) snapshot() mqtt.EnrollState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

func (e *enrollment) update(f func(*mqtt.EnrollState)) mqtt.EnrollState {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.state)
	return e.state
}

// drain lets go of the frame buffers (the status keeps e): a pipeline
// still inside offerEnroll may put one more back, which is all it keeps.
func (e *enrollment) drain() {
	for {
		select {
		case <-e.free:
		case <-e.imgs:
		default:
			return
		}
	}
}

// offerEnroll gives a copy of a frame to the running enrollment, if any.
// It never waits: when the writer is behind, the frame is not taken.
func (s *station) offerEnroll(img *rgb.Image) {
	e := s.teach.cur.Load()
	if e == nil || time.Since(e.last) < time.Duration(e.req.Interval)*time.Millisecond {
		return
	}
	select {
	case buf := <-e.free:
		buf.CopyFrom(img)
		e.imgs <- buf
		e.last = time.Now()
	default:
	}
}

// enroll runs one enrollment to its end and reports it.
func (s *station) enroll(ctx context.Context, e *enrollment) {
	st, err := s.runEnroll(ctx, e)
	if err != nil {
		st = e.update(func(st *mqtt.EnrollState) { st.State, st.Error = mqtt.EnrollFailed, err.Error() })
		s.log.Error("teach mode failed; nothing changed", "id", st.ID, "err", err)
		s.audit(bank.AuditEntry{Action: "enroll", Who: e.who, Result: bank.AuditFailed, Reason: err.Error(),
			Detail: fmt.Sprintf("%d of %d frames", st.Captured, st.Count)})
	}
	s.teach.cur.CompareAndSwap(e, nil)
	s.teach.mu.Lock()
	if s.teach.busy == e {
		s.teach.busy = nil
	}
	s.teach.mu.Unlock()
	e.drain()
	os.RemoveAll(e.dir)
	s.enrollReply(st)
	s.publishStatus()
}

// enrollReply publishes st as a reply to cmd/bank/enroll.
func (s *station) enrollReply(st mqtt.EnrollState) {
	raw, _ := json.Marshal(mqtt.Reply{ID: st.ID, OK: st.State != mqtt.EnrollFailed, Error: st.Error, Result: st})
	if err := s.client.PublishNow(mqtt.TopicCommandPrefix+mqtt.CmdBankEnroll+mqtt.TopicReplySuffix, false, raw); err != nil {
		s.log.Warn("enroll progress not published", "err", err)
	}
}

func (s *station) runEnroll(ctx context.Context, e *enrollment) (mqtt.EnrollState, error) {
	wait := enrollTimeout
	if e.req.Timeout > 0 {
		wait = time.Duration(e.req.Timeout) * time.Second
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	paths := make([]string, 0, e.req.Count)
	sizes := make([][2]int, 0, e.req.Count)
	step := max(1, e.req.Count/10)
	for len(paths) < e.req.Count {
		var img *rgb.Image
		select {
		case <-ctx.Done():
			return e.snapshot(), errors.New("the station stopped during enrollment")
		case <-deadline.C:
			return e.snapshot(), fmt.Errorf("only %d of %d frames came within %v", len(paths), e.req.Count, wait)
		case img = <-e.imgs:
		}
		path := filepath.Join(e.dir, fmt.Sprintf("%04d.png", len(paths)))
		sizes = append(sizes, [2]int{img.W, img.H})
		_, err := writePNG(path, img)
		e.free <- img
		if err != nil {
			return e.snapshot(), fmt.Errorf("frame %d: %w", len(paths)+1, err)
		}
		paths = append(paths, path)
		st := e.update(func(st *mqtt.EnrollState) { st.Captured = len(paths) })
		if len(paths)%step == 0 || len(paths) == e.req.Count {
			s.enrollReply(st)
			s.publishStatus()
		}
	}
	// The frames are in: stop taking them, build.
	s.teach.cur.CompareAndSwap(e, nil)
	s.enrollReply(e.update(func(st *mqtt.EnrollState) { st.State = mqtt.EnrollBuilding }))
	s.publishStatus()

	mf := s.model
	var opts patchcore.BuildOptions
	if det := s.banks.pending(); det != nil {
		// The bank in use (or about to be), with its backbone: re-teaching
		// after a product change keeps what the station was set up with:
		// the recipe, the coreset's share and the threshold rule.
		meta := det.Bank().Meta
		opts.Recipe = patchcore.RecipeOf(&meta)
		opts.Ratio, opts.Max = meta.Coreset.Ratio, meta.Coreset.Max
		if meta.Coreset.ProjectDim > 0 {
			opts.CoresetDim = meta.Coreset.ProjectDim
		}
		opts.Rule, opts.Param = meta.Threshold.Rule, meta.Threshold.Param
		if meta.Threshold.Folds > 0 {
			opts.Folds = meta.Threshold.Folds
		}
		if m := s.banks.modelOf(det); m != nil {
			mf = m
		}
	} else {
		// A station taught from nothing chooses its geometry from the
		// frames its camera gave, as bank build does from a folder:
		// otherwise a long strip or a large frame would be squashed to the
		// model's square input, the published recipe that misses thin
		// defects across the long axis.
		sw, sh, err := patchcore.StoredInput(mf.Model)
		if err != nil {
			return e.snapshot(), fmt.Errorf("the backbone's input: %w", err)
		}
		c := patchcore.AutoGeometry(sw, sh, sizes, 0)
		opts.Recipe = patchcore.Recipe{InputW: c.W, InputH: c.H, Fit: c.Fit, Why: "auto (teach mode): " + c.Why, Tiles: c.Tiles}
		s.log.Info("teach mode: geometry chosen from the frames", "input", fmt.Sprintf("%dx%d", c.W, c.H), "why", c.Why)
	}
	// One core fewer than inspection uses: the line keeps its pace while
	// the bank is built beside it.
	opts.Threads = max(1, threads(s.cfg)-1)
	opts.Note = e.req.Note
	if opts.Note == "" {
		opts.Note = "taught on the station (cmd/bank/enroll " + e.state.ID + ")"
	}
	last := time.Now()
	opts.Progress = func(stage string, done, total int) {
		st := e.update(func(st *mqtt.EnrollState) { st.Stage, st.Done, st.Total = stage, done, total })
		if time.Since(last) > time.Second || done == total {
			last = time.Now()
			s.enrollReply(st)
		}
	}
	bk, rep, err := patchcore.Build(ctx, mf, paths, opts)
	os.RemoveAll(e.dir) // the frames are in the bank or lost with the build: gone before the outcome is told
	if err != nil {
		return e.snapshot(), err
	}
	det, err := s.banks.prepare(bk)
	if err != nil {
		return e.snapshot(), err
	}
	if err := ctx.Err(); err != nil {
		det.Close()
		return e.snapshot(), errors.New("the station stopped during enrollment")
	}
	s.teach.change.Lock()
	defer s.teach.change.Unlock()
	detail := fmt.Sprintf("%d frames taught on the station, %d patches, %d kept", len(paths), rep.Patches, rep.Selected)
	override := overrideOf(det)
	v, err := s.keepBank(bk, det, e.req.Activate, bank.AuditEntry{Action: "enroll", Who: e.who, Detail: detail})
	if err != nil {
		return e.snapshot(), err
	}
	th := bk.Meta.Threshold
	if override != nil {
		s.log.Warn("teach mode: the operator's threshold stays in force over the new bank's calibrated one (cmd/threshold reset returns to it)",
			"override", *override, "calibrated", th.Value)
	}
	st := e.update(func(st *mqtt.EnrollState) {
		st.State, st.Version, st.Active, st.Threshold, st.ExpectedFRR = mqtt.EnrollDone, v, e.req.Activate, th.Value, th.ExpectedFRR
		st.ThresholdOverride = override
	})
	s.log.Info("teach mode: bank stored", "version", v, "active", e.req.Activate, "threshold", th.Value, "frames", len(paths))
	return st, nil
}

// appendMax bounds the frames one cmd/bank/append takes.
const appendMax = 200

// cmdAppend adds the frames seqs of the evidence ring, which an operator
// says were good parts, to the bank in use: their patches the bank does
// not cover yet are added, the threshold is recalibrated, and the result
// is stored as a new version and (unless activate is false) put in use.
func (s *station) cmdAppend(c call) (any, error) {
	var p mqtt.AppendRequest
	if err := strictDecode(c.body, &p); err != nil {
		return nil, fmt.Errorf("bank/append: %v", err)
	}
	if len(p.Seqs) == 0 || len(p.Seqs) > appendMax {
		return nil, fmt.Errorf("bank/append: want 1..%d frames in \"seqs\", got %d", appendMax, len(p.Seqs))
	}
	seen := map[uint64]bool{}
	for _, q := range p.Seqs {
		if seen[q] {
			return nil, fmt.Errorf("bank/append: frame %d named twice", q)
		}
		seen[q] = true
	}
	if s.evidence == nil {
		return nil, errors.New("bank/append: this station keeps no frames (evidence.frames: 0); append images with `linesight bank append` instead")
	}
	if !s.teach.start() {
		return nil, errors.New("bank/append: the station is not running")
	}
	defer s.teach.wg.Done()
	// One append or enrollment store at a time, each from the bank in use
	// or about to be: a retry must grow the version the first one made.
	s.teach.change.Lock()
	defer s.teach.change.Unlock()
	det := s.banks.pending()
	if det == nil {
		return nil, fmt.Errorf("bank/append: %w", errNeedsBank)
	}
	dir, err := os.MkdirTemp(filepath.Dir(s.cfg.Bank.DB), appendFolders)
	if err != nil {
		return nil, fmt.Errorf("bank/append: %w", err)
	}
	defer os.RemoveAll(dir)
	paths, results, err := s.evidence.frames(p.Seqs, dir)
	if err != nil {
		return nil, fmt.Errorf("bank/append: %w", err)
	}
	for _, r := range results {
		if r.BankVersion != det.Bank().Meta.Version {
			s.log.Info("bank/append: a frame was inspected by another bank version", "seq", r.Seq, "bank", r.BankVersion)
		}
	}
	mf := s.banks.modelOf(det)
	if mf == nil {
		return nil, errors.New("bank/append: the backbone of the bank in use is not loaded")
	}
	old := det.Bank()
	ctx := s.teach.context()
	nb, rep, err := patchcore.Append(ctx, mf, old, paths, patchcore.AppendOptions{Threads: max(1, threads(s.cfg)-1), Note: p.Note})
	if err != nil {
		return nil, fmt.Errorf("bank/append: %w", err)
	}
	ndet, err := s.banks.prepare(nb)
	if err != nil {
		return nil, fmt.Errorf("bank/append: %w", err)
	}
	if ctx.Err() != nil {
		ndet.Close()
		return nil, errors.New("bank/append: the station is stopping; nothing changed")
	}
	override := overrideOf(ndet)
	activate := p.Activate == nil || *p.Activate
	detail := fmt.Sprintf("frames %v of the evidence ring appended to version %d: %d patches added", p.Seqs, old.Meta.Version, rep.Added)
	v, err := s.keepBank(nb, ndet, activate, bank.AuditEntry{Action: "append", Who: c.who, Detail: detail})
	if err != nil {
		return nil, fmt.Errorf("bank/append: %w", err)
	}
	go s.publishStatus()
	return mqtt.AppendReply{Version: v, Active: activate, From: old.Meta.Version, Added: rep.Added, Vectors: nb.Meta.Count,
		Threshold: nb.Meta.Threshold.Value, OldThreshold: old.Meta.Threshold.Value, ThresholdOverride: override,
		Before: rep.Before, After: rep.After}, nil
}

// keepBank stores bk, which the station made from its own frames, with
// its audit entry in one transaction, activated with activate, and
// publishes the entry; det, made for bk by banks.prepare, then goes to the
// pipeline when activated and is closed otherwise (also on error).
func (s *station) keepBank(bk *bank.Bank, det *patchcore.Detector, activate bool, e bank.AuditEntry) (uint64, error) {
	e.Result = bank.AuditOK
	v, err := s.writeStore(func(st *bank.Store) (uint64, error) {
		return st.Apply(bank.Change{Put: bk, Activate: activate, Audit: &e})
	})
	if err != nil {
		det.Close()
		return 0, err
	}
	e.Version = v
	s.publishAudit(e)
	if activate {
		s.banks.offerLoaded(det)
	} else {
		det.Close()
	}
	return v, nil
}

// context is what teach mode and appends run under: cancelled when the
// station stops.
func (t *teach) context() context.Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx == nil {
		return context.Background()
	}
	return t.ctx
}

// overrideOf is the operator's threshold in force on det, nil when the
// bank's own is.
func overrideOf(det *patchcore.Detector) *float64 {
	if t, ok := det.Threshold(); ok {
		return &t
	}
	return nil
}
