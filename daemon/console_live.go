package daemon

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// The console's view of the pipeline: what inspect hands it for each
// result (consoleHub.publish). It never blocks the pipeline: the recent
// results are a fixed ring written under a mutex its readers hold only to
// copy; the latest frame and the maps of recent failures are copied into
// buffers reused from frame to frame, and only when no reader holds them
// (TryLock) and someone watches; subscribers are woken by a send that
// never waits. After warm-up nothing here allocates per frame.

// ringSize is how many recent results the console keeps for the trends,
// the threshold preview and the latencies (about 70 minutes at 1 part/s).
const ringSize = 4096

// failMaps is how many recent failures keep their anomaly map for the
// gallery (a map is the model-input size, ~200 kB at 224x224).
const failMaps = 16

// hourBuckets is how many hours of pass/fail counts are kept (two days:
// today's and yesterday's shifts).
const hourBuckets = 48

// Latency stages kept per result, in mqtt.Latency's order.
var latencyStages = [...]string{"capture", "preprocess", "backbone", "embed", "search", "map", "total"}

// recent is one inspected part as the console keeps it.
type recent struct {
	seq       uint64
	unixMs    int64
	score     float64
	threshold float64
	fail      bool
	bank      uint64
	latency   [len(latencyStages)]float32 // ms
}

// hourCount is the pass/fail count of one hour.
type hourCount struct {
	hour       int64 // unix hour
	pass, fail uint32
}

// liveFrame is the latest frame and what the detector found in it.
type liveFrame struct {
	seq       uint64
	frame     rgb.Image
	mapv      []float32
	geom      patchcore.Geometry
	regions   []patchcore.Region
	threshold bank.Threshold
}

type consoleHub struct {
	mu    sync.Mutex
	ring  [ringSize]recent
	n     int // results recorded, ever (the next slot is n % ringSize)
	hours [hourBuckets]hourCount

	latestMu  sync.Mutex
	latest    []byte // the last result message, as published
	latestSeq uint64

	watchers atomic.Int32 // open event streams: the latest frame is copied only while someone watches
	subs     atomic.Pointer[[]chan struct{}]
	subMu    sync.Mutex // serialises changes to subs

	liveMu sync.Mutex
	live   liveFrame

	failMu sync.Mutex
	fails  [failMaps]liveFrame // by seq % failMaps, frame unused
}

func newConsoleHub() *consoleHub {
	h := &consoleHub{}
	h.subs.Store(&[]chan struct{}{})
	return h
}

// publish records one result: r is the detector's result (reused by it
// after this returns), res and payload its message. Called by the
// pipeline only.
func (h *consoleHub) publish(img *rgb.Image, r *patchcore.Result, res *mqtt.Result, payload []byte, th *bank.Threshold, now time.Time) {
	l := &res.Latency
	e := recent{seq: res.Seq, unixMs: now.UnixMilli(), score: r.Score, threshold: r.Threshold, fail: r.Fail, bank: res.BankVersion,
		latency: [len(latencyStages)]float32{float32(l.Capture), float32(l.Preprocess), float32(l.Backbone), float32(l.Embed),
			float32(l.Search), float32(l.Map), float32(l.Total)}}
	hour := now.Unix() / 3600
	h.mu.Lock()
	h.ring[h.n%ringSize] = e
	h.n++
	b := &h.hours[hour%hourBuckets]
	if b.hour != hour {
		*b = hourCount{hour: hour}
	}
	if r.Fail {
		b.fail++
	} else {
		b.pass++
	}
	h.mu.Unlock()

	if h.watchers.Load() > 0 && h.liveMu.TryLock() {
		copyLive(&h.live, res.Seq, img, r, th)
		h.liveMu.Unlock()
	}
	if r.Fail && h.failMu.TryLock() {
		copyLive(&h.fails[res.Seq%failMaps], res.Seq, nil, r, th)
		h.failMu.Unlock()
	}
	h.latestMu.Lock()
	h.latest, h.latestSeq = payload, res.Seq
	h.latestMu.Unlock()
	for _, c := range *h.subs.Load() {
		select {
		case c <- struct{}{}:
		default: // it has not read the last one yet; it reads the latest
		}
	}
}

