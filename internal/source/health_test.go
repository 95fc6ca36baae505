package source

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestChainEntriesHealth: each proxy of a chain reports what its last
// answers said: a not-found answer is a working upstream, a 5xx or no
// answer a failing one (with the error, no credential), a request the
// caller canceled says nothing; direct and off entries are named.
func TestChainEntriesHealth(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusNotFound)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "answer", int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	c, err := ParseList(withSecrets(srv.URL)+",direct,off", func(base string) Source { return NewUpstream(base, NewHTTPClient()) })
	if err != nil {
		t.Fatal(err)
	}
	health := func() UpstreamHealth {
		t.Helper()
		es := c.Entries()
		if len(es) != 3 || !es[0].Proxy || es[1].Proxy || es[1].Name != "direct" || es[2].Proxy || es[2].Name != "off" {
			t.Fatalf("entries %+v, want a proxy, direct and off", es)
		}
		assertNoSecrets(t, "entry name", es[0].Name)
		return es[0].Health
	}
	if h := health(); !h.OK() || !h.LastSuccess.IsZero() || !h.LastFailure.IsZero() {
		t.Errorf("before any request: %+v, want ok with no times", h)
	}

	c.List(context.Background(), "example.com/m") // 404: not found is an answer
	h := health()
	if !h.OK() || h.LastSuccess.IsZero() || !h.LastFailure.IsZero() {
		t.Errorf("after a 404: %+v, want ok", h)
	}

	status.Store(http.StatusBadGateway)
	c.List(context.Background(), "example.com/m")
	h = health()
	if h.OK() || h.LastFailure.IsZero() || !strings.Contains(h.LastError, "502") {
		t.Errorf("after a 502: %+v, want failing with the status", h)
	}
	assertNoSecrets(t, "last error", h.LastError)

	status.Store(http.StatusOK)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.List(ctx, "example.com/m")
	if again := health(); again != h {
		t.Errorf("a canceled request changed the health: %+v, was %+v", again, h)
	}

	c.List(context.Background(), "example.com/m")
	if h := health(); !h.OK() || h.LastError == "" {
		t.Errorf("after a success: %+v, want ok, the last error kept", h)
	}
}
