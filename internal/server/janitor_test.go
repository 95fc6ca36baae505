package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/store"
)

// TestStagingJanitor: each tick removes the leftovers of interrupted
// writes and says so in the log, until the context ends.
func TestStagingJanitor(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Upstream = "off"
	cfg.SumDB = "off"
	s, err := New(t.Context(), cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sc, ok := s.Store().(store.StagingCleaner)
	if !ok {
		t.Fatal("the disk store is not a StagingCleaner")
	}
	dir := stagingName(s.Store(), cfg.DataDir)
	if dir != filepath.Join(cfg.DataDir, ".tmp") {
		t.Errorf("staging dir %s", dir)
	}

	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	ctx, cancel := context.WithCancel(t.Context())
	tick := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		cleanStaging(ctx, sc, dir, tick, log)
		close(done)
	}()

	leftover := filepath.Join(dir, "put-123")
	if err := os.WriteFile(leftover, []byte("half a zip"), 0o600); err != nil {
		t.Fatal(err)
	}
	tick <- time.Now()
	tick <- time.Now() // taken only once the first clean is over
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover after a tick: %v", err)
	}
	cancel()
	<-done
	if got := logBuf.String(); !strings.Contains(got, "removed leftovers of interrupted writes") || !strings.Contains(got, "files=1 bytes=10") {
		t.Errorf("log = %q", got)
	}
}
