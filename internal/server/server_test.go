package server_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/server"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/testenv"
)

// TestServe serves modgate as `modgate serve` does (Listen, Serve) with
// verification on, against a fixture upstream and an in-process checksum
// database: every endpoint answers, module files are verified before they
// are served, a file the database disagrees with is refused, and Shutdown
// ends Serve.
func TestServe(t *testing.T) {
	up := fixture(t, "genuine", "example.com/m", "example.com/tampered")
	genuine := fixture(t, "what the database recorded", "example.com/tampered")
	db := newChecksumDB(t, map[string]string{
		"example.com/m@v1.0.0":        goSum(t, up, "example.com/m"),
		"example.com/tampered@v1.0.0": goSum(t, genuine, "example.com/tampered"),
	})
	cfg := testConfig(t, up.URL())
	cfg.SumDB = db.SumDB
	s := newServer(t, cfg)
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	base := "http://" + ln.Addr().String()

	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/healthz", 200, "ok\n"},
		{"/readyz", 200, "ready; verifying against checksum database " + testDBName + "\n"},
		{"/example.com/m/@v/list", 200, "v1.0.0\n"},
		{"/example.com/m/@v/v1.0.0.info", 200, `"Version":"v1.0.0"`},
		{"/example.com/m/@v/v1.0.0.mod", 200, "module example.com/m\n"},
		{"/example.com/m/@v/v1.0.0.zip", 200, "PK"},
		{"/example.com/tampered/@v/v1.0.0.zip", 403, "SECURITY ERROR: checksum mismatch"},
		{"/sumdb/" + testDBName + "/supported", 200, ""},
		{"/sumdb/" + testDBName + "/lookup/example.com/m@v1.0.0", 200, "example.com/m v1.0.0/go.mod h1:"},
		{"/metrics", 200, "modgate_http_requests_total"},
	} {
		r := fetch(t, base+tc.path)
		if r.status != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("GET %s: %d %.200q, want %d with %q", tc.path, r.status, r.body, tc.status, tc.want)
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("GET %s: no X-Request-Id: the handler is not instrumented", tc.path)
		}
	}
	if db.reqs.Count("/lookup/example.com/m@v1.0.0") != 1 {
		t.Errorf("the checksum database was asked %q; want one lookup of example.com/m@v1.0.0", db.reqs.Paths())
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v, want http.ErrServerClosed", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the listener still accepts connections after Shutdown")
	}
}

// TestReady: /readyz says when verification is off, and answers 503 once
// the storage is gone.
func TestReady(t *testing.T) {
	cfg := testConfig(t, "off")
	h := newServer(t, cfg).Handler()
	if r := get(h, "/readyz"); r.status != 200 || r.body != "ready; WARNING: checksum verification is off (--sumdb off)\n" {
		t.Errorf("readyz: %d %q", r.status, r.body)
	}
	if r := get(h, "/sumdb/sum.golang.org/supported"); r.status != 404 || !strings.Contains(r.body, "--sumdb off") {
		t.Errorf("/sumdb/ with verification off: %d %q, want 404 saying why", r.status, r.body)
	}
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	r := get(h, "/readyz")
	if r.status != http.StatusServiceUnavailable || !strings.HasPrefix(r.body, "modgate: storage not usable; check") {
		t.Errorf("readyz without storage: %d %q, want 503 naming the storage", r.status, r.body)
	}
	if strings.Contains(r.body, cfg.DataDir) {
		t.Errorf("readyz without storage: %q shows the server's data dir path", r.body)
	}
}

// recorder is a wrapper that notes its name on every List, then asks the
// Modules it wraps.
type recorder struct {
	protocol.Modules
	name  string
	mu    *sync.Mutex
	calls *[]string
}

func (r *recorder) List(ctx context.Context, path string) (*protocol.Versions, error) {
	r.note(r.name)
	return r.Modules.List(ctx, path)
}

func (r *recorder) Close() { r.note("close " + r.name) }

func (r *recorder) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.calls = append(*r.calls, s)
}

// TestWrappers: the handler asks the wrappers, the first given first, and
// the last asks the cache; Modules is what the handler asks; Close closes
// the wrappers from the outside in.
func TestWrappers(t *testing.T) {
	up := fixture(t, "m", "example.com/m")
	var mu sync.Mutex
	var calls []string
	wrap := func(name string) server.Option {
		return server.WithWrapper(func(inner protocol.Modules) protocol.Modules {
			return &recorder{Modules: inner, name: name, mu: &mu, calls: &calls}
		})
	}
	s, err := server.New(t.Context(), testConfig(t, up.URL()), server.WithLogger(testLogger(t)), wrap("outer"), wrap("inner"))
	if err != nil {
		t.Fatal(err)
	}
	if r := get(s.Handler(), "/example.com/m/@v/list"); r.status != 200 || r.body != "v1.0.0\n" {
		t.Fatalf("@v/list through the wrappers: %d %q", r.status, r.body)
	}
	if vs, err := s.Modules().List(t.Context(), "example.com/m"); err != nil || len(vs.Tagged) != 1 {
		t.Fatalf("Modules().List = %+v, %v", vs, err)
	}
	s.Close()
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"outer", "inner", "outer", "inner", "close outer", "close inner"}; !slices.Equal(calls, want) {
		t.Errorf("wrappers were asked %q, want %q", calls, want)
	}
}

