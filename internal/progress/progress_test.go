package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLogLinesWhenNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "coreset")
	now := b.start
	b.now = func() time.Time { return now }
	b.Update(1, 10) // too soon for a line
	now = now.Add(11 * time.Second)
	b.Update(5, 10)
	b.Update(6, 10) // within 10 s of the last line
	now = now.Add(2 * time.Second)
	b.Update(10, 10)
	want := "coreset: 5/10 (50%), 11s elapsed, ETA 11s\ncoreset: 10/10 done in 13s\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if strings.Contains(buf.String(), "\r") {
		t.Error("carriage returns in a log")
	}
}
