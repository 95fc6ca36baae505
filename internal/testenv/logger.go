package testenv

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Logger returns a debug-level logger whose lines are kept in memory and
// shown, under the heading "<what> logs:", only if the test fails: a
// passing test stays quiet, a failing one shows everything that led to it.
func Logger(t testing.TB, what string) *slog.Logger {
	t.Helper()
	buf := &SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s logs:\n%s", what, buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// SyncBuffer is a strings.Builder safe for the concurrent writers a
// server's goroutines (or a child process's output copiers) are.
type SyncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
