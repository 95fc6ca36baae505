package audit_test

// Wrap over a real cache on a real disk store, fetching from a fixture
// upstream over HTTP and served by the real handler, with a gate between
// the two that refuses as authorization and policy do.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/mod/sumdb/dirhash"

	"github.com/modgate/modgate/internal/audit"
	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
)

// gate refuses as the auth and policy wrappers do, by module:
//   - example.com/forbidden: 403, the token may not read it;
//   - example.com/secret: 401 without a principal (the go command's first
//     try), served with one;
//   - example.com/a@v1.1.0: blocked by the policy;
//   - example.com/dry: served, but the dry-run policy would deny it.
type gate struct{ protocol.Modules }

func (g *gate) check(ctx context.Context, path, version string) error {
	switch {
	case path == "example.com/forbidden":
		return &protocol.ForbiddenError{Msg: "token may not read " + path}
	case path == "example.com/secret":
		if _, ok := protocol.PrincipalFrom(ctx); !ok {
			return &protocol.UnauthorizedError{Msg: "a token is needed"}
		}
	case path == "example.com/a" && version == "v1.1.0":
		return &protocol.PolicyError{Module: path, Version: version, Rule: "deny", Reason: "not approved"}
	case path == "example.com/dry":
		d := protocol.DecisionFrom(ctx)
		if d == nil {
			return fmt.Errorf("no Decision in the context: audit.Wrap is not outside the gate")
		}
		d.Outcome, d.Rule = audit.WouldDeny, "min-age"
	}
	return nil
}

func (g *gate) List(ctx context.Context, path string) (*protocol.Versions, error) {
	if err := g.check(ctx, path, ""); err != nil {
		return nil, err
	}
	return g.Modules.List(ctx, path)
}

func (g *gate) Latest(ctx context.Context, path string) (*protocol.File, error) {
	if err := g.check(ctx, path, ""); err != nil {
		return nil, err
	}
	return g.Modules.Latest(ctx, path)
}

func (g *gate) Info(ctx context.Context, path, query string) (*protocol.File, error) {
	if err := g.check(ctx, path, query); err != nil {
		return nil, err
	}
	return g.Modules.Info(ctx, path, query)
}

func (g *gate) GoMod(ctx context.Context, path, version string) (*protocol.File, error) {
	if err := g.check(ctx, path, version); err != nil {
		return nil, err
	}
	return g.Modules.GoMod(ctx, path, version)
}

func (g *gate) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
	if err := g.check(ctx, path, version); err != nil {
		return nil, err
	}
	return g.Modules.Zip(ctx, path, version)
}

// asPrincipal stands for the auth middleware: the token name comes in a
// test header.
func asPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name := r.Header.Get("X-Test-Token-Name"); name != "" {
			r = r.WithContext(protocol.WithPrincipal(r.Context(), protocol.Principal{Name: name}))
		}
		next.ServeHTTP(w, r)
	})
}

// newCache returns a cache over a fresh disk store fetching from a fixture
// upstream that serves v1.0.0 and v1.1.0 of the given modules, and
// answers the query "main" of example.com/a with v1.0.0.
func newCache(t testing.TB, paths ...string) (*cache.Modules, *testenv.Upstream) {
	t.Helper()
	tree := t.TempDir()
	var mods []testenv.Module
	for _, p := range paths {
		for _, v := range []string{"v1.0.0", "v1.1.0"} {
			mods = append(mods, testenv.Module{Path: p, Version: v, Files: map[string]string{"x.go": "package x\n\nconst V = \"" + v + "\"\n"}})
		}
	}
	testenv.BuildTree(t, tree, mods)
	up := testenv.NewUpstream(t, tree)
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/example.com/a/@v/main.info" {
			return false
		}
		fmt.Fprint(w, `{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z"}`)
		return true
	})
	c, _ := cachetest.New(t, up.URL(), testenv.Logger(t, "cache"))
	return c, up
}

