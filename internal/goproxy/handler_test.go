package goproxy_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
)

// passThrough is the smallest wrapper: it asks the Modules it wraps, and
// counts the questions.
type passThrough struct {
	inner protocol.Modules
	asked atomic.Int64
}

// wrapPassThrough has the shape of every wrapper.
var _ func(protocol.Modules) protocol.Modules = wrapPassThrough

func wrapPassThrough(inner protocol.Modules) protocol.Modules { return &passThrough{inner: inner} }

func (p *passThrough) List(ctx context.Context, path string) (*protocol.Versions, error) {
	p.asked.Add(1)
	return p.inner.List(ctx, path)
}

func (p *passThrough) Latest(ctx context.Context, path string) (*protocol.File, error) {
	p.asked.Add(1)
	return p.inner.Latest(ctx, path)
}

func (p *passThrough) Info(ctx context.Context, path, query string) (*protocol.File, error) {
	p.asked.Add(1)
	return p.inner.Info(ctx, path, query)
}

func (p *passThrough) GoMod(ctx context.Context, path, version string) (*protocol.File, error) {
	p.asked.Add(1)
	return p.inner.GoMod(ctx, path, version)
}

func (p *passThrough) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
	p.asked.Add(1)
	return p.inner.Zip(ctx, path, version)
}

// newTestCache returns a cache over a fresh disk store, fetching from a
// fixture upstream serving example.com/m v1.0.0 and v1.1.0.
func newTestCache(t *testing.T) *cache.Modules {
	t.Helper()
	tree := t.TempDir()
	var mods []testenv.Module
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		mods = append(mods, testenv.Module{Path: "example.com/m", Version: v,
			Files: map[string]string{"m.go": "package m\n\nconst V = \"" + v + "\"\n"}})
	}
	testenv.BuildTree(t, tree, mods)
	up := testenv.NewUpstream(t, tree)
	m, _ := cachetest.New(t, up.URL(), nil)
	return m
}

// TestPassThroughWrapper serves the same cache through the handler
// directly and through a pass-through wrapper: every answer, error and
// conditional or partial request is the same, byte for byte and header for
// header, and each request that reaches Modules goes through the wrapper.
func TestPassThroughWrapper(t *testing.T) {
	m := newTestCache(t)
	wrapper := wrapPassThrough(m).(*passThrough)
	log := slog.New(slog.DiscardHandler)
	direct := httptest.NewServer(goproxy.Instrument(log, &goproxy.Handler{Modules: m}))
	t.Cleanup(direct.Close)
	wrapped := httptest.NewServer(goproxy.Instrument(log, &goproxy.Handler{Modules: wrapper}))
	t.Cleanup(wrapped.Close)

	type request struct{ method, path, header, value string }
	requests := []request{
		{"GET", "/example.com/m/@v/list", "", ""},
		{"GET", "/example.com/m/@latest", "", ""},
		{"GET", "/example.com/m/@v/v1.0.0.info", "", ""},
		{"GET", "/example.com/m/@v/v1.0.0.mod", "", ""},
		{"GET", "/example.com/m/@v/v1.0.0.zip", "", ""},
		{"HEAD", "/example.com/m/@v/v1.1.0.zip", "", ""},
		{"GET", "/example.com/m/@v/v1.1.0.zip", "Range", "bytes=0-9"},
		{"GET", "/example.com/m/@v/main.info", "", ""},    // not found upstream
		{"GET", "/example.com/m/@v/v1.9.0.mod", "", ""},   // not found upstream
		{"GET", "/example.com/nope/@v/list", "", ""},      // not found upstream
		{"GET", "/example.com/m/@v/v2.0.0.info", "", ""},  // invalid for the path: not asked
		{"GET", "/example.com/m/@v/v1.0.zip", "", ""},     // not canonical: not asked
		{"GET", "/example.com/m/@v/v1.0.0.txt", "", ""},   // not a protocol file: not asked
		{"POST", "/example.com/m/@v/v1.0.0.info", "", ""}, // not asked
	}
	const notAsked = 4
	do := func(base string, rq request, etag string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(rq.method, base+rq.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rq.header != "" {
			req.Header.Set(rq.header, rq.value)
		}
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	compare := func(rq request, etag string) *http.Response {
		t.Helper()
		a, abody := do(direct.URL, rq, etag)
		b, bbody := do(wrapped.URL, rq, etag)
		if a.StatusCode != b.StatusCode || abody != bbody {
			t.Errorf("%s %s: direct %d %q, wrapped %d %q", rq.method, rq.path, a.StatusCode, abody, b.StatusCode, bbody)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Content-Range", "Cache-Control", "ETag", "Last-Modified", "X-Modgate-Degraded"} {
			if a.Header.Get(h) != b.Header.Get(h) {
				t.Errorf("%s %s: %s direct %q, wrapped %q", rq.method, rq.path, h, a.Header.Get(h), b.Header.Get(h))
			}
		}
		return a
	}
	statuses := map[int]int{}
	for _, rq := range requests {
		resp := compare(rq, "")
		statuses[resp.StatusCode]++
		if etag := resp.Header.Get("ETag"); etag != "" && rq.method == "GET" && rq.header == "" {
			if resp := compare(rq, etag); resp.StatusCode != http.StatusNotModified {
				t.Errorf("GET %s with If-None-Match: %d, want 304", rq.path, resp.StatusCode)
			}
		}
	}
	// The comparison means something only if the answers were of all kinds.
	for status, want := range map[int]int{200: 6, 206: 1, 404: 5, 400: 1, 405: 1} {
		if statuses[status] != want {
			t.Errorf("%d answers with status %d, want %d: %v", statuses[status], status, want, statuses)
		}
	}
	// Each request went through the wrapper, except the refused ones, and
	// the conditional ones (3: .info, .mod, .zip), asked twice.
	if got, want := wrapper.asked.Load(), int64(len(requests)-notAsked+3); got != want {
		t.Errorf("the wrapper was asked %d times, want %d", got, want)
	}
}