// TestPrivateRoute: a module on a private route is fetched from the
// route's source alone, and neither it nor a --nosumdb path is verified or
// looked up in the checksum database, by the verifier or through /sumdb/;
// other modules still are.
func TestPrivateRoute(t *testing.T) {
	public := fixture(t, "public", "example.com/m", "git.internal.example/lib")
	var leaked testenv.RequestLog
	public.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "corp.example.com") {
			leaked.Add(r.URL.Path)
		}
		return false
	})
	private := fixture(t, "private", "corp.example.com/secret")
	db := newChecksumDB(t, map[string]string{"example.com/m@v1.0.0": goSum(t, public, "example.com/m")})
	cfg := testConfig(t, public.URL())
	cfg.SumDB = db.SumDB
	cfg.NoSumDB = "*.internal.example"
	s := newServer(t, cfg, server.WithRoutes(source.Route{
		Patterns: "corp.example.com", Source: source.NewUpstream(private.URL(), source.NewHTTPClient()), Private: true}))
	h := s.Handler()

	for _, p := range []string{"corp.example.com/secret", "git.internal.example/lib", "example.com/m"} {
		if r := get(h, "/"+p+"/@v/v1.0.0.zip"); r.status != 200 {
			t.Errorf("GET %s zip: %d %q", p, r.status, r.body)
		}
	}
	if private.Count("/corp.example.com/secret/@v/v1.0.0.zip") != 1 || leaked.Total() != 0 {
		t.Errorf("private module: %d zip requests to its route, public upstream asked %q",
			private.Count("/corp.example.com/secret/@v/v1.0.0.zip"), leaked.Paths())
	}
	for _, p := range []string{"corp.example.com/secret", "git.internal.example/lib"} {
		if !s.Verifier().Skips(p) {
			t.Errorf("the verifier does not skip %s", p)
		}
		r := get(h, "/sumdb/"+testDBName+"/lookup/"+p+"@v1.0.0")
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "GONOSUMDB") {
			t.Errorf("/sumdb/ lookup of %s: %d %q, want 403 naming GONOSUMDB", p, r.status, r.body)
		}
		if n := db.reqs.Count(p); n != 0 {
			t.Errorf("%s reached the checksum database %d times", p, n)
		}
	}
	if s.Verifier().Skips("example.com/m") || s.Verifier().Skips("corp.example.com.evil.example/x") {
		t.Error("public paths are skipped")
	}
	if db.reqs.Count("/lookup/example.com/m@v1.0.0") != 1 {
		t.Errorf("the public module was not verified: the database was asked %q", db.reqs.Paths())
	}
}

// TestUpstreamIdleTimeout: --upstream-idle-timeout reaches the upstreams'
// client.
func TestUpstreamIdleTimeout(t *testing.T) {
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // headers, then nothing
	}))
	defer stall.Close()
	cfg := testConfig(t, stall.URL)
	cfg.UpstreamIdleTimeout = 200 * time.Millisecond
	s := newServer(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := s.Upstream().GoMod(ctx, "example.com/m", "v1.0.0")
	var fe *source.FetchError
	if !errors.Is(err, source.ErrIdleTimeout) || !errors.As(err, &fe) || !fe.Timeout {
		t.Fatalf("err = %v, want an idle timeout", err)
	}
	if !strings.Contains(err.Error(), "no data for 200ms") {
		t.Errorf("err = %q, want it to say how long", err)
	}
}

// TestNewErrors: a configuration New cannot build names the option at
// fault.
func TestNewErrors(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*config.Config)
		want string
	}{
		{"upstream", func(c *config.Config) { c.Upstream = "ftp://x" }, "upstream"},
		{"sumdb", func(c *config.Config) { c.SumDB = "nosuch.example.com" }, "sumdb"},
		{"data dir", func(c *config.Config) { c.DataDir = notDir }, "data dir " + notDir},
	} {
		cfg := testConfig(t, "off")
		tc.edit(cfg)
		s, err := server.New(t.Context(), cfg, server.WithLogger(testLogger(t)))
		if err == nil {
			s.Close()
			t.Errorf("%s: New succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to name %q", tc.name, err, tc.want)
		}
	}
}
