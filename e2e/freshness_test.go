package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

func freshModules(versions ...string) []testenv.Module {
	var mods []testenv.Module
	for _, v := range versions {
		mods = append(mods, testenv.Module{Path: "example.com/fresh", Version: v, Files: goFile("fresh", v)})
	}
	return mods
}

// holdUpstream makes the fixture upstream hold every request for urlPath
// until release is called (or the request is canceled). While it is held a
// fetch is in flight for as long as the test needs, so the test can check
// what modgate does meanwhile without guessing how long anything takes.
// release is idempotent and also runs at cleanup, before the upstream and
// modgate are stopped.
func holdUpstream(t *testing.T, e *env, urlPath string) (release func()) {
	t.Helper()
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	e.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != urlPath {
			return false
		}
		select {
		case <-ch:
			return false // answer from the tree
		case <-r.Context().Done():
			return true
		}
	})
	return release
}

// answerDeadline bounds the wait for an answer that modgate must give
// without waiting for its upstream, while the test holds the upstream. It
// is not a performance target: it turns a server that waits for the held
// upstream into a clear failure instead of a hang, and is generous so that
// a loaded machine running -race never trips it.
const answerDeadline = 30 * time.Second

// getWithin GETs u, giving up after d.
func getWithin(u string, d time.Duration) (response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return tryDoContext(ctx, http.MethodGet, u)
}

// getPromptly GETs u and fails, saying why an answer was due, unless one
// comes within answerDeadline.
func getPromptly(t testing.TB, u, why string) response {
	t.Helper()
	r, err := getWithin(u, answerDeadline)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GET %s: no answer in %v while the upstream was held: %s", u, answerDeadline, why)
	}
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return r
}

// metricNow scrapes /metrics and returns the sum of the samples of metric
// whose labels include labels (`name="value"`); 0 if there are none.
func (e *env) metricNow(metric string, labels ...string) float64 {
	e.t.Helper()
	v, _ := metricValue(string(mustGet(e.t, e.url("/metrics"))), metric, labels...)
	return v
}

// eventually is waitFor with the deadline used for every wait on
// something modgate does in the background: generous, because a deadline
// that trips on a slow machine is a false failure, while a passing wait
// costs only the time the event takes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitFor(t, 60*time.Second, what, cond)
}

// TestListFreshWithinTTL checks that within --list-ttl @v/list and @latest
// are answered from the cache: a version published upstream meanwhile does
// not show, and the upstream is not asked. The TTL is an hour so that no
// machine is slow enough to let it pass during the test.
func TestListFreshWithinTTL(t *testing.T) {
	e := newEnv(t, freshModules("v1.0.0"), "--list-ttl", "1h")
	listURL := e.url("/example.com/fresh/@v/list")
	latestURL := e.url("/example.com/fresh/@latest")
	if got := string(mustGet(t, listURL)); got != "v1.0.0\n" {
		t.Fatalf("initial list %q", got)
	}
	if v := parseInfo(t, mustGet(t, latestURL)).Version; v != "v1.0.0" {
		t.Fatalf("initial @latest %s", v)
	}

	testenv.BuildTree(t, e.tree, freshModules("v1.0.0", "v1.1.0"))
	listN, latestN := e.up.Count("/example.com/fresh/@v/list"), e.up.Count("/example.com/fresh/@latest")
	for i := 0; i < 5; i++ {
		if got := string(mustGet(t, listURL)); got != "v1.0.0\n" {
			t.Fatalf("list within the TTL = %q, want the cached v1.0.0", got)
		}
		if v := parseInfo(t, mustGet(t, latestURL)).Version; v != "v1.0.0" {
			t.Fatalf("@latest within the TTL = %s, want the cached v1.0.0", v)
		}
	}
	if n := e.up.Count("/example.com/fresh/@v/list") - listN; n != 0 {
		t.Errorf("list within the TTL reached the upstream %d times", n)
	}
	if n := e.up.Count("/example.com/fresh/@latest") - latestN; n != 0 {
		t.Errorf("@latest within the TTL reached the upstream %d times", n)
	}
}

