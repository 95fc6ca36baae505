package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLatestFromList checks @latest when the upstream has none (the static
// tree answers 404 for it): modgate picks the highest release, or the
// highest pre-release when there is no release.
func TestLatestFromList(t *testing.T) {
	e := newStdEnv(t)
	for _, tc := range []struct{ path, want string }{
		{"example.com/m", "v1.1.0"}, // not v1.2.0-beta.1, not the pseudo-version
		{"example.com/m/v2", "v2.1.0"},
		{"example.com/Upper/Mod", "v1.0.0"},
		{"example.com/pre", "v0.2.0-rc.1"},
		{"example.com/m/nested/sub", "v0.1.0"},
	} {
		r := get(t, e.url(modPath(tc.path, "@latest")))
		if r.Status != http.StatusOK {
			t.Errorf("%s@latest: %v, want 200", tc.path, r)
			continue
		}
		if info := parseInfo(t, r.Body); info.Version != tc.want {
			t.Errorf("%s@latest = %s, want %s", tc.path, info.Version, tc.want)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s@latest Content-Type %q", tc.path, ct)
		}
		if n := e.up.Count(modPath(tc.path, "@latest")); n == 0 {
			// Not a failure of modgate, but a sign the test does not test
			// what it claims.
			t.Errorf("upstream never asked for %s@latest", tc.path)
		}
	}
	// A missing module has no @latest.
	r := get(t, e.url("/example.com/nosuch/@latest"))
	checkErrorBody(t, "missing @latest", r, http.StatusNotFound)

	// The go command agrees on the pre-release-only module.
	work := t.TempDir()
	out := mustGo(t, work, goEnv(work, e.proc.URL), "list", "-m", "-json", "example.com/pre@latest")
	if !strings.Contains(out, `"Version": "v0.2.0-rc.1"`) {
		t.Errorf("go list -m example.com/pre@latest:\n%s", out)
	}
}

// queryHook answers .info queries (branch names, commit prefixes) that a
// static tree cannot.
func queryHook(path string, answers map[string]string) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		for query, body := range answers {
			if r.URL.Path == modPath(path, "@v/"+query+".info") {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, body)
				return true
			}
		}
		return false
	}
}

func infoBody(version string) string {
	return fmt.Sprintf(`{"Version":%q,"Time":"2024-01-02T03:04:05Z"}`, version)
}

// TestNonCanonicalInfo checks .info queries: a branch name and a commit
// prefix are answered with the canonical pseudo-version the upstream
// resolved them to, and the go command can use them.
func TestNonCanonicalInfo(t *testing.T) {
	e := newStdEnv(t)
	e.up.SetHook(queryHook("example.com/m", map[string]string{
		"main":         infoBody(pseudoM),
		"0123456789ab": infoBody(pseudoM),
	}))
	for _, q := range []string{"main", "0123456789ab"} {
		r := get(t, e.url(modPath("example.com/m", "@v/"+q+".info")))
		if r.Status != http.StatusOK {
			t.Fatalf("%s.info: %v", q, r)
		}
		if v := parseInfo(t, r.Body).Version; v != pseudoM {
			t.Errorf("%s.info names %s, want %s", q, v, pseudoM)
		}
		if cc := r.Header.Get("Cache-Control"); strings.Contains(cc, "immutable") {
			t.Errorf("%s.info (a query) is served with Cache-Control %q", q, cc)
		}
	}
	// The canonical request gets exactly that version.
	r := get(t, e.url(vPath("example.com/m", pseudoM, "info")))
	if r.Status != http.StatusOK || parseInfo(t, r.Body).Version != pseudoM {
		t.Fatalf("canonical %s.info: %v", pseudoM, r)
	}

	// The go command resolves the branch through modgate.
	work := t.TempDir()
	app := filepath.Join(work, "app")
	os.MkdirAll(app, 0o755)
	mustWrite(t, filepath.Join(app, "go.mod"), []byte("module example.com/app\n\ngo 1.21\n"))
	goenv := goEnv(work, e.proc.URL)
	mustGo(t, app, goenv, "get", "example.com/m@main")
	gomod, _ := os.ReadFile(filepath.Join(app, "go.mod"))
	if !strings.Contains(string(gomod), "example.com/m "+pseudoM) {
		t.Errorf("go get example.com/m@main: go.mod\n%s", gomod)
	}
	checkGoSum(t, e, filepath.Join(app, "go.sum"), []string{"example.com/m@" + pseudoM})
}

