package policy_test

import (
	"context"
	"encoding/json"
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

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/policy"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
)

var (
	now   = time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)
	old   = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	young = now.Add(-time.Hour)
)

const policyYAML = `
deny:
  - module: example.com/denied
    versions: "<v1.1.0"
    reason: "v1.0 is not approved; use v1.1.0"
min-age:
  - module: example.com/young
    age: 72h
vulndb: %s
`

// env is a real cache on a real disk store fetching from a fixture
// upstream, wrapped by a policy engine, served by the real handler.
type env struct {
	t      *testing.T
	cache  *cache.Modules
	engine *policy.Engine
	srv    *httptest.Server
	file   string
	logs   *testenv.SyncBuffer
}

func newEnv(t *testing.T, dryRun bool) *env {
	tree := t.TempDir()
	var mods []testenv.Module
	add := func(path string, when time.Time, versions ...string) {
		for _, v := range versions {
			mods = append(mods, testenv.Module{Path: path, Version: v, Time: when, Files: map[string]string{"x.go": "package x\n"}})
		}
	}
	add("example.com/denied", old, "v1.0.0", "v1.1.0")
	// GO-2099-0001 (fixed in v1.2.3) affects v1.2.0; GO-2099-0002 (no
	// fix) affects v1.5.0, the latest.
	add("example.com/vuln", old, "v1.1.0", "v1.2.0", "v1.2.3", "v1.5.0")
	add("example.com/young", old, "v1.0.0")
	add("example.com/young", young, "v1.1.0")
	add("example.com/fine", old, "v1.0.0")
	add("example.com/retracted", old, "v1.0.0", "v1.1.0")
	mods = append(mods, testenv.Module{Path: "example.com/retracted", Version: "v1.2.0", Time: old, Files: map[string]string{
		"x.go":   "package x\n",
		"go.mod": "module example.com/retracted\n\ngo 1.21\n\nretract (\n\tv1.1.0 // loses data on restart\n\tv1.2.0 // published by mistake\n)\n",
	}})
	testenv.BuildTree(t, tree, mods)
	up := testenv.NewUpstream(t, tree)
	log := testenv.Logger(t, "cache")
	c, _ := cachetest.New(t, up.URL(), log)

	db, err := filepath.Abs("../vulndb/testdata/db")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cache: c, file: filepath.Join(t.TempDir(), "policy.yaml"), logs: &testenv.SyncBuffer{}}
	e.write(strings.Replace(policyYAML, "%s", db, 1))
	e.engine, err = policy.New(policy.Config{File: e.file, DryRun: dryRun, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.engine.Close)
	e.srv = httptest.NewServer(goproxy.Instrument(slog.New(slog.DiscardHandler), &goproxy.Handler{Modules: e.engine.Wrap(c)}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) write(content string) {
	e.t.Helper()
	if err := os.WriteFile(e.file, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) get(p string) (int, string) {
	e.t.Helper()
	resp, err := http.Get(e.srv.URL + p)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (e *env) latest(path string) (int, string) {
	e.t.Helper()
	status, body := e.get("/" + path + "/@latest")
	var info struct{ Version string }
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &info); err != nil {
			e.t.Fatalf("%s/@latest: %v", path, err)
		}
		return status, info.Version
	}
	return status, body
}

// TestGateServes: denied, vulnerable and too young versions are refused
// with the reason, on the first request and on the cache's hits; lists
// leave them out and @latest falls back to an allowed version.
func TestGateServes(t *testing.T) {
	e := newEnv(t, false)
	for round := range 2 { // the second round is answered from the cache
		for _, tt := range []struct{ path, status, body string }{
			{"/example.com/denied/@v/v1.0.0.info", "403", "modgate: example.com/denied@v1.0.0 blocked by policy: deny: v1.0 is not approved; use v1.1.0\n"},
			{"/example.com/denied/@v/v1.0.0.mod", "403", "modgate: example.com/denied@v1.0.0 blocked by policy: deny: v1.0 is not approved; use v1.1.0\n"},
			{"/example.com/denied/@v/v1.0.0.zip", "403", "modgate: example.com/denied@v1.0.0 blocked by policy: deny: v1.0 is not approved; use v1.1.0\n"},
			{"/example.com/denied/@v/v1.1.0.mod", "200", "module example.com/denied\n\ngo 1.21\n"},
			{"/example.com/denied/@v/list", "200", "v1.1.0\n"},
			{"/example.com/vuln/@v/v1.2.0.zip", "403", "modgate: example.com/vuln@v1.2.0 blocked by policy: vuln: GO-2099-0001 (fixed in v1.2.3)\n"},
			{"/example.com/vuln/@v/v1.5.0.mod", "403", "modgate: example.com/vuln@v1.5.0 blocked by policy: vuln: GO-2099-0002 (no fixed version)\n"},
			{"/example.com/vuln/@v/list", "200", "v1.1.0\nv1.2.3\n"},
			{"/example.com/young/@v/v1.1.0.zip", "403", "modgate: example.com/young@v1.1.0 blocked by policy: min-age: published 2025-01-09T23:00:00Z, younger than 72h\n"},
			{"/example.com/young/@v/v1.1.0.info", "403", "modgate: example.com/young@v1.1.0 blocked by policy: min-age: published 2025-01-09T23:00:00Z, younger than 72h\n"},
			{"/example.com/young/@v/list", "200", "v1.0.0\n"},
			{"/example.com/young/@v/v1.0.0.mod", "200", "module example.com/young\n\ngo 1.21\n"},
		} {
			status, body := e.get(tt.path)
			if got := http.StatusText(status); status != atoi(tt.status) || body != tt.body {
				t.Errorf("round %d: %s = %d %s %q, want %s %q", round, tt.path, status, got, body, tt.status, tt.body)
			}
		}
		for path, want := range map[string]string{
			"example.com/vuln":   "v1.2.3",
			"example.com/young":  "v1.0.0",
			"example.com/denied": "v1.1.0",
			"example.com/fine":   "v1.0.0",
		} {
			if status, v := e.latest(path); status != http.StatusOK || v != want {
				t.Errorf("round %d: %s/@latest = %d %s, want %s", round, path, status, v, want)
			}
		}
	}
	// The cache itself still has the blocked versions: the gate hid them.
	vs, err := e.cache.List(context.Background(), "example.com/vuln")
	if err != nil || protocol.PickLatest(vs) != "v1.5.0" {
		t.Errorf("cache.List(example.com/vuln) = %+v, %v; want v1.5.0 listed", vs, err)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestGateDecision: every answer records its outcome in the request's
// Decision; with nothing allowed @latest is refused for the module.
func TestGateDecision(t *testing.T) {
	e := newEnv(t, false)
	m := e.engine.Wrap(e.cache)
	ctx, d := protocol.WithDecision(context.Background())
	_, err := m.Zip(ctx, "example.com/denied", "v1.0.0")
	var pe *protocol.PolicyError
	if !errors.As(err, &pe) || pe.Rule != "deny" || *d != (protocol.Decision{Outcome: "deny", Rule: "deny"}) {
		t.Errorf("Zip(denied@v1.0.0) = %v, decision %+v; want deny", err, *d)
	}
	ctx, d = protocol.WithDecision(context.Background())
	f, err := m.Zip(ctx, "example.com/denied", "v1.1.0")
	if err != nil || *d != (protocol.Decision{Outcome: "allow"}) {
		t.Errorf("Zip(denied@v1.1.0) = %v, decision %+v; want allow", err, *d)
	} else {
		f.Content.Close()
	}
	e.write("deny:\n  - module: example.com/fine\n")
	if err := e.engine.Reload(); err != nil {
		t.Fatal(err)
	}
	ctx, d = protocol.WithDecision(context.Background())
	_, err = m.Latest(ctx, "example.com/fine")
	if !errors.As(err, &pe) || pe.Version != "" || !strings.Contains(err.Error(), "example.com/fine blocked by policy: deny: no allowed version (latest v1.0.0: denied by policy)") || d.Outcome != "deny" {
		t.Errorf("Latest(fine) = %v, decision %+v; want the module refused", err, *d)
	}
}

// TestGateDryRun: a dry run serves everything, lists everything, and
// records and logs what it would deny.
func TestGateDryRun(t *testing.T) {
	e := newEnv(t, true)
	for _, p := range []string{"/example.com/denied/@v/v1.0.0.zip", "/example.com/vuln/@v/v1.5.0.info", "/example.com/young/@v/v1.1.0.mod"} {
		if status, body := e.get(p); status != http.StatusOK {
			t.Errorf("dry run: %s = %d %q, want 200", p, status, body)
		}
	}
	if status, body := e.get("/example.com/vuln/@v/list"); status != http.StatusOK || body != "v1.1.0\nv1.2.0\nv1.2.3\nv1.5.0\n" {
		t.Errorf("dry run: list = %d %q, want every version", status, body)
	}
	if status, v := e.latest("example.com/vuln"); status != http.StatusOK || v != "v1.5.0" {
		t.Errorf("dry run: @latest = %d %s, want v1.5.0", status, v)
	}
	ctx, d := protocol.WithDecision(context.Background())
	f, err := e.engine.Wrap(e.cache).Info(ctx, "example.com/vuln", "v1.2.0")
	if err != nil || *d != (protocol.Decision{Outcome: "would-deny", Rule: "vuln"}) {
		t.Errorf("dry run: Info(vuln@v1.2.0) = %v, decision %+v; want served, would-deny vuln", err, *d)
	} else {
		f.Content.Close()
	}
	if !strings.Contains(e.logs.String(), `msg="would deny"`) || !strings.Contains(e.logs.String(), `module=example.com/denied version=v1.0.0 rule=deny`) {
		t.Errorf("no would-deny log line:\n%s", e.logs)
	}
}

// TestReload: a changed file applies; a broken one is rejected naming its
// line and the policy before stays.
func TestReload(t *testing.T) {
	e := newEnv(t, false)
	if status, _ := e.get("/example.com/fine/@v/v1.0.0.mod"); status != http.StatusOK {
		t.Fatalf("fine@v1.0.0.mod = %d before the change", status)
	}
	e.write("deny:\n  - module: example.com/fine\n    reason: replaced\n")
	if err := e.engine.Reload(); err != nil {
		t.Fatal(err)
	}
	if status, body := e.get("/example.com/fine/@v/v1.0.0.mod"); status != http.StatusForbidden || !strings.Contains(body, "deny: replaced") {
		t.Errorf("after the change: %d %q, want 403 replaced", status, body)
	}
	// The old deny rule went with the old file.
	if status, _ := e.get("/example.com/denied/@v/v1.0.0.mod"); status != http.StatusOK {
		t.Errorf("denied@v1.0.0 after the change = %d, want 200", status)
	}
	e.write("deny:\n  - module: example.com/fine\n    versions: \"<=v1.x\"\n")
	err := e.engine.Reload()
	if err == nil || !strings.Contains(err.Error(), `policy.yaml:3: deny[0].versions: invalid range "<=v1.x"`) {
		t.Errorf("Reload of a broken file = %v, want its line named", err)
	}
	if !strings.Contains(e.logs.String(), "policy file rejected") || !strings.Contains(e.logs.String(), "policy.yaml:3") {
		t.Errorf("the rejection is not logged with its line:\n%s", e.logs)
	}
	if status, body := e.get("/example.com/fine/@v/v1.0.0.mod"); status != http.StatusForbidden || !strings.Contains(body, "deny: replaced") {
		t.Errorf("after a broken file: %d %q, want the policy before (403 replaced)", status, body)
	}
	// A vulnerability database that cannot be read rejects the file too.
	e.write("vulndb: " + filepath.Join(t.TempDir(), "none") + "\n")
	if err := e.engine.Reload(); err == nil || !strings.Contains(err.Error(), "vulndb") {
		t.Errorf("Reload naming a missing vulndb = %v, want rejected", err)
	}
}

// TestNewRejects: a bad file at start is an error, naming its line.
func TestNewRejects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(file, []byte("deny:\n  - module: a\n    versions: \"<=v1.x\"\n"), 0o644)
	if _, err := policy.New(policy.Config{File: file}); err == nil || !strings.Contains(err.Error(), "p.yaml:3: deny[0].versions") {
		t.Errorf("New = %v, want the line named", err)
	}
	if _, err := policy.New(policy.Config{File: file + ".missing"}); err == nil {
		t.Error("New of a missing file succeeded")
	}
}

// TestBlockRetracted: with block-retracted, the versions the module's
// latest go.mod retracts are refused with the author's rationale, left
// out of the list, and never chosen for @latest; without it they are
// served as any other.
func TestBlockRetracted(t *testing.T) {
	e := newEnv(t, false)
	if status, _ := e.get("/example.com/retracted/@v/v1.1.0.zip"); status != http.StatusOK {
		t.Fatalf("without block-retracted, a retracted version: %d, want 200", status)
	}
	db, _ := filepath.Abs("../vulndb/testdata/db")
	e.write(strings.Replace(policyYAML, "%s", db, 1) + "block-retracted: true\n")
	if err := e.engine.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"v1.1.0.zip", "v1.1.0.mod", "v1.1.0.info"} {
		status, body := e.get("/example.com/retracted/@v/" + file)
		if status != http.StatusForbidden || body != "modgate: example.com/retracted@v1.1.0 blocked by policy: retracted: retracted by the module's author: loses data on restart\n" {
			t.Errorf("%s: %d %q", file, status, body)
		}
	}
	if status, body := e.get("/example.com/retracted/@v/list"); status != http.StatusOK || body != "v1.0.0\n" {
		t.Errorf("list: %d %q, want only v1.0.0", status, body)
	}
	if status, v := e.latest("example.com/retracted"); status != http.StatusOK || v != "v1.0.0" {
		t.Errorf("@latest: %d %q, want v1.0.0", status, v)
	}
	if status, _ := e.get("/example.com/retracted/@v/v1.0.0.zip"); status != http.StatusOK {
		t.Errorf("a version not retracted: %d, want 200", status)
	}
	if status, _ := e.get("/example.com/fine/@v/v1.0.0.zip"); status != http.StatusOK {
		t.Errorf("a module without retractions: %d, want 200", status)
	}
}
