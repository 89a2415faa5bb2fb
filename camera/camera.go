package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/linesight/linesight/internal/rgb"
)

// Frame is one captured image. Image is owned by the frame until Release,
// which hands the buffer back for reuse.
type Frame struct {
	Seq    uint64    // 1, 2, ... per Camera, across reconnects
	Time   time.Time // when the frame was captured (read completed)
	Source string    // the source id
	Image  *rgb.Image
	start  time.Time // when the read began
	cam    *Camera
}

// Release returns the frame's buffer to its camera. The frame must not be
// used afterwards.
func (f *Frame) Release() {
	if f == nil || f.cam == nil || f.Image == nil {
		return
	}
	f.cam.put(f.Image)
	f.Image = nil
}

// Info describes an open source.
type Info struct {
	Backend string
	Width   int
	Height  int
	FPS     float64
}

// Health is the observable state of a source.
type Health struct {
	Source     string    `json:"source"`
	Kind       Kind      `json:"kind"`
	Connected  bool      `json:"connected"`
	Backend    string    `json:"backend,omitempty"`
	Width      int       `json:"width,omitempty"`
	Height     int       `json:"height,omitempty"`
	FPS        float64   `json:"fps,omitempty"`
	LastFrame  time.Time `json:"last_frame"`
	Reconnects int       `json:"reconnects"`
	Read       uint64    `json:"frames_read"`
	Dropped    uint64    `json:"frames_dropped"`
	Skipped    uint64    `json:"files_skipped"`
	// Resyncs: places where a streamed source (exec:, pipe:) was not a
	// clean sequence of frames (garbage, a cut or oversized frame, a frame
	// that did not decode) and reading went on at the next frame.
	Resyncs uint64 `json:"resyncs,omitempty"`
	// Stalled: a live source is open but sent nothing for ReadTimeout.
	Stalled   bool   `json:"stalled"`
	LastError string `json:"last_error,omitempty"`
}

// driver is one way of reading frames. Read fills dst (resizing it) and
// blocks until a frame is there, ctx is done, or the source fails; io.EOF
// means the source ended.
type driver interface {
	Open(ctx context.Context) (Info, error)
	Read(ctx context.Context, dst *rgb.Image) error
	Close() error
}

// ErrNoGoCV: the source needs GoCV and this build has the nogocv tag.
var ErrNoGoCV = errors.New("camera: this source needs GoCV (OpenCV); the binary was built with -tags nogocv")

// Camera reads one source, reconnecting when it fails.
type Camera struct {
	cfg  Config
	kind Kind
	open func(Config, *slog.Logger) (driver, error)
	log  *slog.Logger

	pool chan *rgb.Image

	mu      sync.Mutex
	cond    *sync.Cond
	health  Health
	seq     uint64
	leased  uint64   // the last frame number reserved in Memory
	queue   []*Frame // live, continuous: captured frames waiting, oldest first (at most cfg.Queue)
	trigAt  time.Time
	trigN   int    // live: qualifying frames still to skip after a trigger
	trigged *Frame // live: the frame taken for the pending trigger
	pending int    // triggers not yet answered
	want    int    // recorded: frames asked for
	ready   *Frame // recorded: frame read on demand
	lastOut time.Time
	closed  bool

	resyncLogged bool
}

// resynced counts a resynchronisation of a streamed source; the first is
// logged, the others are only counted (Health.Resyncs).
func (c *Camera) resynced(reason string) {
	c.mu.Lock()
	c.health.Resyncs++
	first := !c.resyncLogged
	c.resyncLogged = true
	c.mu.Unlock()
	if first {
		c.log.Warn("camera: frame stream resynchronised; later ones are counted in health (resyncs)", "reason", reason)
	}
}

// New prepares a camera for cfg; Run starts reading. log may be nil.
func New(cfg Config, log *slog.Logger) (*Camera, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	cfg.ID = Redact(cfg.ID) // the id goes into logs, health and frames
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Camera{cfg: cfg, kind: KindOf(cfg.Source), log: log.With("source", cfg.ID), pool: make(chan *rgb.Image, cfg.Queue+3)}
	c.cond = sync.NewCond(&c.mu)
	c.health = Health{Source: cfg.ID, Kind: c.kind}
	switch c.kind {
	case KindDir:
		// One folder driver for the camera's life: which files were read
		// must survive reconnects, or "keep" would read them again.
		d, _ := newDirDriver(cfg, c.log)
		d.(*dirDriver).skip = func() {
			c.mu.Lock()
			c.health.Skipped++
			c.mu.Unlock()
		}
		c.open = func(Config, *slog.Logger) (driver, error) { return d, nil }
	case KindSequence:
		c.open = newSequenceDriver
	case KindImage:
		c.open = newImageDriver
	case KindExec, KindPipe:
		c.open = func(cfg Config, log *slog.Logger) (driver, error) { return newStreamDriver(cfg, log, c.resynced) }
	default:
		c.open = newGoCVDriver
	}
	if !c.kind.pureGo() && !haveGoCV {
		return nil, fmt.Errorf("%w (source %q is a %s)", ErrNoGoCV, Redact(cfg.Source), c.kind)
	}
	return c, nil
}