// TestInfoWrongVersion checks that an upstream answering a canonical .info
// request with another version, or a query with a non-canonical or
// path-invalid version, gets a 502 and nothing stored; and that the right
// answer, once the upstream gives it, is stored and served.
func TestInfoWrongVersion(t *testing.T) {
	e := newStdEnv(t)
	e.up.SetHook(queryHook("example.com/m", map[string]string{
		"v1.0.0":  infoBody("v1.1.0"),
		"v1.1.0":  infoBody("v1.1"),
		"branch1": infoBody("main"),
		"branch2": infoBody("v2.0.0"), // invalid for a path without /v2
		"branch3": infoBody(""),
	}))
	for _, q := range []string{"v1.0.0", "v1.1.0", "branch1", "branch2", "branch3"} {
		r := get(t, e.url(modPath("example.com/m", "@v/"+q+".info")))
		checkErrorBody(t, q+".info with a wrong answer", r, http.StatusBadGateway)
		if !strings.Contains(string(r.Body), e.up.URL()) {
			t.Errorf("%s.info: error %q does not name the upstream", q, r.Body)
		}
	}
	e.assertNothingStored("example.com/m", "v1.0.0")
	e.assertNothingStored("example.com/m", "v1.1.0")
	for _, f := range e.storedUnder("meta/example.com/m") {
		if strings.Contains(f, "query") {
			t.Errorf("a wrong query answer was stored: %s", f)
		}
	}

	e.up.SetHook(nil)
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		body := mustGet(t, e.url(vPath("example.com/m", v, "info")))
		if got := parseInfo(t, body).Version; got != v {
			t.Errorf("%s.info after the upstream recovered names %s", v, got)
		}
		if _, err := os.Stat(e.storedFile("example.com/m", v, "info")); err != nil {
			t.Errorf("%s.info not stored after a good answer: %v", v, err)
		}
	}
}

// TestQueryFreshness checks that a branch query is cached with the list
// TTL: it follows the branch once the TTL has passed, and is still answered
// when the upstream is down.
func TestQueryFreshness(t *testing.T) {
	const ttl = time.Second
	const pseudo2 = "v1.2.1-0.20240202030405-bbbbbbbbbbbb"
	e := newStdEnv(t, "--list-ttl", ttl.String())
	mainURL := e.url(modPath("example.com/m", "@v/main.info"))
	e.up.SetHook(queryHook("example.com/m", map[string]string{"main": infoBody(pseudoM)}))
	if v := parseInfo(t, mustGet(t, mainURL)).Version; v != pseudoM {
		t.Fatalf("main.info = %s, want %s", v, pseudoM)
	}
	// The branch moves.
	e.up.SetHook(queryHook("example.com/m", map[string]string{"main": infoBody(pseudo2)}))
	eventually(t, "main.info to follow the branch", func() bool {
		return parseInfo(t, mustGet(t, mainURL)).Version == pseudo2
	})
	if v := parseInfo(t, mustGet(t, e.url(vPath("example.com/m", pseudo2, "info")))).Version; v != pseudo2 {
		t.Errorf("canonical .info of the new branch head = %s", v)
	}
	// Upstream down: ask until the answer has gone stale and its refresh
	// has failed against the upstream (its request log and modgate's fetch
	// metrics show both, so no guess at how long the TTL takes to pass on
	// this machine); every answer, before and after, is the last good one.
	e.up.SetDown(true)
	const mainPath = "/example.com/m/@v/main.info"
	check := func(when string) {
		t.Helper()
		r := get(t, mainURL)
		if r.Status != http.StatusOK || parseInfo(t, r.Body).Version != pseudo2 {
			t.Fatalf("main.info with the upstream down, %s: %v, want %s", when, r, pseudo2)
		}
	}
	asked := e.up.Count(mainPath)
	fetches := e.metricNow("modgate_upstream_fetches_total", `kind="query"`)
	eventually(t, "main.info to be refreshed against the down upstream", func() bool {
		check("while stale")
		return e.up.Count(mainPath) > asked
	})
	eventually(t, "the failed main.info refresh to end", func() bool {
		return e.metricNow("modgate_upstream_fetches_total", `kind="query"`) > fetches
	})
	for i := 0; i < 3; i++ {
		check("after a failed refresh")
	}
}

// TestUpstreamLatest checks that an upstream's own @latest is used when it
// has one, and that a broken one falls back to the list.
func TestUpstreamLatest(t *testing.T) {
	e := newStdEnv(t)
	answer := map[string]string{
		"/example.com/m/@latest":    infoBody("v1.0.0"), // the upstream's choice wins
		"/example.com/m/v2/@latest": "<html>oops</html>",
		"/example.com/pre/@latest":  infoBody("v9.0.0"), // invalid for the path
	}
	e.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		body, ok := answer[r.URL.Path]
		if ok {
			fmt.Fprint(w, body)
		}
		return ok
	})
	for _, tc := range []struct{ path, want string }{
		{"example.com/m", "v1.0.0"},
		{"example.com/m/v2", "v2.1.0"},
		{"example.com/pre", "v0.2.0-rc.1"},
	} {
		r := get(t, e.url(modPath(tc.path, "@latest")))
		if r.Status != http.StatusOK || parseInfo(t, r.Body).Version != tc.want {
			t.Errorf("%s@latest: %v, want %s", tc.path, r, tc.want)
		}
	}
}

// TestLyingUpstreamList checks that junk in an upstream's list is filtered
// out: only canonical versions valid for the path are listed, with the time
// the upstream gave for a version kept.
func TestLyingUpstreamList(t *testing.T) {
	e := newStdEnv(t)
	e.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/example.com/m/@v/list" {
			return false
		}
		fmt.Fprint(w, "v1.1.0 2024-01-01T00:00:00Z\n<html>\nnot-a-version\nv1.0\nv2.0.0\nv1.0.0\n\n   \n"+pseudoM+"\nv1.0.0\nv3.0.0+incompatible\n")
		return true
	})
	got := string(mustGet(t, e.url("/example.com/m/@v/list")))
	if want := "v1.0.0\nv1.1.0 2024-01-01T00:00:00Z\nv3.0.0+incompatible\n"; got != want {
		t.Errorf("list from a junk upstream list = %q, want %q", got, want)
	}
}
