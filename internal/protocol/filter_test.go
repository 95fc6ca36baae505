package protocol_test

// A policy wrapper that hides versions, written as the package doc says,
// over a real cache on a real disk store fetching from a fixture upstream
// over HTTP, served by the real handler.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
)

// hiding hides some versions of every module: from @v/list, from the
// choice of @latest, and from .info, .mod and .zip requests.
type hiding struct {
	protocol.Modules
	hidden func(version string) bool
}

func hide(versions ...string) func(protocol.Modules) protocol.Modules {
	return func(inner protocol.Modules) protocol.Modules {
		return &hiding{Modules: inner, hidden: func(v string) bool { return slices.Contains(versions, v) }}
	}
}

func hiddenError(path, version string) error {
	return &source.NotFoundError{Msg: path + "@" + version + " is hidden by policy"}
}

func (h *hiding) List(ctx context.Context, path string) (*protocol.Versions, error) {
	vs, err := h.Modules.List(ctx, path)
	if err != nil {
		return nil, err
	}
	drop := func(v protocol.Version) bool { return h.hidden(v.Version) }
	vs.Tagged = slices.DeleteFunc(vs.Tagged, drop)
	vs.Pseudo = slices.DeleteFunc(vs.Pseudo, drop)
	return vs, nil
}

func (h *hiding) Latest(ctx context.Context, path string) (*protocol.File, error) {
	f, err := h.Modules.Latest(ctx, path)
	if err != nil || !h.hidden(f.Version) {
		return f, err
	}
	f.Content.Close()
	vs, err := h.List(ctx, path)
	if err != nil {
		return nil, err
	}
	v := protocol.PickLatest(vs)
	if v == "" {
		return nil, hiddenError(path, f.Version)
	}
	if f, err = h.Modules.Info(ctx, path, v); err != nil {
		return nil, err
	}
	f.Mutable, f.Degraded = true, vs.Degraded
	return f, nil
}

func (h *hiding) Info(ctx context.Context, path, query string) (*protocol.File, error) {
	if h.hidden(query) {
		return nil, hiddenError(path, query)
	}
	f, err := h.Modules.Info(ctx, path, query)
	if err == nil && h.hidden(f.Version) { // a query that resolved to one
		f.Content.Close()
		return nil, hiddenError(path, f.Version)
	}
	return f, err
}

func (h *hiding) GoMod(ctx context.Context, path, version string) (*protocol.File, error) {
	if h.hidden(version) {
		return nil, hiddenError(path, version)
	}
	return h.Modules.GoMod(ctx, path, version)
}

func (h *hiding) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
	if h.hidden(version) {
		return nil, hiddenError(path, version)
	}
	return h.Modules.Zip(ctx, path, version)
}

// TestFilterHidesFromListAndLatest: a wrapper hiding v1.2.0 hides it from
// @v/list and @latest, on the first answer and on the cache's hits, both
// where the upstream's own @latest names v1.2.0 (example.com/a) and where
// the cache computes @latest from the list (example.com/b, no @latest
// upstream), while the cache itself, unwrapped, answers v1.2.0.
func TestFilterHidesFromListAndLatest(t *testing.T) {
	tree := t.TempDir()
	var mods []testenv.Module
	for _, path := range []string{"example.com/a", "example.com/b"} {
		for _, v := range []string{"v1.0.0", "v1.1.0", "v1.2.0"} {
			mods = append(mods, testenv.Module{Path: path, Version: v, Files: map[string]string{"x.go": "package x\n"}})
		}
	}
	testenv.BuildTree(t, tree, mods)
	up := testenv.NewUpstream(t, tree)
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/example.com/a/@latest" {
			return false
		}
		fmt.Fprint(w, `{"Version":"v1.2.0","Time":"2024-01-02T03:04:05Z"}`)
		return true
	})
	log := slog.New(slog.DiscardHandler)
	c, _ := cachetest.New(t, up.URL(), log)
	srv := httptest.NewServer(goproxy.Instrument(log, &goproxy.Handler{Modules: hide("v1.2.0")(c)}))
	t.Cleanup(srv.Close)

	get := func(p string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"example.com/a", "example.com/b"} {
		for round := range 2 { // the second round is answered from the cache
			upBefore := up.Total()
			if status, body := get("/" + path + "/@v/list"); status != http.StatusOK || body != "v1.0.0\nv1.1.0\n" {
				t.Errorf("round %d: %s @v/list = %d %q, want v1.0.0 and v1.1.0", round, path, status, body)
			}
			status, body := get("/" + path + "/@latest")
			var info struct{ Version string }
			if err := json.Unmarshal([]byte(body), &info); status != http.StatusOK || err != nil || info.Version != "v1.1.0" {
				t.Errorf("round %d: %s @latest = %d %q, want v1.1.0", round, path, status, body)
			}
			if n := up.Total() - upBefore; round == 1 && n != 0 {
				t.Errorf("round 1: %s asked the upstream %d times, want cache hits", path, n)
			}
		}
		if status, body := get("/" + path + "/@v/v1.2.0.info"); status != http.StatusNotFound || !strings.Contains(body, "hidden by policy") {
			t.Errorf("%s@v1.2.0.info = %d %q, want 404 hidden by policy", path, status, body)
		}
		if status, _ := get("/" + path + "/@v/v1.1.0.zip"); status != http.StatusOK {
			t.Errorf("%s@v1.1.0.zip = %d, want 200", path, status)
		}

		// Unwrapped, the same cache answers v1.2.0: the wrapper hid it.
		ctx := context.Background()
		vs, err := c.List(ctx, path)
		if err != nil || protocol.PickLatest(vs) != "v1.2.0" {
			t.Errorf("cache.List(%s) = %+v, %v; want v1.2.0 listed", path, vs, err)
		}
		f, err := c.Latest(ctx, path)
		if err != nil || f.Version != "v1.2.0" || !f.Stored {
			t.Errorf("cache.Latest(%s) = %+v, %v; want the stored answer v1.2.0", path, f, err)
		} else {
			f.Content.Close()
		}
	}
}
