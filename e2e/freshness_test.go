package e2e

import (
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

// TestListFreshness checks --list-ttl: a version published upstream shows
// in @v/list and @latest once the TTL has passed; a stale list is answered
// at once while it is refreshed in the background (stale-while-revalidate);
// and a stale list is still served when the upstream is down
// (stale-if-error).
func TestListFreshness(t *testing.T) {
	const ttl = time.Second
	e := newEnv(t, freshModules("v1.0.0"), "--list-ttl", ttl.String())
	listURL := e.url("/example.com/fresh/@v/list")
	latestURL := e.url("/example.com/fresh/@latest")

	first := time.Now()
	if got := string(mustGet(t, listURL)); got != "v1.0.0\n" {
		t.Fatalf("initial list %q", got)
	}
	if v := parseInfo(t, mustGet(t, latestURL)).Version; v != "v1.0.0" {
		t.Fatalf("initial @latest %s", v)
	}

	// Publish v1.1.0 upstream.
	testenv.BuildTree(t, e.tree, freshModules("v1.0.0", "v1.1.0"))
	upCount := e.up.Count("/example.com/fresh/@v/list")
	got := string(mustGet(t, listURL))
	if time.Since(first) < ttl*8/10 {
		// Still fresh: served from the cache without asking upstream.
		if got != "v1.0.0\n" {
			t.Errorf("list within the TTL = %q, want the cached v1.0.0", got)
		}
		if n := e.up.Count("/example.com/fresh/@v/list"); n != upCount {
			t.Errorf("list within the TTL reached the upstream (%d requests)", n-upCount)
		}
	}

	// After the TTL the new version appears; the first request after the
	// TTL may still get the old list.
	waitFor(t, 15*time.Second, "v1.1.0 in @v/list", func() bool {
		return string(mustGet(t, listURL)) == "v1.0.0\nv1.1.0\n"
	})
	waitFor(t, 15*time.Second, "v1.1.0 as @latest", func() bool {
		return parseInfo(t, mustGet(t, latestURL)).Version == "v1.1.0"
	})

	// Stale-while-revalidate: with a slow upstream, a stale list is
	// answered at once (not after the upstream's 2s), then replaced.
	testenv.BuildTree(t, e.tree, freshModules("v1.0.0", "v1.1.0", "v1.2.0"))
	e.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/example.com/fresh/@v/list" {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
		return false
	})
	time.Sleep(ttl + 200*time.Millisecond) // let the cached list go stale
	start := time.Now()
	got = string(mustGet(t, listURL))
	if d := time.Since(start); d > time.Second {
		t.Errorf("a stale list took %v to answer; stale-while-revalidate should answer at once", d)
	}
	if got != "v1.0.0\nv1.1.0\n" {
		t.Errorf("stale list = %q, want the previous list", got)
	}
	waitFor(t, 15*time.Second, "v1.2.0 in @v/list after the slow refresh", func() bool {
		return string(mustGet(t, listURL)) == "v1.0.0\nv1.1.0\nv1.2.0\n"
	})
	e.up.SetHook(nil)
	if v := parseInfo(t, mustGet(t, latestURL)).Version; v != "v1.2.0" {
		t.Fatalf("@latest after v1.2.0 was listed = %s", v)
	}

	// Stale-if-error: the upstream goes down; once the list is stale it is
	// still served, and so is @latest.
	e.up.SetDown(true)
	time.Sleep(ttl + 200*time.Millisecond)
	for i := 0; i < 5; i++ {
		r := get(t, listURL)
		if r.Status != http.StatusOK || string(r.Body) != "v1.0.0\nv1.1.0\nv1.2.0\n" {
			t.Fatalf("stale list with the upstream down (try %d): %v", i, r)
		}
		r = get(t, latestURL)
		if r.Status != http.StatusOK || parseInfo(t, r.Body).Version != "v1.2.0" {
			t.Fatalf("stale @latest with the upstream down (try %d): %v", i, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNegativeCaching checks --negative-ttl: a missing module asked many
// times within the TTL reaches the upstream once per file; after the TTL it
// is asked again.
func TestNegativeCaching(t *testing.T) {
	e := newEnv(t, freshModules("v1.0.0"), "--negative-ttl", "1m")
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
	waitFor(t, 15*time.Second, "the published zip to be found after the negative TTL", func() bool {
		return get(t, e.url(p)).Status == http.StatusOK
	})
	waitFor(t, 15*time.Second, "the published module's list after the negative TTL", func() bool {
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
// while the upstream is slow trigger one background refresh, not one each.
func TestStaleRefreshSingleFlight(t *testing.T) {
	const ttl = 500 * time.Millisecond
	e := newEnv(t, freshModules("v1.0.0"), "--list-ttl", ttl.String())
	listURL := e.url("/example.com/fresh/@v/list")
	mustGet(t, listURL)
	e.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/example.com/fresh/@v/list" {
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
		}
		return false
	})
	time.Sleep(ttl + 200*time.Millisecond) // let the cached list go stale
	before := e.up.Count("/example.com/fresh/@v/list")
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := tryDo(http.MethodGet, listURL)
			if err != nil || r.Status != http.StatusOK || string(r.Body) != "v1.0.0\n" {
				t.Errorf("stale list: %v %v", r, err)
			}
		}()
	}
	wg.Wait()
	// Wait until the refresh is over (the list is fresh again), then count.
	waitFor(t, 10*time.Second, "the background refresh to reach the upstream", func() bool {
		return e.up.Count("/example.com/fresh/@v/list") > before
	})
	time.Sleep(1500 * time.Millisecond) // any further refresh started by the burst would have reached the upstream by now
	if n := e.up.Count("/example.com/fresh/@v/list") - before; n != 1 {
		t.Errorf("50 requests for a stale list made %d upstream list requests, want 1", n)
	}
}
