package e2e

import (
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestUpstreamRateLimit checks --upstream-rate and --upstream-burst: lookups
// of things modgate does not have are limited per client, answered 429 with
// Retry-After and a one-line reason; stored files are served regardless.
func TestUpstreamRateLimit(t *testing.T) {
	e := newStdEnv(t, "--upstream-rate", "1", "--upstream-burst", "2")
	stored := e.url(vPath("example.com/m", "v1.0.0", "info"))
	mustGet(t, stored) // found: its token is given back

	start := time.Now()
	var found, limited int
	for i := range 10 {
		r := get(t, e.url(vPath("example.com/m", fmt.Sprintf("v1.9.%d", i), "info")))
		switch r.Status {
		case http.StatusNotFound:
			found++
		case http.StatusTooManyRequests:
			limited++
			checkErrorBody(t, "over the limit", r, http.StatusTooManyRequests)
			if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("429 with Retry-After %q, want a number of seconds", r.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("missing version: %v, want 404 or 429", r)
		}
	}
	// Two at once, then one per second: whatever the machine's speed, at
	// most 2 + elapsed seconds lookups got through.
	elapsed := time.Since(start)
	if max := 2 + int(math.Ceil(elapsed.Seconds())); found > max {
		t.Errorf("%d lookups reached the upstream in %v with rate 1 and burst 2, want at most %d", found, elapsed, max)
	}
	if elapsed < 7*time.Second && limited == 0 {
		t.Errorf("10 lookups in %v were never limited", elapsed)
	}
	if r := get(t, stored); r.Status != http.StatusOK {
		t.Errorf("stored file while limited: %v", r)
	}
}

// TestMissesStoreNothing checks, on the binary with its defaults, that
// requests for things that do not exist leave the data directory as it was.
func TestMissesStoreNothing(t *testing.T) {
	e := newStdEnv(t, "--upstream-rate", "0")
	mustGet(t, e.url(modPath("example.com/m", "@v/list")))
	mustGet(t, e.url(vPath("example.com/m", "v1.0.0", "zip")))
	e.waitZipHashed(t, "example.com/m", "v1.0.0")
	before := walkDir(t, e.dataDir)
	for i := range 300 {
		mod := fmt.Sprintf("example.com/gone%d", i)
		for _, p := range []string{
			modPath(mod, "@v/list"), modPath(mod, "@latest"), vPath(mod, "v1.0.0", "info"),
			modPath(mod, "@v/main.info"), modPath("example.com/m", fmt.Sprintf("@v/branch%d.info", i)),
			vPath("example.com/m", fmt.Sprintf("v1.8.%d", i), "zip"),
		} {
			if r := get(t, e.url(p)); r.Status != http.StatusNotFound {
				t.Fatalf("GET %s: %v, want 404", p, r)
			}
		}
	}
	// The usage record of the module that was served may be written
	// meanwhile (5 s after its first use); it is the only change allowed.
	served := filepath.Join(e.dataDir, "meta", "example.com", "m", "@", "access")
	unused := func(entries []string) []string {
		return slices.DeleteFunc(slices.Clone(entries), func(p string) bool { return p == served })
	}
	if after := walkDir(t, e.dataDir); !slices.Equal(unused(before), unused(after)) {
		t.Errorf("requests for missing modules changed the data dir:\nbefore %d entries, after %d", len(before), len(after))
	}
}

// walkDir lists every file and directory under dir.
func walkDir(t *testing.T, dir string) []string {
	t.Helper()
	var all []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		all = append(all, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}