// readLog returns the events of the audit file at path, failing the test
// on any line that does not parse or lacks one of the documented keys.
func readLog(t *testing.T, path string) []audit.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := []string{"time", "request_id", "principal", "client", "module", "version", "file", "source", "h1", "bytes", "decision", "rule"}
	var events []audit.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var fields map[string]any
		if err := json.Unmarshal(sc.Bytes(), &fields); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		for _, k := range keys {
			if _, ok := fields[k]; !ok {
				t.Errorf("audit line %q lacks %q", sc.Text(), k)
			}
		}
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestWrapRecordsDownloadsAndRefusals: exactly one event per download of
// a canonical .info, .mod or .zip (from the upstream first, from the cache
// after) and per refusal by policy or token; none for 401 challenges,
// not-found answers, or allowed lists, @latest and queries; would-deny
// events for everything a dry-run policy would refuse.
func TestWrapRecordsDownloadsAndRefusals(t *testing.T) {
	audit.SetH1Wait(t, time.Minute) // the events below expect their h1, however loaded the machine
	c, up := newCache(t, "example.com/a", "example.com/secret", "example.com/dry")
	logPath := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(logPath, audit.Config{Logger: testenv.Logger(t, "audit")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(goproxy.Instrument(testenv.Logger(t, "server"),
		asPrincipal(&goproxy.Handler{Modules: audit.Wrap(&gate{c}, l)})))
	defer srv.Close()

	denies := counterValue(t, metrics.AuditEvents.WithLabelValues(audit.Deny))
	type want struct {
		module, version, file, source, decision, rule, principal string
		bytes                                                    int64 // -1: the size of the upstream's file
		h1                                                       bool
	}
	var wants []want
	var requestIDs []string
	get := func(p, principal string, status int, w ...want) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		if principal != "" {
			req.Header.Set("X-Test-Token-Name", principal)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Fatalf("GET %s = %d %q, want %d", p, resp.StatusCode, body, status)
		}
		for _, w := range w {
			wants = append(wants, w)
			requestIDs = append(requestIDs, resp.Header.Get("X-Request-Id"))
		}
	}
	const anon = protocol.Anonymous
	for _, src := range []string{"upstream", "cache"} { // the second round is served from the cache
		get("/example.com/a/@v/v1.0.0.info", "", 200, want{"example.com/a", "v1.0.0", "info", src, "allow", "", anon, -1, false})
		get("/example.com/a/@v/v1.0.0.mod", "", 200, want{"example.com/a", "v1.0.0", "mod", src, "allow", "", anon, -1, true})
		get("/example.com/a/@v/v1.0.0.zip", "ci", 200, want{"example.com/a", "v1.0.0", "zip", src, "allow", "", "ci", -1, true})
	}
	// Not downloads, not refusals.
	get("/example.com/a/@v/list", "", 200)
	get("/example.com/a/@latest", "", 200)
	get("/example.com/a/@v/main.info", "", 200)
	get("/example.com/a/@v/v9.9.9.info", "", 404)
	get("/example.com/a/@v/v9.9.9.zip", "", 404)
	// Refusals.
	get("/example.com/a/@v/v1.1.0.zip", "", 403, want{"example.com/a", "v1.1.0", "zip", "", "deny", "deny", anon, 0, false})
	get("/example.com/a/@v/v1.1.0.info", "ci", 403, want{"example.com/a", "v1.1.0", "info", "", "deny", "deny", "ci", 0, false})
	get("/example.com/forbidden/@v/list", "ci", 403, want{"example.com/forbidden", "", "list", "", "deny", "token", "ci", 0, false})
	get("/example.com/forbidden/@v/v1.0.0.mod", "ci", 403, want{"example.com/forbidden", "v1.0.0", "mod", "", "deny", "token", "ci", 0, false})
	// The go command's first try is challenged, then it sends its token:
	// one event, for the download.
	get("/example.com/secret/@v/v1.0.0.mod", "", 401)
	get("/example.com/secret/@v/v1.0.0.mod", "ci", 200, want{"example.com/secret", "v1.0.0", "mod", "upstream", "allow", "", "ci", -1, true})
	// Dry run: served, and recorded as would-deny, lists and @latest too.
	get("/example.com/dry/@v/list", "", 200, want{"example.com/dry", "", "list", "upstream", "would-deny", "min-age", anon, 0, false})
	get("/example.com/dry/@latest", "", 200, want{"example.com/dry", "v1.1.0", "latest", "upstream", "would-deny", "min-age", anon, -2, false})
	get("/example.com/dry/@v/v1.1.0.zip", "", 200, want{"example.com/dry", "v1.1.0", "zip", "upstream", "would-deny", "min-age", anon, -1, true})

	events := readLog(t, logPath)
	if len(events) != len(wants) {
		t.Errorf("%d audit events, want %d:", len(events), len(wants))
		for _, e := range events {
			t.Logf("%+v", e)
		}
	}
	ext := map[string]string{"info": "info", "mod": "mod", "zip": "zip"}
	for i := range min(len(events), len(wants)) {
		e, w := events[i], wants[i]
		got := want{e.Module, e.Version, e.File, e.Source, e.Decision, e.Rule, e.Principal, e.Bytes, e.H1 != ""}
		if w.bytes == -1 {
			fi, err := os.Stat(up.FilePath(w.module, w.version, ext[w.file]))
			if err != nil {
				t.Fatal(err)
			}
			w.bytes = fi.Size()
		}
		if w.bytes == -2 { // @latest: the cache's .info, whatever its length
			w.bytes = e.Bytes
		}
		if got != w {
			t.Errorf("event %d = %+v\nwant        %+v", i, got, w)
		}
		if e.RequestID == "" || e.RequestID != requestIDs[i] {
			t.Errorf("event %d: request_id %q, want the response's X-Request-Id %q", i, e.RequestID, requestIDs[i])
		}
		if !strings.HasPrefix(e.Client, "127.0.0.1:") {
			t.Errorf("event %d: client %q, want the test's address", i, e.Client)
		}
		if e.Time.IsZero() || e.Time.Location() != time.UTC {
			t.Errorf("event %d: time %v, want a UTC time", i, e.Time)
		}
		if e.H1 != "" {
			if h1 := fixtureH1(t, up, e); e.H1 != h1 {
				t.Errorf("event %d: h1 %q, want %q", i, e.H1, h1)
			}
		}
	}
	if n := counterValue(t, metrics.AuditEvents.WithLabelValues(audit.Deny)) - denies; n != 4 {
		t.Errorf("modgate_audit_events_total{decision=deny} grew by %v, want 4", n)
	}
}

// fixtureH1 hashes the upstream's copy of e's file as go.sum does.
func fixtureH1(t *testing.T, up *testenv.Upstream, e audit.Event) string {
	t.Helper()
	name := up.FilePath(e.Module, e.Version, e.File)
	var h1 string
	var err error
	if e.File == "zip" {
		h1, err = dirhash.HashZip(name, dirhash.Hash1)
	} else {
		h1, err = dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return os.Open(name) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return h1
}

// TestWrapNilLog: without a log, Wrap adds nothing.
func TestWrapNilLog(t *testing.T) {
	c, _ := newCache(t, "example.com/a")
	if m := audit.Wrap(c, nil); m != protocol.Modules(c) {
		t.Errorf("Wrap(c, nil) = %T, want c itself", m)
	}
}