// copyLive copies what the console draws of a result into dst's buffers.
func copyLive(dst *liveFrame, seq uint64, img *rgb.Image, r *patchcore.Result, th *bank.Threshold) {
	dst.seq = seq
	if img != nil {
		dst.frame.CopyFrom(img)
	}
	dst.mapv = append(dst.mapv[:0], r.Map...)
	dst.regions = append(dst.regions[:0], r.Regions...)
	dst.geom = r.Geometry
	dst.threshold = *th
}

// subscribe returns a channel woken after each result, and its cancel.
func (h *consoleHub) subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	h.subMu.Lock()
	subs := append(slices.Clone(*h.subs.Load()), c)
	h.subs.Store(&subs)
	h.subMu.Unlock()
	h.watchers.Add(1)
	return c, func() {
		h.watchers.Add(-1)
		h.subMu.Lock()
		defer h.subMu.Unlock()
		subs := slices.DeleteFunc(slices.Clone(*h.subs.Load()), func(x chan struct{}) bool { return x == c })
		h.subs.Store(&subs)
	}
}

// latestResult is the last result message and its seq, nil before the
// first.
func (h *consoleHub) latestResult() ([]byte, uint64) {
	h.latestMu.Lock()
	defer h.latestMu.Unlock()
	return h.latest, h.latestSeq
}

// liveSeq is the seq of the latest frame kept for the live view (0: none).
func (h *consoleHub) liveSeq() uint64 {
	h.liveMu.Lock()
	defer h.liveMu.Unlock()
	if h.live.frame.W == 0 {
		return 0
	}
	return h.live.seq
}

// recentResults copies the last n results (all kept when n <= 0), oldest
// first.
func (h *consoleHub) recentResults(n int) []recent {
	h.mu.Lock()
	defer h.mu.Unlock()
	have := min(h.n, ringSize)
	if n <= 0 || n > have {
		n = have
	}
	out := make([]recent, n)
	for i := range n {
		out[i] = h.ring[(h.n-n+i)%ringSize]
	}
	return out
}

// hourCounts copies the kept hours, oldest first.
func (h *consoleHub) hourCounts() []hourCount {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hourCount
	for _, b := range h.hours {
		if b.pass+b.fail > 0 {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b hourCount) int { return int(a.hour - b.hour) })
	return out
}

// liveCopy copies the latest frame (false before one was kept).
func (h *consoleHub) liveCopy() (liveFrame, bool) {
	h.liveMu.Lock()
	defer h.liveMu.Unlock()
	return cloneLive(&h.live, true), h.live.seq != 0 && h.live.frame.W > 0
}

// failMap copies the kept map of failed frame seq.
func (h *consoleHub) failMap(seq uint64) (liveFrame, bool) {
	h.failMu.Lock()
	defer h.failMu.Unlock()
	f := &h.fails[seq%failMaps]
	return cloneLive(f, false), f.seq == seq && len(f.mapv) > 0
}

func cloneLive(f *liveFrame, frame bool) liveFrame {
	out := liveFrame{seq: f.seq, mapv: slices.Clone(f.mapv), geom: f.geom, regions: slices.Clone(f.regions), threshold: f.threshold}
	if frame {
		out.frame.CopyFrom(&f.frame)
	}
	return out
}

// flips is the threshold preview: among results, how many would change
// verdict at threshold t (a part fails when its score is above the
// threshold, patchcore.Result.Fail), each way.
type flips struct {
	N         int     `json:"n"`
	Failed    int     `json:"failed"`     // failed as inspected
	WouldFail int     `json:"would_fail"` // would fail at t
	ToFail    int     `json:"to_fail"`    // passed, would fail
	ToPass    int     `json:"to_pass"`    // failed, would pass
	T         float64 `json:"threshold"`
}

func previewFlips(rs []recent, t float64) flips {
	f := flips{N: len(rs), T: t}
	for _, r := range rs {
		would := r.score > t
		if r.fail {
			f.Failed++
		}
		if would {
			f.WouldFail++
		}
		switch {
		case would && !r.fail:
			f.ToFail++
		case !would && r.fail:
			f.ToPass++
		}
	}
	return f
}
