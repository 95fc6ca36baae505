package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// TestZipSingleFlight checks that 100 concurrent requests for one uncached
// zip make exactly one upstream request and all get the full zip.
//
// The upstream holds the zip until all 100 requests have missed the cache
// (modgate's cache metrics count them), so every one of them is waiting on
// the fetch when it completes: on a slow machine, late requests cannot turn
// the test into one of serving a stored zip.
func TestZipSingleFlight(t *testing.T) {
	e := newStdEnv(t)
	const path, version = "example.com/m/v2", "v2.1.0"
	want := e.fixture(path, version, "zip")
	up := upPath(path, version, "zip")
	release := holdUpstream(t, e, up)
	misses := e.metricNow("modgate_cache_requests_total", `kind="zip"`, `result="miss"`)

	const n = 100
	var (
		wg      sync.WaitGroup
		ok      atomic.Int32
		errOnce sync.Once
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := tryDo(http.MethodGet, e.url(vPath(path, version, "zip")))
			switch {
			case err != nil:
				errOnce.Do(func() { t.Errorf("GET zip: %v", err) })
			case r.Status != http.StatusOK:
				errOnce.Do(func() { t.Errorf("GET zip: %v", r) })
			case !bytes.Equal(r.Body, want):
				errOnce.Do(func() { t.Errorf("GET zip: %d bytes differing from the %d-byte fixture", len(r.Body), len(want)) })
			default:
				ok.Add(1)
			}
		}()
	}
	eventually(t, "all requests to miss the cache and wait on the held fetch", func() bool {
		return e.metricNow("modgate_cache_requests_total", `kind="zip"`, `result="miss"`)-misses >= n
	})
	if c := e.up.Count(up); c != 1 {
		t.Errorf("%d requests waiting on an uncached zip made %d upstream requests, want 1", n, c)
	}
	release()
	wg.Wait()
	if got := ok.Load(); got != n {
		t.Errorf("%d of %d concurrent requests got the full zip", got, n)
	}
	if c := e.up.Count(up); c != 1 {
		t.Errorf("%d concurrent requests for an uncached zip made %d upstream requests, want 1", n, c)
	}
	// And it is served from storage afterwards.
	if got := mustGet(t, e.url(vPath(path, version, "zip"))); !bytes.Equal(got, want) || e.up.Count(up) != 1 {
		t.Errorf("zip after the burst: equal %v, upstream requests %d", bytes.Equal(got, want), e.up.Count(up))
	}
}

// TestZipFirstClientHangsUp checks that when the client whose request
// started a fetch goes away, the fetch goes on for the others: they get the
// zip and the upstream is asked once.
//
// The upstream holds the zip until the first client has hung up and modgate
// has noticed (it counts a 499 answer), and until the other clients are
// waiting on the same fetch (they have missed the cache), so each step
// happens in that order whatever the machine's speed.
func TestZipFirstClientHangsUp(t *testing.T) {
	e := newStdEnv(t)
	const path, version = "example.com/m/nested/sub", "v0.1.0"
	zipURL := e.url(vPath(path, version, "zip"))
	want := e.fixture(path, version, "zip")
	up := upPath(path, version, "zip")
	release := holdUpstream(t, e, up)
	canceled := e.metricNow("modgate_http_requests_total", `endpoint="zip"`, `code="499"`)
	misses := e.metricNow("modgate_cache_requests_total", `kind="zip"`, `result="miss"`)

	// The first client hangs up once its request has started the fetch.
	ctx, hangUp := context.WithCancel(context.Background())
	defer hangUp()
	firstDone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, zipURL, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("the first client got an answer (%d) while the upstream held the zip", resp.StatusCode)
		} else {
			err = nil
		}
		firstDone <- err
	}()
	eventually(t, "the first client's fetch to reach the upstream", func() bool { return e.up.Count(up) > 0 })
	hangUp()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	eventually(t, "modgate to see the first client hang up", func() bool {
		return e.metricNow("modgate_http_requests_total", `endpoint="zip"`, `code="499"`) > canceled
	})

	const patient = 10
	var wg sync.WaitGroup
	for i := 0; i < patient; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := tryDo(http.MethodGet, zipURL)
			if err != nil || r.Status != http.StatusOK || !bytes.Equal(r.Body, want) {
				t.Errorf("patient client: %v %v", r, err)
			}
		}()
	}
	eventually(t, "the other clients to wait on the fetch", func() bool {
		return e.metricNow("modgate_cache_requests_total", `kind="zip"`, `result="miss"`)-misses >= 1+patient
	})
	release()
	wg.Wait()
	if n := e.up.Count(up); n != 1 {
		t.Errorf("upstream asked %d times for the zip, want 1", n)
	}
}