// TestListFreshness checks --list-ttl: a version published upstream shows
// in @v/list and @latest once the TTL has passed; a stale list is answered
// at once while it is refreshed in the background (stale-while-revalidate);
// and a stale list is still served when the upstream is down
// (stale-if-error). What is served within the TTL is TestListFreshWithinTTL's.
//
// No step waits for a guessed time: a step that needs the TTL to pass asks
// until modgate's answer (or its upstream's request log) shows that it
// has, and a step that needs a refresh in flight holds the upstream.
func TestListFreshness(t *testing.T) {
	const ttl = time.Second
	const listPath, latestPath = "/example.com/fresh/@v/list", "/example.com/fresh/@latest"
	e := newEnv(t, freshModules("v1.0.0"), "--list-ttl", ttl.String())
	listURL, latestURL := e.url(listPath), e.url(latestPath)

	if got := string(mustGet(t, listURL)); got != "v1.0.0\n" {
		t.Fatalf("initial list %q", got)
	}
	if v := parseInfo(t, mustGet(t, latestURL)).Version; v != "v1.0.0" {
		t.Fatalf("initial @latest %s", v)
	}

	// Publish v1.1.0 upstream: after the TTL it appears (the first
	// request after the TTL may still get the old list).
	testenv.BuildTree(t, e.tree, freshModules("v1.0.0", "v1.1.0"))
	eventually(t, "v1.1.0 in @v/list", func() bool {
		return string(mustGet(t, listURL)) == "v1.0.0\nv1.1.0\n"
	})
	eventually(t, "v1.1.0 as @latest", func() bool {
		return parseInfo(t, mustGet(t, latestURL)).Version == "v1.1.0"
	})

	// Stale-while-revalidate: publish v1.2.0 and hold the upstream's list.
	// Ask until the cached list has gone stale and its refresh has
	// reached the upstream; every answer meanwhile must come at once,
	// with the previous list, though the upstream answers nothing.
	//
	// v1.3.0-rc.1 is published too and never fetched (@latest prefers the
	// release v1.2.0): a list made from stored files alone would lack it,
	// so the stale-if-error step below can tell the last good list from
	// such a fallback.
	const lastList = "v1.0.0\nv1.1.0\nv1.2.0\nv1.3.0-rc.1\n"
	testenv.BuildTree(t, e.tree, freshModules("v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0-rc.1"))
	release := holdUpstream(t, e, listPath)
	before := e.up.Count(listPath)
	eventually(t, "the stale list's background refresh to reach the upstream", func() bool {
		r := getPromptly(t, listURL, "a stale list must be answered from the cache, not after the upstream")
		if r.Status != http.StatusOK || string(r.Body) != "v1.0.0\nv1.1.0\n" {
			t.Fatalf("list while its refresh is held upstream: %v, want the previous list", r)
		}
		return e.up.Count(listPath) > before
	})
	release()
	eventually(t, "v1.2.0 in @v/list after the held refresh", func() bool {
		return string(mustGet(t, listURL)) == lastList
	})
	e.up.SetHook(nil)
	eventually(t, "v1.2.0 as @latest", func() bool {
		return parseInfo(t, mustGet(t, latestURL)).Version == "v1.2.0"
	})

	// Stale-if-error: the upstream goes down. Ask until the list has gone
	// stale and its refresh has failed against the upstream (its request
	// log and modgate's fetch metrics show both); every answer, before and
	// after, is the last good one, and so is @latest. (The fixture has no
	// @latest of its own, so modgate's @latest comes from the list.)
	e.up.SetDown(true)
	check := func(when string) {
		t.Helper()
		r := get(t, listURL)
		if r.Status != http.StatusOK || string(r.Body) != lastList {
			t.Fatalf("list with the upstream down, %s: %v, want the last good list %q", when, r, lastList)
		}
		r = get(t, latestURL)
		if r.Status != http.StatusOK || parseInfo(t, r.Body).Version != "v1.2.0" {
			t.Fatalf("@latest with the upstream down, %s: %v, want v1.2.0", when, r)
		}
	}
	asked := e.up.Count(listPath)
	fetches := e.metricNow("modgate_upstream_fetches_total", `kind="list"`, `outcome="error"`)
	eventually(t, "the stale list to be refreshed against the down upstream", func() bool {
		check("while stale")
		return e.up.Count(listPath) > asked
	})
	eventually(t, "the failed list refresh to end", func() bool {
		return e.metricNow("modgate_upstream_fetches_total", `kind="list"`, `outcome="error"`) > fetches
	})
	for i := 0; i < 3; i++ {
		check("after a failed refresh")
	}
}

