package testenv

import (
	"testing"
	"time"
)

// Eventually waits until cond returns true and fails the test with msg if
// it has not within timeout. cond is checked at once, then at intervals
// that grow from a millisecond to 50 ms, so a condition that holds soon is
// seen soon and a slow one does not burn a core.
//
// timeout is the point where waiting longer means a bug, not the time the
// thing is expected to take: make it generous (seconds), so a loaded
// machine or qemu does not fail the test.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	if waitFor(timeout, cond) {
		return
	}
	t.Fatalf("after %v: %s", timeout, msg)
}

// WaitUntil is Eventually for a check that says what is still missing:
// it waits until check returns nil and fails the test with the last error
// if it has not within timeout.
func WaitUntil(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	var last error
	if waitFor(timeout, func() bool { last = check(); return last == nil }) {
		return
	}
	t.Fatalf("after %v: %v", timeout, last)
}

// waitFor polls cond until it holds (true) or timeout passes (false); cond
// is checked once more at the deadline.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, 50*time.Millisecond)
	}
}
