// Package progress shows how far a long job is: a redrawn bar with an ETA
// on a terminal, a plain log line every few seconds otherwise (systemd's
// journal, CI logs, pipes).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Bar reports the progress of one stage.
type Bar struct {
	w     io.Writer
	tty   bool
	label string
	start time.Time
	last  time.Time
	every time.Duration
	done  bool
	now   func() time.Time
}

// New starts a bar for label writing to w. Terminals get a bar redrawn at
// most 10 times a second; anything else a line every 10 seconds.
func New(w io.Writer, label string) *Bar {
	b := &Bar{w: w, label: label, now: time.Now, every: 10 * time.Second}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.tty, b.every = true, 100*time.Millisecond
		}
	}
	b.start = b.now()
	b.last = b.start
	return b
}

// Update reports done of total.
func (b *Bar) Update(done, total int) {
	now := b.now()
	final := done >= total
	if !final && now.Sub(b.last) < b.every {
		return
	}
	b.last = now
	elapsed := now.Sub(b.start)
	frac := 0.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	eta := "?"
	if frac > 0 {
		eta = (time.Duration(float64(elapsed)/frac) - elapsed).Round(time.Second).String()
	}
	if b.tty {
		const width = 30
		n := int(frac * width)
		fmt.Fprintf(b.w, "\r%-10s [%s%s] %3.0f%% %d/%d  %s elapsed, ETA %s \x1b[K", b.label,
			strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, done, total, elapsed.Round(time.Second), eta)
		if final {
			fmt.Fprintln(b.w)
			b.done = true
		}
		return
	}
	if final {
		fmt.Fprintf(b.w, "%s: %d/%d done in %s\n", b.label, done, total, elapsed.Round(100*time.Millisecond))
		b.done = true
		return
	}
	fmt.Fprintf(b.w, "%s: %d/%d (%.0f%%), %s elapsed, ETA %s\n", b.label, done, total, 100*frac, elapsed.Round(time.Second), eta)
}