// Kind is the kind of source.
func (c *Camera) Kind() Kind { return c.kind }

// Mode is when frames are taken.
func (c *Camera) Mode() Mode { return c.cfg.Mode }

// Health returns a snapshot of the source's state.
func (c *Camera) Health() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.health
	h.Stalled = h.Connected && c.kind.Live() && !h.LastFrame.IsZero() && time.Since(h.LastFrame) > c.cfg.ReadTimeout
	return h
}

func (c *Camera) get() *rgb.Image {
	select {
	case img := <-c.pool:
		return img
	default:
		return &rgb.Image{}
	}
}

func (c *Camera) put(img *rgb.Image) {
	select {
	case c.pool <- img:
	default: // pool full: let the GC have it
	}
}

// Run reads the source until ctx is done, reconnecting with capped
// exponential backoff. It returns ctx's error after releasing the source.
func (c *Camera) Run(ctx context.Context) error {
	defer func() {
		c.mu.Lock()
		c.closed = true
		c.health.Connected = false
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	// Wake waiters when ctx ends.
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	backoff := c.cfg.BackoffMin
	attempts := 0
	for ctx.Err() == nil {
		if attempts > 0 {
			c.mu.Lock()
			c.health.Reconnects++
			c.mu.Unlock()
		}
		attempts++
		got, err := c.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if got {
			backoff = c.cfg.BackoffMin // it worked for a while: retry soon
		}
		c.fail(err)
		c.log.Warn("camera source failed; reconnecting", "err", Redact(fmt.Sprint(err)), "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, c.cfg.BackoffMax)
	}
	return ctx.Err()
}

func (c *Camera) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.health.Connected = false
	if err != nil {
		c.health.LastError = Redact(err.Error())
	}
}

// session opens the source and reads until it fails; got reports whether
// any frame was read.
func (c *Camera) session(ctx context.Context) (got bool, err error) {
	d, err := c.open(c.cfg, c.log)
	if err != nil {
		return false, err
	}
	info, err := d.Open(ctx)
	if err != nil {
		d.Close()
		return false, fmt.Errorf("opening %s: %w", c.cfg.ID, err)
	}
	defer d.Close()
	c.mu.Lock()
	c.health.Connected = true
	c.health.Backend, c.health.Width, c.health.Height, c.health.FPS = info.Backend, info.Width, info.Height, info.FPS
	c.mu.Unlock()
	c.log.Info("camera source open", "backend", info.Backend, "width", info.Width, "height", info.Height, "fps", info.FPS)
	live := c.kind.Live()
	sized := false
	for {
		if ctx.Err() != nil || (!live && !c.waitDemand(ctx)) {
			return got, ctx.Err()
		}
		img := c.get()
		start := time.Now()
		if err := d.Read(ctx, img); err != nil {
			c.put(img)
			if ctx.Err() != nil {
				return got, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return got, fmt.Errorf("%s ended", c.cfg.ID)
			}
			return got, err
		}
		if !sized {
			// Streams (exec:, pipe:) say their size with their first frame.
			sized = true
			c.mu.Lock()
			if c.health.Width == 0 {
				c.health.Width, c.health.Height = img.W, img.H
			}
			c.mu.Unlock()
		}
		if err := c.crop(img); err != nil {
			c.put(img)
			return got, err
		}
		got = true
		c.deliver(img, start, time.Now(), live)
	}
}

// crop applies the ROI in place (rows move left and up; no allocation).
func (c *Camera) crop(img *rgb.Image) error {
	r := c.cfg.ROI
	if r.Empty() {
		return nil
	}
	if r.X+r.W > img.W || r.Y+r.H > img.H {
		return fmt.Errorf("camera: ROI %d,%d %dx%d outside the %dx%d frame", r.X, r.Y, r.W, r.H, img.W, img.H)
	}
	for y := 0; y < r.H; y++ {
		src := img.Pix[3*((r.Y+y)*img.W+r.X) : 3*((r.Y+y)*img.W+r.X+r.W)]
		copy(img.Pix[3*y*r.W:], src)
	}
	img.W, img.H = r.W, r.H
	img.Pix = img.Pix[:3*r.W*r.H]
	return nil
}

// seqLease is how many frame numbers are reserved at a time in Memory: a
// crash skips at most that many, and a number is never given twice.
const seqLease = 1000

// nextSeq advances c.seq, leasing numbers from Memory when there is one.
// Called with c.mu held.
func (c *Camera) nextSeq() {
	c.seq++
	m := c.cfg.Memory
	if m == nil || c.seq <= c.leased {
		return
	}
	first, err := m.Lease("seq:"+c.cfg.ID, seqLease)
	if err != nil {
		c.log.Warn("camera: frame numbers cannot be reserved; going on without (they may repeat after a restart)", "err", err)
		c.leased = c.seq
		return
	}
	c.seq = max(c.seq, first)
	c.leased = first + seqLease - 1
}

func (c *Camera) deliver(img *rgb.Image, start, end time.Time, live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextSeq()
	f := &Frame{Seq: c.seq, Time: end, Source: c.cfg.ID, Image: img, start: start, cam: c}
	c.health.Read++
	c.health.LastFrame = end
	c.health.Connected = true
	if !live {
		c.ready = f
		c.want--
		c.cond.Broadcast()
		return
	}
	if c.cfg.Mode == Triggered {
		// Take the first frame whose capture began after the trigger, past
		// the frame in flight at that moment and any the driver buffered.
		if c.pending > 0 && c.trigged == nil && !start.Before(c.trigAt) {
			if c.trigN > 0 {
				c.trigN--
			} else {
				c.trigged = f
				c.cond.Broadcast()
				return
			}
		}
		f.Release()
		return
	}
	if len(c.queue) >= c.cfg.Queue {
		// Full: the policy says which frame the reader never sees.
		c.health.Dropped++
		if c.cfg.Drop == DropNewest {
			f.Release()
			return
		}
		c.queue[0].Release()
		c.queue = c.queue[:copy(c.queue, c.queue[1:])]
	}
	c.queue = append(c.queue, f)
	c.cond.Broadcast()
}

// waitDemand blocks the reader of a recorded source until a frame is
// wanted; false when ctx ended.
func (c *Camera) waitDemand(ctx context.Context) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.want <= 0 && ctx.Err() == nil {
		c.cond.Wait()
	}
	return ctx.Err() == nil
}

