package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modgate/modgate/internal/policy"
	"github.com/modgate/modgate/internal/protocol"
)

// viewOf asks h for GET /admin/v1/policy and decodes the answer.
func viewOf(t *testing.T, h http.Handler) policy.View {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/admin/v1/policy", nil))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /admin/v1/policy = %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var v policy.View
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestViewRules: the view shows each kind of rule as the file writes it,
// with empty lists (not null) for the kinds the file lacks, and follows a
// reloaded file.
func TestViewRules(t *testing.T) {
	e := newEnv(t, false)
	e.write(`allow:
  - example.com
  - module: corp.example.com/*
    reason: "ours"
deny:
  - module: example.com/denied, example.com/old
    versions: "<v1.1.0"
    reason: >
      v1.0 is not
      approved
  - module: example.com/gone
min-age:
  - module: "*"
    age: 7d
waive:
  - id: GO-2099-0001
    module: example.com/vuln
    reason: not reachable
block-retracted: true
`)
	if err := e.engine.Reload(); err != nil {
		t.Fatal(err)
	}
	v := viewOf(t, e.engine.ViewHandler())
	want := policy.Rules{
		Allow: []policy.AllowRule{{Module: "example.com"}, {Module: "corp.example.com/*", Reason: "ours"}},
		Deny: []policy.DenyRule{
			{Module: "example.com/denied, example.com/old", Versions: "<v1.1.0", Reason: "v1.0 is not approved"},
			{Module: "example.com/gone"},
		},
		MinAge:         []policy.AgeRule{{Module: "*", Age: "7d"}},
		Waive:          []policy.Waiver{{ID: "GO-2099-0001", Module: "example.com/vuln", Reason: "not reachable"}},
		BlockRetracted: true,
	}
	if !reflect.DeepEqual(v.Rules, want) {
		t.Errorf("rules:\n got %+v\nwant %+v", v.Rules, want)
	}
	if v.File != e.file || v.DryRun {
		t.Errorf("file %q dry run %v, want %q false", v.File, v.DryRun, e.file)
	}

	e.write("deny:\n  - module: example.com/fine\n")
	if err := e.engine.Reload(); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	e.engine.ViewHandler().ServeHTTP(w, httptest.NewRequest("GET", "/admin/v1/policy", nil))
	// Empty lists are [], not null, however the answer is laid out.
	var raw struct {
		Rules   map[string]json.RawMessage `json:"rules"`
		Blocked map[string]json.RawMessage `json:"blocked"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]json.RawMessage{"allow": raw.Rules["allow"], "min_age": raw.Rules["min_age"],
		"waive": raw.Rules["waive"], "recent": raw.Blocked["recent"]} {
		if string(got) != "[]" {
			t.Errorf("answer's %s is %s, want []: %s", name, got, w.Body)
		}
	}
}

// TestViewBlocked: refusals are counted by rule and the last ones listed
// newest first with the principal; allowed requests and filtered lists
// are not refusals; in a dry run they are marked.
func TestViewBlocked(t *testing.T) {
	for _, dryRun := range []bool{false, true} {
		t.Run(fmt.Sprint("dryRun=", dryRun), func(t *testing.T) {
			e := newEnv(t, dryRun)
			m := e.engine.Wrap(e.cache)
			ctx := protocol.WithPrincipal(context.Background(), protocol.Principal{Name: "ci"})
			for _, r := range []struct{ path, version string }{
				{"example.com/denied", "v1.0.0"},
				{"example.com/vuln", "v1.2.0"},
				{"example.com/denied", "v1.1.0"}, // allowed
				{"example.com/young", "v1.1.0"},
			} {
				if f, err := m.GoMod(ctx, r.path, r.version); err == nil {
					f.Content.Close()
				}
			}
			if vs, err := m.List(ctx, "example.com/vuln"); err != nil || len(vs.Tagged) == 0 {
				t.Fatalf("List: %v %v", vs, err)
			}
			v := viewOf(t, e.engine.ViewHandler())
			if want := map[string]int64{"deny": 1, "vuln": 1, "min-age": 1}; !reflect.DeepEqual(v.Blocked.ByRule, want) {
				t.Errorf("by rule %v, want %v", v.Blocked.ByRule, want)
			}
			var got []string
			for _, r := range v.Blocked.Recent {
				got = append(got, fmt.Sprintf("%s@%s %s %s dry=%v", r.Module, r.Version, r.Rule, r.Principal, r.DryRun))
				if r.Reason == "" || r.Time.IsZero() {
					t.Errorf("refusal without reason or time: %+v", r)
				}
			}
			want := []string{
				fmt.Sprintf("example.com/young@v1.1.0 min-age ci dry=%v", dryRun),
				fmt.Sprintf("example.com/vuln@v1.2.0 vuln ci dry=%v", dryRun),
				fmt.Sprintf("example.com/denied@v1.0.0 deny ci dry=%v", dryRun),
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("recent refusals:\n got %q\nwant %q", got, want)
			}
			if v.DryRun != dryRun {
				t.Errorf("dry_run %v, want %v", v.DryRun, dryRun)
			}
		})
	}
}

// TestViewBounded: the engine keeps the last MaxRecentRefusals refusals
// and counts them all.
func TestViewBounded(t *testing.T) {
	e := newEnv(t, false)
	e.write("deny:\n  - module: example.com\n")
	if err := e.engine.Reload(); err != nil {
		t.Fatal(err)
	}
	m := e.engine.Wrap(e.cache)
	const n = policy.MaxRecentRefusals + 25
	for i := range n {
		// Refused before anything is fetched: the versions need not exist.
		if _, err := m.Zip(context.Background(), "example.com/fine", fmt.Sprintf("v1.0.%d", i)); err == nil {
			t.Fatal("not refused")
		}
	}
	v := viewOf(t, e.engine.ViewHandler())
	if v.Blocked.ByRule["deny"] != n || len(v.Blocked.Recent) != policy.MaxRecentRefusals {
		t.Fatalf("%d counted, %d kept; want %d, %d", v.Blocked.ByRule["deny"], len(v.Blocked.Recent), n, policy.MaxRecentRefusals)
	}
	if first, last := v.Blocked.Recent[0].Version, v.Blocked.Recent[len(v.Blocked.Recent)-1].Version; first != fmt.Sprintf("v1.0.%d", n-1) || last != "v1.0.25" {
		t.Errorf("kept from %s to %s, want the newest first: v1.0.%d to v1.0.25", first, last, n-1)
	}
	if v.Blocked.Recent[0].Principal != protocol.Anonymous {
		t.Errorf("principal of a request without one: %q, want %q", v.Blocked.Recent[0].Principal, protocol.Anonymous)
	}
}

// TestViewNoPolicy: without a policy the view answers 404 saying how to
// configure one, as one text/plain line.
func TestViewNoPolicy(t *testing.T) {
	var e *policy.Engine
	w := httptest.NewRecorder()
	e.ViewHandler().ServeHTTP(w, httptest.NewRequest("GET", "/admin/v1/policy", nil))
	if w.Code != 404 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") || !strings.Contains(w.Body.String(), "--policy") || strings.Count(w.Body.String(), "\n") != 1 {
		t.Errorf("no policy: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}

// TestViewVulnDBCredentials: a vulnerability database URL may carry
// credentials (https://user:token@host/, sent as basic auth); the view,
// which the web UI shows, and the log line of the load name it without
// them.
func TestViewVulnDBCredentials(t *testing.T) {
	e := newEnv(t, false)
	db, err := filepath.Abs("../vulndb/testdata/db")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "s3cr3t-vulndb-token"
	var authorized atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pw, ok := r.BasicAuth(); !ok || pw != secret {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		authorized.Store(true)
		http.FileServer(http.Dir(db)).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	src := strings.Replace(srv.URL, "http://", "http://reader:"+secret+"@", 1) + "/"
	e.write("vulndb: " + src + "\n")
	if err := e.engine.Reload(); err != nil {
		t.Fatal(err)
	}
	if !authorized.Load() {
		t.Fatal("the database was not read with its credentials")
	}
	w := httptest.NewRecorder()
	e.engine.ViewHandler().ServeHTTP(w, httptest.NewRequest("GET", "/admin/v1/policy", nil))
	if strings.Contains(w.Body.String(), secret) {
		t.Errorf("the policy view shows the database's credentials:\n%s", w.Body)
	}
	if v := viewOf(t, e.engine.ViewHandler()); !strings.Contains(v.Rules.VulnDB, strings.TrimPrefix(srv.URL, "http://")) {
		t.Errorf("vulndb = %q, want the database's host named", v.Rules.VulnDB)
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Errorf("a log line holds the database's credentials:\n%s", e.logs)
	}
}
