package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// TestAdminPurgeAndRefresh: an operator purges a stored version, which is
// fetched again on the next request, and refreshes a module's list, which
// shows a new version at once, within its TTL.
func TestAdminPurgeAndRefresh(t *testing.T) {
	const mod = "example.com/m"
	tree := t.TempDir()
	v1 := testenv.Module{Path: mod, Version: "v1.0.0", Files: map[string]string{"m.go": "package m\n"}}
	testenv.BuildTree(t, tree, []testenv.Module{v1})
	up := testenv.NewUpstream(t, tree)
	cfg := testConfig(t, up.URL())
	cfg.Prefetch = false
	s := newServer(t, cfg)
	srv := httptest.NewServer(s.Handler()) // clients on 127.0.0.1: the admin API answers them without tokens
	t.Cleanup(srv.Close)
	do := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	for _, ext := range []string{"info", "mod", "zip"} {
		if status, _ := do("GET", "/"+mod+"/@v/v1.0.0."+ext); status != 200 {
			t.Fatalf("%s: %d", ext, status)
		}
	}
	zipKey, _ := store.VersionKey(mod, "v1.0.0", "zip")
	status, body := do("DELETE", "/admin/v1/modules/"+mod+"/@v/v1.0.0")
	var purged struct {
		Module, Version string
		Files           int
	}
	if err := json.Unmarshal([]byte(body), &purged); status != 200 || err != nil || purged.Module != mod || purged.Files < 3 {
		t.Fatalf("purge: %d %q", status, body)
	}
	if _, err := s.Store().Stat(context.Background(), zipKey); err == nil {
		t.Fatal("the purged zip is still stored")
	}
	before := up.Count("/" + mod + "/@v/v1.0.0.zip")
	if status, _ := do("GET", "/"+mod+"/@v/v1.0.0.zip"); status != 200 || up.Count("/"+mod+"/@v/v1.0.0.zip") != before+1 {
		t.Errorf("after the purge the zip was not fetched again: %d", status)
	}

	// A new version upstream: invisible within the TTL, listed after a
	// refresh.
	if _, body := do("GET", "/"+mod+"/@v/list"); body != "v1.0.0\n" {
		t.Fatalf("list: %q", body)
	}
	testenv.BuildTree(t, tree, []testenv.Module{v1, {Path: mod, Version: "v1.1.0", Files: map[string]string{"m.go": "package m\n"}}})
	if _, body := do("GET", "/"+mod+"/@v/list"); strings.Contains(body, "v1.1.0") {
		t.Fatalf("v1.1.0 listed before the TTL: %q", body)
	}
	status, body = do("POST", "/admin/v1/refresh/"+mod)
	var refreshed struct {
		Versions []string
		Latest   string
	}
	if err := json.Unmarshal([]byte(body), &refreshed); status != 200 || err != nil || !slices.Contains(refreshed.Versions, "v1.1.0") || refreshed.Latest != "v1.1.0" {
		t.Fatalf("refresh: %d %q", status, body)
	}
	if _, body := do("GET", "/"+mod+"/@v/list"); body != "v1.0.0\nv1.1.0\n" {
		t.Errorf("list after the refresh: %q", body)
	}
	// The source down: a refresh says so, rather than answering with the
	// list kept, which clients still get.
	up.SetDown(true)
	status, body = do("POST", "/admin/v1/refresh/"+mod)
	if status != http.StatusBadGateway || !strings.Contains(body, "the source did not answer") || !strings.Contains(body, "clients still get the list fetched at ") || strings.Count(body, "\n") != 1 {
		t.Errorf("refresh with the source down: %d %q, want 502 saying the source did not answer", status, body)
	}
	if status, body := do("GET", "/"+mod+"/@v/list"); status != 200 || body != "v1.0.0\nv1.1.0\n" {
		t.Errorf("list with the source down, after a refresh: %d %q", status, body)
	}
	up.SetDown(false)

	// What is stored, for the operator.
	if status, body := do("GET", "/admin/v1/modules?q=example.com"); status != 200 || !strings.Contains(body, `"path": "`+mod+`"`) {
		t.Errorf("modules: %d %q", status, body)
	}
	if status, body := do("GET", "/admin/v1/stats"); status != 200 || !strings.Contains(body, `"store"`) {
		t.Errorf("stats: %d %q", status, body)
	}

	for _, path := range []string{"/admin/v1/modules/" + mod + "/@v/v1.0", "/admin/v1/modules/" + mod, "/admin/v1/modules/-bad/@v/v1.0.0"} {
		if status, body := do("DELETE", path); status != 400 {
			t.Errorf("DELETE %s: %d %q, want 400", path, status, body)
		}
	}
	// A module no source has: not found, not a failing upstream.
	if status, body := do("POST", "/admin/v1/refresh/example.com/nosuch"); status != 404 || !strings.Contains(body, "example.com/nosuch") {
		t.Errorf("refresh of a module that does not exist: %d %q, want 404 naming it", status, body)
	}
}
