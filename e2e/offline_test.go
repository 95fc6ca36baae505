package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// warmUp fetches every file of the standard fixture through modgate and
// returns the answers by URL path.
func warmUp(t *testing.T, e *env) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	modules := map[string]bool{}
	for _, mv := range allVersions {
		modules[mv.path] = true
		for _, ext := range []string{"info", "mod", "zip"} {
			p := vPath(mv.path, mv.version, ext)
			got[p] = mustGet(t, e.url(p))
		}
	}
	for path := range modules {
		p := modPath(path, "@v/list")
		got[p] = mustGet(t, e.url(p))
		if path == "example.com/pseudo" || path == "example.com/inc" {
			continue // no release: a static upstream has no @latest for it
		}
		p = modPath(path, "@latest")
		got[p] = mustGet(t, e.url(p))
	}
	// Sanity: zips are the fixture's.
	for _, mv := range allVersions {
		if string(got[vPath(mv.path, mv.version, "zip")]) != string(e.fixture(mv.path, mv.version, "zip")) {
			t.Fatalf("%s@%s: zip differs from the fixture", mv.path, mv.version)
		}
	}
	return got
}

// checkServedOffline checks that every warmed-up answer is served again,
// byte for byte, without modgate asking the upstream anything.
func checkServedOffline(t *testing.T, e *env, want map[string][]byte) {
	t.Helper()
	before := e.up.Total()
	for p, body := range want {
		r := get(t, e.url(p))
		if r.Status != http.StatusOK {
			t.Errorf("GET %s with the upstream down: %v, want 200", p, r)
			continue
		}
		if string(r.Body) != string(body) {
			t.Errorf("GET %s with the upstream down: body %q, want %q", p, abbrev(r.Body), abbrev(body))
		}
	}
	if n := e.up.Total() - before; n != 0 {
		t.Errorf("serving cached, fresh answers made %d upstream requests, want 0", n)
	}
}