// TestNegativeCaching checks --negative-ttl: a missing module asked many
// times within the TTL reaches the upstream once per file (expiry is
// TestNegativeCacheExpires's). The TTL is an hour so that no machine is
// slow enough to let it pass during the test.
func TestNegativeCaching(t *testing.T) {
	e := newEnv(t, freshModules("v1.0.0"), "--negative-ttl", "1h")
	paths := []string{
		"/example.com/missing/@v/list",
		"/example.com/missing/@v/v1.0.0.info",
		"/example.com/missing/@v/v1.0.0.mod",
		"/example.com/missing/@v/v1.0.0.zip",
		"/example.com/missing/@v/main.info",
		"/example.com/fresh/@v/v1.9.9.zip", // a missing version of a known module
	}
	for i := 0; i < 20; i++ {
		for _, p := range paths {
			r := get(t, e.url(p))
			checkErrorBody(t, p, r, http.StatusNotFound)
		}
	}
	for _, p := range paths {
		if n := e.up.Count(p); n != 1 {
			t.Errorf("%s asked 20 times: reached the upstream %d times, want 1", p, n)
		}
	}

	// Missing @latest: one @latest and one list request upstream.
	for i := 0; i < 20; i++ {
		checkErrorBody(t, "missing @latest", get(t, e.url("/example.com/missing2/@latest")), http.StatusNotFound)
	}
	if n := e.up.Count("/example.com/missing2/@latest"); n != 1 {
		t.Errorf("missing @latest asked 20 times: upstream @latest reached %d times, want 1", n)
	}
	if n := e.up.Count("/example.com/missing2/@v/list"); n > 1 {
		t.Errorf("missing @latest asked 20 times: upstream list reached %d times, want at most 1", n)
	}
}

// TestNegativeCacheExpires checks that a not-found answer is forgotten after
// --negative-ttl, so a module published meanwhile is found.
func TestNegativeCacheExpires(t *testing.T) {
	e := newEnv(t, freshModules("v1.0.0"), "--negative-ttl", "1s")
	const p = "/example.com/fresh/@v/v1.1.0.zip"
	const lp = "/example.com/late/@v/list"
	checkErrorBody(t, p, get(t, e.url(p)), http.StatusNotFound)
	checkErrorBody(t, lp, get(t, e.url(lp)), http.StatusNotFound)
	testenv.BuildTree(t, e.tree, append(freshModules("v1.0.0", "v1.1.0"),
		testenv.Module{Path: "example.com/late", Version: "v0.1.0", Files: goFile("late", "v0.1.0")}))
	eventually(t, "the published zip to be found after the negative TTL", func() bool {
		return get(t, e.url(p)).Status == http.StatusOK
	})
	eventually(t, "the published module's list after the negative TTL", func() bool {
		return strings.TrimSpace(string(get(t, e.url(lp)).Body)) == "v0.1.0"
	})
	if n := e.up.Count(p); n < 2 {
		t.Errorf("zip reached the upstream %d times", n)
	}
	if got := mustGet(t, e.url(p)); string(got) != string(e.fixture("example.com/fresh", "v1.1.0", "zip")) {
		t.Errorf("zip differs from the fixture")
	}
}

// TestStaleRefreshSingleFlight checks that many requests for a stale list
// while its refresh is in flight are all answered at once from the cache
// and add no upstream request: one background refresh, not one each.
//
// The refresh is held at the upstream for the whole burst, so the count is
// taken while no second refresh could have been started by the first one
// ending. (A server that started a separate refresh per request would show
// up as more than one held request, unless such a refresh had not yet been
// sent when the count was taken: from outside the process nothing says when
// every refresh it started has been sent. An exact count needs the cache's
// own wait for its background work, so it belongs in internal/cache's unit
// tests.)
func TestStaleRefreshSingleFlight(t *testing.T) {
	const ttl = 500 * time.Millisecond
	const listPath = "/example.com/fresh/@v/list"
	e := newEnv(t, freshModules("v1.0.0"), "--list-ttl", ttl.String())
	listURL := e.url(listPath)
	mustGet(t, listURL)

	testenv.BuildTree(t, e.tree, freshModules("v1.0.0", "v1.1.0"))
	release := holdUpstream(t, e, listPath)
	before := e.up.Count(listPath)
	eventually(t, "the stale list's background refresh to reach the upstream", func() bool {
		r := getPromptly(t, listURL, "a stale list must be answered from the cache, not after the upstream")
		if r.Status != http.StatusOK || string(r.Body) != "v1.0.0\n" {
			t.Fatalf("stale list: %v", r)
		}
		return e.up.Count(listPath) > before
	})

	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := getWithin(listURL, answerDeadline)
			if err != nil || r.Status != http.StatusOK || string(r.Body) != "v1.0.0\n" {
				t.Errorf("stale list while its refresh is held upstream: %v %v; want the cached list at once", r, err)
			}
		}()
	}
	wg.Wait()
	if n := e.up.Count(listPath) - before; n != 1 {
		t.Errorf("50 requests for a stale list while it was being refreshed made %d upstream list requests, want 1", n)
	}

	// The held refresh, once answered, is what is served.
	release()
	eventually(t, "the refreshed list", func() bool {
		return string(mustGet(t, listURL)) == "v1.0.0\nv1.1.0\n"
	})
}
