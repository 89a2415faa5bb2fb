package mqtt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Receiver is the station's side of block transfers (see transfer.go): it
// stages the file outside anything live, asks for missing blocks, checks
// each block and the whole file, and hands the finished file to its owner.
// One transfer runs at a time.
type Receiver struct {
	dir     string
	publish func(topic string, payload []byte) // relative topic, QoS 1
	done    func(o Offer, path string)         // the whole, checked file
	changed func()                             // the state changed (status)
	log     *slog.Logger

	// Window is how many blocks may be asked for and not yet received;
	// Stall is how long without a block before asking again; Timeout how
	// long without progress before a transfer is abandoned.
	Window  int
	Stall   time.Duration
	Timeout time.Duration

	mu      sync.Mutex
	cur     *transfer
	repeats int // blocks received twice (tests: a resumed transfer resends nothing held)
}

type transfer struct {
	offer    Offer
	path     string
	f        *os.File
	have     []bool
	asked    []bool // asked for and not received
	nAsked   int
	state    TransferState
	progress time.Time // last block received (or the offer)
	asked1   time.Time // last request sent
	timeout  time.Duration
}

// stagingSuffix names staged files.
const stagingSuffix = ".part"

// NewReceiver stages transfers in dir (created; leftovers of transfers cut
// short by a restart are removed: they are abandoned). done is called,
// on a goroutine of its own, with each whole, checked file; its owner
// reports what came of it with Finish. changed is called after every state
// change worth a status update.
func NewReceiver(dir string, publish func(string, []byte), done func(Offer, string), changed func(), log *slog.Logger) (*Receiver, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mqtt: staging folder: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*"+stagingSuffix))
	for _, p := range old {
		os.Remove(p)
		log.Info("removed the staging file of an abandoned transfer", "file", p)
	}
	return &Receiver{dir: dir, publish: publish, done: done, changed: changed, log: log,
		Window: 32, Stall: 2 * time.Second, Timeout: 10 * time.Minute}, nil
}

// State is the current or last transfer's state (nil: none yet).
func (r *Receiver) State() *TransferState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		return nil
	}
	s := r.cur.state
	return &s
}

