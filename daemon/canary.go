package daemon

import (
	"errors"
	"math"
	"sync"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// canary scores the next frames with a new bank beside the one in use,
// before any switch: the pipeline calls score after each frame, and the
// push waits on done for the comparison.
type canary struct {
	det  *patchcore.Detector
	want int

	mu       sync.Mutex // held while scoring, so stop waits for a frame in flight
	r        patchcore.Result
	old, new []float64
	flips    int
	err      error
	finished bool
	done     chan struct{}
}

// startCanary starts comparing det's bank with the one in use over the
// next n frames.
func (b *banks) startCanary(det *patchcore.Detector, n int) (*canary, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.canary != nil {
		return nil, errors.New("a canary is already running")
	}
	if b.cur.Load() == nil {
		return nil, errors.New("this station has no bank yet to compare with; push without a canary")
	}
	b.canary = &canary{det: det, want: n, done: make(chan struct{})}
	return b.canary, nil
}

// scoreCanary gives the frame just inspected (img, with result r from the
// bank in use) to the running canary, if any. The pipeline calls it.
func (b *banks) scoreCanary(img *rgb.Image, r *patchcore.Result) {
	b.mu.Lock()
	c := b.canary
	b.mu.Unlock()
	if c == nil || !c.score(img, r) {
		return
	}
	b.mu.Lock()
	if b.canary == c {
		b.canary = nil
	}
	b.mu.Unlock()
}

// endCanary detaches c (when it ends before its frames: a timeout).
func (b *banks) endCanary(c *canary, err error) {
	c.stop(err)
	b.mu.Lock()
	if b.canary == c {
		b.canary = nil
	}
	b.mu.Unlock()
}

// score scores img with the new bank; true once the canary has its frames.
func (c *canary) score(img *rgb.Image, cur *patchcore.Result) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return true
	}
	if err := c.det.InspectInto(img, &c.r); err != nil {
		c.finishLocked(err)
		return true
	}
	c.old, c.new = append(c.old, cur.Score), append(c.new, c.r.Score)
	if c.r.Fail != cur.Fail {
		c.flips++
	}
	if len(c.old) >= c.want {
		c.finishLocked(nil)
	}
	return c.finished
}

func (c *canary) finishLocked(err error) {
	if c.finished {
		return
	}
	c.finished, c.err = true, err
	close(c.done)
}

// stop ends the canary early with err.
func (c *canary) stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finishLocked(err)
}

// report is the comparison so far; maxFlips decides promotion.
func (c *canary) report(maxFlips int) mqtt.CanaryReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.old)
	return mqtt.CanaryReport{Frames: n, Flips: c.flips, MaxFlips: maxFlips, Correlation: pearson(c.old, c.new),
		Promoted: c.err == nil && n >= c.want && c.flips <= maxFlips}
}

// pearson is the correlation of x and y (NaN-free: 0 when either is
// constant or there are fewer than 2 points).
func pearson(x, y []float64) float64 {
	n := float64(len(x))
	if len(x) < 2 {
		return 0
	}
	var mx, my float64
	for i := range x {
		mx, my = mx+x[i], my+y[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy, sxx, syy = sxy+dx*dy, sxx+dx*dx, syy+dy*dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}