// MaxPendingTriggers bounds the triggers waiting for their frames.
const MaxPendingTriggers = 64

// ErrTriggerQueueFull: a trigger came while MaxPendingTriggers were
// still waiting for their frames; it is refused, not queued.
var ErrTriggerQueueFull = fmt.Errorf("camera: %d triggers are waiting for frames; trigger refused", MaxPendingTriggers)

// Trigger asks for one frame captured after now (triggered mode). Each
// accepted trigger gets exactly one frame from Next, in order.
func (c *Camera) Trigger() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending >= MaxPendingTriggers {
		return ErrTriggerQueueFull
	}
	c.pending++
	if c.pending == 1 {
		c.armTrigger()
	}
	c.cond.Broadcast()
	return nil
}

// pendingTriggers is how many triggers wait for frames.
func (c *Camera) pendingTriggers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending
}

// armTrigger starts waiting for the frame of the oldest pending trigger
// and wakes the reader (a recorded source reads on demand). Called with
// c.mu held.
func (c *Camera) armTrigger() {
	c.trigAt = time.Now()
	c.trigN = 1 + max(c.cfg.Buffers-1, 0)
	c.trigged = nil
	if !c.kind.Live() {
		c.want++
	}
	c.cond.Broadcast()
}

// Next returns the next frame: in continuous mode the newest (live) or the
// next (recorded) frame, no sooner than 1/MaxFPS after the previous one; in
// triggered mode the frame for the oldest pending Trigger. It blocks until
// then or until ctx ends. The caller must Release the frame.
func (c *Camera) Next(ctx context.Context) (*Frame, error) {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	if c.cfg.Mode == Continuous && c.cfg.MaxFPS > 0 {
		c.mu.Lock()
		wait := time.Until(c.lastOut.Add(time.Duration(float64(time.Second) / c.cfg.MaxFPS)))
		c.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	live := c.kind.Live()
	if !live && c.cfg.Mode == Continuous && c.ready == nil && c.want <= 0 {
		c.want++
		c.cond.Broadcast()
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var f *Frame
		switch {
		case c.cfg.Mode == Triggered && live && c.trigged != nil:
			f, c.trigged = c.trigged, nil
		case c.cfg.Mode == Triggered && !live && c.pending > 0 && c.ready != nil:
			f, c.ready = c.ready, nil
		case c.cfg.Mode == Continuous && live && len(c.queue) > 0:
			f = c.queue[0]
			c.queue = c.queue[:copy(c.queue, c.queue[1:])]
		case c.cfg.Mode == Continuous && !live && c.ready != nil:
			f, c.ready = c.ready, nil
		}
		if f != nil {
			if c.cfg.Mode == Triggered {
				c.pending--
				if c.pending > 0 {
					c.armTrigger()
				}
			}
			c.lastOut = time.Now()
			return f, nil
		}
		if c.closed {
			return nil, errors.New("camera: stopped")
		}
		c.cond.Wait()
	}
}
