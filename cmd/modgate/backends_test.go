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
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/goproxy"
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

// TestNotInSumDB: the verifier and the /sumdb/ proxy exempt the same paths,
// --nosumdb's and those of the router's private routes, and neither sends
// such a path anywhere: not to the checksum database, not to an upstream.
func TestNotInSumDB(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer upstream.Close()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Upstream = upstream.URL
	cfg.NoSumDB = "*.internal.example"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := newBackends(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.verifier.Close()
	// Today's wiring: a router without routes, in front of the chain;
	// --nosumdb reaches the verifier.
	if b.router.String() != b.chain.String() || b.router.Private("corp.example.com/secret") {
		t.Errorf("router %q in front of chain %q", b.router, b.chain)
	}
	if !b.verifier.Skips("git.internal.example/lib") || b.verifier.Skips("corp.example.com/secret") {
		t.Error("the verifier does not skip exactly --nosumdb's paths")
	}

	// With a private route, as private git sources will add.
	router, err := source.NewRouter(b.chain, source.Route{Patterns: "corp.example.com", Source: mustChain(t, "off"), Private: true})
	if err != nil {
		t.Fatal(err)
	}
	v, proxy, err := newChecksumDB(cfg, b.disk, b.chain, notInSumDB(cfg.NoSumDB, router), source.NewHTTPClient(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	sumdbHandler := proxy.Handler(goproxy.WriteError)
	for _, p := range []string{"corp.example.com/secret", "git.internal.example/lib"} {
		if !v.Skips(p) {
			t.Errorf("Skips(%q) = false", p)
		}
		if err := v.Verify(t.Context(), p, "v1.0.0", false, "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="); err != nil {
			t.Errorf("Verify(%s): %v", p, err)
		}
		rec := httptest.NewRecorder()
		sumdbHandler.ServeHTTP(rec, httptest.NewRequest("GET", "/sumdb/sum.golang.org/lookup/"+p+"@v1.0.0", nil))
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "GONOSUMDB") {
			t.Errorf("/sumdb/ lookup of %s: %d %q, want 403 naming GONOSUMDB", p, rec.Code, rec.Body)
		}
	}
	if v.Skips("example.com/public") || v.Skips("corp.example.com.evil.example/x") {
		t.Error("public paths are skipped")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 0 {
		t.Errorf("skipped paths reached the upstream: %q", asked)
	}
}

func mustChain(t *testing.T, list string) *source.Chain {
	t.Helper()
	c, err := source.ParseList(list, func(base string) source.Source { return source.NewUpstream(base, nil) })
	if err != nil {
		t.Fatal(err)
	}
	return c
}
