package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/auth"
	"github.com/modgate/modgate/internal/server"
	"github.com/modgate/modgate/internal/testenv"
)

// getFrom sends a GET for target to h from a client at addr, with an
// Authorization header when authz is set.
func getFrom(h http.Handler, addr, target, authz string) response {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.RemoteAddr = addr
	req.Host = "localhost:7070" // as a local browser or curl names it
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.String()}
}

const (
	local  = "127.0.0.1:40000"
	remote = "192.0.2.7:40000"
)

// TestHealth: GET /admin/v1/health reports each part: storage, the
// checksum database's verified tree, each upstream from the answers it
// gave (an unreachable one failing, with its error and no credential),
// the git sources without their credentials; and storage going away.
func TestHealth(t *testing.T) {
	up := fixture(t, "m", "example.com/m")
	db := newChecksumDB(t, map[string]string{"example.com/m@v1.0.0": goSum(t, up, "example.com/m")})
	down := strings.Replace(testenv.RefusedURL(t), "http://", "http://proxyuser:s3cret-pass@", 1)
	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine git.corp.example.com login bot password hunter2-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, down+"|"+up.URL()+",direct")
	cfg.SumDB = db.SumDB
	cfg.Private = "corp.example.com"
	cfg.Netrc = netrc
	h := newServer(t, cfg, server.WithVersion("v9.9.9-test")).Handler()

	if r := getFrom(h, remote, "/example.com/m/@v/v1.0.0.zip", ""); r.status != 200 {
		t.Fatalf("zip: %d %q", r.status, r.body)
	}
	r := getFrom(h, local, "/admin/v1/health", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("health: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	for _, secret := range []string{"s3cret-pass", "hunter2-secret"} {
		if strings.Contains(r.body, secret) {
			t.Errorf("the health report shows a credential: %s", r.body)
		}
	}
	var rep server.HealthReport
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Version != "v9.9.9-test" || time.Since(rep.Time) > time.Hour {
		t.Errorf("report: ok %v, version %q, time %v; want not ok (an upstream is down), the version, now", rep.OK, rep.Version, rep.Time)
	}
	if !rep.Storage.OK || rep.Storage.Kind != "disk" || rep.Storage.Error != "" {
		t.Errorf("storage: %+v", rep.Storage)
	}
	if db := rep.SumDB; !db.Enabled || !db.OK || db.Name != testDBName || db.LatestTreeSize == nil || *db.LatestTreeSize < 1 {
		t.Errorf("checksum database: %+v (tree size %v), want ok with the verified tree", db, db.LatestTreeSize)
	}
	if len(rep.Upstreams) != 3 {
		t.Fatalf("upstreams: %+v, want 3 entries", rep.Upstreams)
	}
	if u := rep.Upstreams[0]; u.Kind != "proxy" || u.OK || u.LastFailure == nil || !strings.Contains(u.LastError, "connection refused") ||
		!strings.Contains(u.URL, "@127.0.0.1:") {
		t.Errorf("unreachable upstream: %+v", u)
	}
	if u := rep.Upstreams[1]; u.Kind != "proxy" || !u.OK || u.LastSuccess == nil || u.LastFailure != nil || u.URL != up.URL() {
		t.Errorf("working upstream: %+v", u)
	}
	if u := rep.Upstreams[2]; u.Kind != "direct" || u.URL != "direct" || !u.OK {
		t.Errorf("direct entry: %+v", u)
	}
	if g := rep.Git; !g.Enabled || !g.OK || g.Private != "corp.example.com" || len(g.Hosts) != 1 || g.Hosts[0] != "git.corp.example.com" {
		t.Errorf("git: %+v", g)
	}
	if rep.Redis != nil {
		t.Errorf("redis reported without --redis: %+v", rep.Redis)
	}

	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(getFrom(h, local, "/admin/v1/health", "").body), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Storage.OK || rep.Storage.Error == "" || rep.Git.OK {
		t.Errorf("without its data dir: ok %v, storage %+v, git %+v; want storage and git failing", rep.OK, rep.Storage, rep.Git)
	}
	// The causes name this machine's files: the log has them, the
	// answer does not.
	if strings.Contains(rep.Storage.Error+rep.Git.Error, cfg.DataDir) {
		t.Errorf("the health answer names the data dir: storage %q, git %q", rep.Storage.Error, rep.Git.Error)
	}
}

// TestHealthMinimal: with verification off and one upstream never asked,
// everything is ok: nothing says otherwise.
func TestHealthMinimal(t *testing.T) {
	h := newServer(t, testConfig(t, testenv.RefusedURL(t))).Handler()
	var rep server.HealthReport
	if err := json.Unmarshal([]byte(getFrom(h, local, "/admin/v1/health", "").body), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.SumDB.Enabled || !rep.SumDB.OK || rep.Git.Enabled || rep.Git.Hosts == nil || len(rep.Upstreams) != 1 || !rep.Upstreams[0].OK {
		t.Errorf("report %+v, want everything ok, verification and git off", rep)
	}
}

// TestUIAccess: the web UI's files are public with tokens (the page asks
// for an admin token itself, the data stays behind the admin API), and as
// local as the admin API without tokens; /admin/v1/health and
// /admin/v1/policy are admin endpoints either way.
func TestUIAccess(t *testing.T) {
	t.Run("tokens", func(t *testing.T) {
		cfg := testConfig(t, "off")
		cfg.Tokens = filepath.Join(t.TempDir(), "tokens.json")
		admin, err := auth.Add(cfg.Tokens, "ops", []string{"*"}, true, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		dev, err := auth.Add(cfg.Tokens, "dev", []string{"*"}, false, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h := newServer(t, cfg).Handler()
		for _, tc := range []struct {
			addr, path, authz string
			status            int
		}{
			{remote, "/ui/", "", 200},
			{remote, "/ui/app.js", "Bearer mgt_unknown", 200},
			{remote, "/ui", "", 301},
			{remote, "/admin/v1/health", "", 401},
			{local, "/admin/v1/health", "", 401},
			{remote, "/admin/v1/health", "Bearer " + dev, 403},
			{remote, "/admin/v1/health", "Bearer " + admin, 200},
			{remote, "/admin/v1/policy", "Bearer " + admin, 404}, // no --policy
		} {
			if r := getFrom(h, tc.addr, tc.path, tc.authz); r.status != tc.status {
				t.Errorf("GET %s from %s (%.12s): %d %q, want %d", tc.path, tc.addr, tc.authz, r.status, r.body, tc.status)
			}
		}
	})
	for _, open := range []bool{false, true} {
		t.Run("no tokens, admin-open="+map[bool]string{false: "false", true: "true"}[open], func(t *testing.T) {
			cfg := testConfig(t, "off")
			cfg.AdminOpen = open
			h := newServer(t, cfg).Handler()
			remoteStatus := 403
			if open {
				remoteStatus = 200
			}
			for _, tc := range []struct {
				addr, path string
				status     int
			}{
				{local, "/ui/", 200},
				{local, "/admin/v1/health", 200},
				{remote, "/ui/", remoteStatus},
				{remote, "/ui/app.js", remoteStatus},
				{remote, "/admin/v1/health", remoteStatus},
			} {
				r := getFrom(h, tc.addr, tc.path, "")
				if r.status != tc.status {
					t.Errorf("GET %s from %s: %d %q, want %d", tc.path, tc.addr, r.status, r.body, tc.status)
				}
				if tc.status == 200 && strings.HasPrefix(tc.path, "/ui/") && r.header.Get("Content-Security-Policy") == "" {
					t.Errorf("GET %s: no Content-Security-Policy", tc.path)
				}
			}
		})
	}
}