// Offer starts a transfer, or answers an offer repeated by a tool that
// missed the reply (same id) with the transfer's state. A station busy
// with another transfer refuses.
func (r *Receiver) Offer(o Offer) (TransferState, error) {
	if err := o.Check(); err != nil {
		return TransferState{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.cur; t != nil {
		if t.offer.Transfer == o.Transfer {
			if t.offer != o {
				return TransferState{}, fmt.Errorf("bank/push: transfer %s was offered with other parameters", o.Transfer)
			}
			if t.state.State == StateReceiving {
				r.requestLocked(true)
			}
			return t.state, nil
		}
		if !FinalState(t.state.State) {
			return TransferState{}, fmt.Errorf("bank/push: busy with transfer %s (%s, %d of %d blocks)", t.offer.Transfer, t.state.State, t.state.Received, t.state.Blocks)
		}
	}
	path := filepath.Join(r.dir, o.Transfer+stagingSuffix)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return TransferState{}, fmt.Errorf("bank/push: staging: %w", err)
	}
	if err := f.Truncate(o.Size); err != nil {
		f.Close()
		os.Remove(path)
		return TransferState{}, fmt.Errorf("bank/push: staging %d bytes: %w", o.Size, err)
	}
	n := o.Blocks()
	t := &transfer{offer: o, path: path, f: f, have: make([]bool, n), asked: make([]bool, n), progress: time.Now(), timeout: r.Timeout,
		state: TransferState{Transfer: o.Transfer, State: StateReceiving, Blocks: n}}
	if o.Timeout > 0 {
		t.timeout = time.Duration(o.Timeout) * time.Second
	}
	r.cur = t
	r.log.Info("bank push: receiving", "transfer", o.Transfer, "bytes", o.Size, "blocks", n)
	r.requestLocked(false)
	return t.state, nil
}

// requestLocked asks for missing blocks up to the window; again forgets
// what was asked and not received (a stall, a re-offer).
func (r *Receiver) requestLocked(again bool) {
	t := r.cur
	if again {
		clear(t.asked)
		t.nAsked = 0
	}
	var want []int
	for b, ok := range t.have {
		if t.nAsked+len(want) >= r.Window {
			break
		}
		if len(want) > 0 && b-want[0] >= maxRequestBlocks {
			break
		}
		if !ok && !t.asked[b] {
			want = append(want, b)
		}
	}
	if len(want) == 0 {
		return
	}
	for _, b := range want {
		t.asked[b] = true
	}
	t.nAsked += len(want)
	t.asked1 = time.Now()
	req, _ := json.Marshal(NewBlockRequest(t.offer.Transfer, want))
	r.publish(PushTopic(t.offer.Transfer, TopicRequestSuffix), req)
}

// Block takes a block message from push/<id>/block.
func (r *Receiver) Block(topic string, payload []byte) {
	id := TransferID(topic)
	n, data, err := DecodeBlock(payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.cur
	if t == nil || t.offer.Transfer != id || t.state.State != StateReceiving {
		return // a late or stray block: nothing to do with it
	}
	if err != nil {
		r.log.Warn("bank push: damaged block; asking again", "transfer", id, "err", err)
		return // it stays missing and is asked for again
	}
	if n < 0 || n >= len(t.have) {
		r.log.Warn("bank push: block outside the transfer", "transfer", id, "block", n)
		return
	}
	bs := int64(t.offer.BlockSize)
	want := min(bs, t.offer.Size-int64(n)*bs)
	if int64(len(data)) != want {
		r.log.Warn("bank push: block of the wrong size", "transfer", id, "block", n, "bytes", len(data), "want", want)
		return
	}
	if t.asked[n] {
		t.asked[n] = false
		t.nAsked--
	}
	if t.have[n] {
		r.repeats++
		return
	}
	if _, err := t.f.WriteAt(data, int64(n)*bs); err != nil {
		r.failLocked("staging", fmt.Sprintf("writing block %d: %v", n, err))
		return
	}
	t.have[n] = true
	t.state.Received++
	t.progress = time.Now()
	if t.state.Received == len(t.have) {
		r.completeLocked()
		return
	}
	if step := max(1, len(t.have)/20); t.state.Received%step == 0 {
		r.stateChangedLocked()
	}
	if t.nAsked <= r.Window/2 {
		r.requestLocked(false)
	}
}

// completeLocked checks the whole file and hands it over.
func (r *Receiver) completeLocked() {
	t := r.cur
	t.state.State = StateVerifying
	sum, err := fileSHA256(t.f)
	t.f.Close()
	t.f = nil
	switch {
	case err != nil:
		r.failLocked("staging", err.Error())
		return
	case sum != t.offer.SHA256:
		r.finishLocked(TransferState{State: StateRefused, Check: "checksum",
			Reason: fmt.Sprintf("the file's sha256 is %s, the offer said %s", sum[:12], t.offer.SHA256[:12])})
		return
	}
	r.stateChangedLocked()
	go r.done(t.offer, t.path)
}

func fileSHA256(f *os.File) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Finish records what came of the file handed to done (or a later stage:
// importing, canary), publishes it, and once final removes the staging
// file.
func (r *Receiver) Finish(id string, st TransferState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil || r.cur.offer.Transfer != id {
		return
	}
	r.finishLocked(st)
}

func (r *Receiver) failLocked(check, reason string) {
	r.finishLocked(TransferState{State: StateFailed, Check: check, Reason: reason})
}

// finishLocked moves the transfer to st (keeping its progress).
func (r *Receiver) finishLocked(st TransferState) {
	t := r.cur
	st.Transfer, st.Received, st.Blocks = t.offer.Transfer, t.state.Received, t.state.Blocks
	t.state = st
	if FinalState(st.State) {
		if t.f != nil {
			t.f.Close()
			t.f = nil
		}
		os.Remove(t.path)
		r.log.Info("bank push: finished", "transfer", st.Transfer, "state", st.State, "version", st.Version, "check", st.Check, "reason", st.Reason)
	}
	r.stateChangedLocked()
}

func (r *Receiver) stateChangedLocked() {
	st, _ := json.Marshal(r.cur.state)
	r.publish(PushTopic(r.cur.offer.Transfer, TopicStateSuffix), st)
	if r.changed != nil {
		go r.changed()
	}
}

// Run asks again for blocks when none came for Stall, and abandons a
// transfer without progress for its timeout, until ctx ends; then it
// abandons the transfer in progress.
func (r *Receiver) Run(ctx context.Context) {
	tick := time.NewTicker(r.Stall / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.mu.Lock()
			if r.cur != nil && r.cur.state.State == StateReceiving {
				r.finishLocked(TransferState{State: StateAbandoned, Reason: "the station is stopping"})
			}
			r.mu.Unlock()
			return
		case <-tick.C:
		}
		r.mu.Lock()
		if t := r.cur; t != nil && t.state.State == StateReceiving {
			now := time.Now()
			switch {
			case now.Sub(t.progress) > t.timeout:
				r.finishLocked(TransferState{State: StateAbandoned, Reason: fmt.Sprintf("no block for %v", t.timeout)})
			case now.Sub(t.progress) > r.Stall && now.Sub(t.asked1) > r.Stall:
				r.requestLocked(true)
			}
		}
		r.mu.Unlock()
	}
}
