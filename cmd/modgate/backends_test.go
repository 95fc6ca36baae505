package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/source"
)

func testBackends(t *testing.T, upstream string, idle time.Duration) *backends {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Upstream = upstream
	cfg.SumDB = "off"
	cfg.UpstreamIdleTimeout = idle
	b, err := newBackends(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBackendsUpstreamIdleTimeout: --upstream-idle-timeout reaches the
// upstreams' client.
func TestBackendsUpstreamIdleTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // headers, then nothing
	}))
	defer srv.Close()
	b := testBackends(t, srv.URL, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := b.chain.GoMod(ctx, "example.com/m", "v1.0.0")
	var fe *source.FetchError
	if !errors.Is(err, source.ErrIdleTimeout) || !errors.As(err, &fe) || !fe.Timeout {
		t.Fatalf("err = %v, want an idle timeout", err)
	}
	if !strings.Contains(err.Error(), "no data for 200ms") {
		t.Errorf("err = %q, want it to say how long", err)
	}
}

// TestStagingJanitor: each tick removes the leftovers of interrupted
// writes and says so in the log, until the context ends.
func TestStagingJanitor(t *testing.T) {
	b := testBackends(t, "off", time.Second)
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	ctx, cancel := context.WithCancel(t.Context())
	tick := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		b.cleanStaging(ctx, tick, log)
		close(done)
	}()

	leftover := filepath.Join(b.disk.StagingDir(), "put-123")
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
