package goproxy_test

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/server"
	"github.com/modgate/modgate/internal/testenv"
)

// fuzzStack builds the handler modgate serves (server.New: Instrument
// around a mux of ops endpoints, /sumdb/ and the GOPROXY handler) over a
// real disk store holding one module version, and a cache whose source
// answers not found for everything else ("off").
func fuzzStack(f *testing.F) http.Handler {
	f.Helper()
	dir := f.TempDir()
	tree := filepath.Join(dir, "tree")
	testenv.BuildTree(f, tree, []testenv.Module{
		{Path: "example.com/Fuzz/m", Version: "v1.0.0", Files: map[string]string{"m.go": "package m\n"}},
	})
	newServer := func(upstream string) *server.Server {
		cfg := config.Default()
		cfg.DataDir = filepath.Join(dir, "data")
		cfg.Upstream = upstream
		cfg.SumDB = "off"
		cfg.UpstreamRate = 0
		cfg.ListTTL, cfg.NegativeTTL, cfg.FetchTimeout = time.Hour, time.Hour, 10*time.Second
		s, err := server.New(f.Context(), cfg, server.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(s.Close)
		return s
	}
	// Store the module through a server that can reach it...
	up := testenv.NewUpstream(f, tree)
	warm := newServer(up.URL()).Modules()
	ctx := context.Background()
	for _, get := range []func() error{
		func() error { _, err := warm.List(ctx, "example.com/Fuzz/m"); return err },
		func() error { o, err := warm.Latest(ctx, "example.com/Fuzz/m"); closeFile(o); return err },
		func() error { o, err := warm.Info(ctx, "example.com/Fuzz/m", "v1.0.0"); closeFile(o); return err },
		func() error { o, err := warm.GoMod(ctx, "example.com/Fuzz/m", "v1.0.0"); closeFile(o); return err },
		func() error { o, err := warm.Zip(ctx, "example.com/Fuzz/m", "v1.0.0"); closeFile(o); return err },
	} {
		if err := get(); err != nil {
			f.Fatal(err)
		}
	}
	// ...then serve it through one whose source finds nothing.
	return newServer("off").Handler()
}

func closeFile(o *protocol.File) {
	if o != nil {
		o.Content.Close()
	}
}

// FuzzHandler sends arbitrary requests (method, target, one header) through
// the whole handler stack: it must never panic and never answer 5xx (every
// request here is either served or a client's mistake), and every error is
// one text/plain line, as the go command shows it.
func FuzzHandler(f *testing.F) {
	h := fuzzStack(f)
	for _, seed := range [][4]string{
		{"GET", "/example.com/!fuzz/m/@v/list", "Accept", "*/*"},
		{"GET", "/example.com/!fuzz/m/@latest", "X-Request-Id", "abc"},
		{"GET", "/example.com/!fuzz/m/@v/v1.0.0.info", "If-None-Match", `"x"`},
		{"HEAD", "/example.com/!fuzz/m/@v/v1.0.0.mod", "If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"},
		{"GET", "/example.com/!fuzz/m/@v/v1.0.0.zip", "Range", "bytes=0-10,20-"},
		{"GET", "/example.com/!fuzz/m/@v/v1.0.0.zip", "If-Range", `"etag"`},
		{"GET", "/example.com/!fuzz/m/@v/main.info", "X-Request-Id", strings.Repeat("z", 80)},
		{"GET", "/example.com/other/@v/v1.2.3.zip", "Range", "bytes=-1"},
		{"POST", "/example.com/!fuzz/m/@v/list", "Content-Length", "0"},
		{"OPTIONS", "*", "Host", "x"},
		{"GET", "/healthz", "Connection", "close"},
		{"PUT", "/healthz", "Expect", "100-continue"},
		{"GET", "/sumdb/sum.golang.org/supported", "A", "b"},
		{"GET", "/%2e%2e/%2e%2e/etc/passwd", "A", "b"},
		{"GET", "//x/@v/list", "A", "b"},
		{"GET", "/example.com/" + strings.Repeat("a", 300) + "/@v/list", "A", "b"},
		{"GET", "/example.com/m/@v/" + strings.Repeat("v", 300) + ".info", "A", "b"},
		{"GET", "http://example.com/x/@v/list?q=1", "A", "b"},
		{"GET", "/example.com/m/@v/v1.0.0.zip/../../x", "A", "b"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, method, target, name, value string) {
		raw := method + " " + target + " HTTP/1.1\r\nHost: modgate.test\r\n" + name + ": " + value + "\r\n\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // net/http answers these itself, before any handler
		}
		if req.Method == "OPTIONS" && req.RequestURI == "*" {
			return // so is "OPTIONS *"
		}
		req.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%q: %d %q", raw, rec.Code, rec.Body.String())
		}
		if rec.Code >= 400 {
			body := rec.Body.String()
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("%q: %d with Content-Type %q, want text/plain", raw, rec.Code, ct)
			}
			if req.Method != "HEAD" && (strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") || len(body) > 648) {
				t.Fatalf("%q: %d with body %q, want one line the go command shows whole", raw, rec.Code, body)
			}
		}
	})
}
