package audit

import (
	"testing"
	"time"
)

// SetH1Wait sets how long Wrap waits for a file's h1 until t ends: tests
// that expect an h1 in their events wait a minute, not 100ms, so that a
// stall of the machine cannot record an empty one. Not for parallel tests.
func SetH1Wait(t testing.TB, d time.Duration) {
	old := h1Wait
	h1Wait = d
	t.Cleanup(func() { h1Wait = old })
}