func abbrev(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// checkUncachedFails checks that what was never fetched fails with a
// one-line reason naming the upstream while it is down.
func checkUncachedFails(t *testing.T, e *env) {
	t.Helper()
	for _, p := range []string{
		"/example.com/nosuch/@v/list",
		"/example.com/nosuch/@latest",
		"/example.com/nosuch/@v/v1.0.0.info",
		"/example.com/nosuch/@v/v1.0.0.mod",
		"/example.com/nosuch/@v/v1.0.0.zip",
		"/example.com/nosuch/@v/main.info",
		vPath("example.com/m/v2", "v2.0.0", "info"), // a known module, a version never fetched
		vPath("example.com/m/v2", "v2.0.0", "mod"),
		vPath("example.com/m/v2", "v2.0.0", "zip"),
	} {
		r := get(t, e.url(p))
		checkErrorBody(t, "uncached "+p+" with the upstream down", r, http.StatusBadGateway, http.StatusGatewayTimeout)
		if !strings.Contains(string(r.Body), e.up.URL()) {
			t.Errorf("uncached %s: error %q does not name the upstream %s", p, r.Body, e.up.URL())
		}
	}
}

// TestUpstreamDown checks that everything fetched once is served while the
// upstream is down, also after a restart of modgate, and that the rest
// fails clearly.
func TestUpstreamDown(t *testing.T) {
	e := newStdEnv(t)
	want := warmUp(t, e)
	if v := parseInfo(t, want["/example.com/m/@latest"]).Version; v != "v1.1.0" {
		t.Fatalf("example.com/m@latest = %s during warm-up", v)
	}

	e.up.SetDown(true)
	checkServedOffline(t, e, want)
	checkUncachedFails(t, e)

	// Restart with the upstream still down: storage is all there is.
	e.restart()
	checkServedOffline(t, e, want)
	checkUncachedFails(t, e)

	// The go command, with an empty module cache, downloads everything it
	// got before.
	work := t.TempDir()
	var args []string
	for _, mv := range allVersions {
		args = append(args, mv.path+"@"+mv.version)
	}
	out := mustGo(t, work, goEnv(work, e.proc.URL), append([]string{"mod", "download", "-json"}, args...)...)
	dec := json.NewDecoder(strings.NewReader(out))
	n := 0
	for {
		var d struct{ Path, Version, Error, Sum string }
		if err := dec.Decode(&d); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		if d.Error != "" || d.Sum != h1Zip(t, e.fixture(d.Path, d.Version, "zip")) {
			t.Errorf("go mod download %s@%s offline: error %q, sum %s", d.Path, d.Version, d.Error, d.Sum)
		}
	}
	if n != len(allVersions) {
		t.Errorf("go mod download reported %d modules, want %d", n, len(allVersions))
	}
}

// TestUpstreamDownStaleMutable is TestUpstreamDown for answers that went
// stale: with a tiny list TTL, lists and @latest must still be served from
// storage after a restart with the upstream down (stale-if-error).
func TestUpstreamDownStaleMutable(t *testing.T) {
	e := newStdEnv(t, "--list-ttl", "1ms", "--negative-ttl", "1ms")
	want := map[string][]byte{}
	for _, p := range []string{
		modPath("example.com/m", "@v/list"), modPath("example.com/m", "@latest"),
		modPath("example.com/Upper/Mod", "@v/list"), modPath("example.com/Upper/Mod", "@latest"),
		modPath("example.com/pre", "@v/list"), modPath("example.com/pre", "@latest"),
	} {
		want[p] = mustGet(t, e.url(p))
	}
	e.up.SetDown(true)
	e.restart()
	for p, body := range want {
		r := get(t, e.url(p))
		if r.Status != http.StatusOK || string(r.Body) != string(body) {
			t.Errorf("stale %s with the upstream down after restart: %v, want 200 %q", p, r, body)
		}
	}
}

// TestUpstreamUnreachable checks the answer when nothing listens at the
// upstream address: a prompt 502/504 naming the upstream.
func TestUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	p := testenv.Start(t, "--data-dir", t.TempDir(), "--upstream", dead)
	for _, u := range []string{"/example.com/m/@v/list", "/example.com/m/@v/v1.0.0.zip", "/example.com/m/@latest"} {
		start := time.Now()
		r := get(t, p.URL+u)
		checkErrorBody(t, u+" with the upstream unreachable", r, http.StatusBadGateway, http.StatusGatewayTimeout)
		if !strings.Contains(string(r.Body), dead) {
			t.Errorf("%s: reason %q does not name the upstream %s", u, r.Body, dead)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: took %v with the upstream refusing connections", u, d)
		}
	}
}

// TestUpstreamHangs checks --fetch-timeout: an upstream that accepts the
// request but never answers gets a 504 once the timeout passes, and the
// request does not hang.
func TestUpstreamHangs(t *testing.T) {
	e := newStdEnv(t, "--fetch-timeout", "1s")
	e.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
		return true
	})
	for _, u := range []string{vPath("example.com/m", "v1.0.0", "zip"), vPath("example.com/m", "v1.0.0", "info"), "/example.com/m/@v/list"} {
		start := time.Now()
		r := get(t, e.url(u))
		d := time.Since(start)
		checkErrorBody(t, u+" with a hung upstream", r, http.StatusGatewayTimeout)
		if d < 900*time.Millisecond || d > 10*time.Second {
			t.Errorf("%s with a hung upstream answered after %v, want about the 1s --fetch-timeout", u, d)
		}
	}
	e.assertNothingStored("example.com/m", "v1.0.0")
	// Once the upstream answers again, so does modgate.
	e.up.SetHook(nil)
	if got := mustGet(t, e.url(vPath("example.com/m", "v1.0.0", "zip"))); !bytes.Equal(got, e.fixture("example.com/m", "v1.0.0", "zip")) {
		t.Errorf("zip after the upstream recovered differs from the fixture")
	}
}
