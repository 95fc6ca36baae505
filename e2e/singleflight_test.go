package e2e

import (
	"bytes"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowHook delays the upstream's answer for urlPath by d, then lets the
// tree answer; started is closed when the first such request arrives.
func slowHook(urlPath string, d time.Duration, started chan struct{}) func(http.ResponseWriter, *http.Request) bool {
	var once sync.Once
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != urlPath {
			return false
		}
		if started != nil {
			once.Do(func() { close(started) })
		}
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return true
		}
		return false
	}
}

// TestZipSingleFlight checks that 100 concurrent requests for one uncached
// zip make exactly one upstream request and all get the full zip.
func TestZipSingleFlight(t *testing.T) {
	e := newStdEnv(t)
	const path, version = "example.com/m/v2", "v2.1.0"
	want := e.fixture(path, version, "zip")
	up := upPath(path, version, "zip")
	e.up.SetHook(slowHook(up, 500*time.Millisecond, nil))

	const n = 100
	var (
		wg      sync.WaitGroup
		ok      atomic.Int32
		start   = make(chan struct{})
		errOnce sync.Once
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
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
	close(start)
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
func TestZipFirstClientHangsUp(t *testing.T) {
	e := newStdEnv(t)
	const path, version = "example.com/m/nested/sub", "v0.1.0"
	want := e.fixture(path, version, "zip")
	up := upPath(path, version, "zip")
	started := make(chan struct{})
	e.up.SetHook(slowHook(up, 800*time.Millisecond, started))

	// The first client gives up after 200ms.
	impatient := &http.Client{Timeout: 200 * time.Millisecond}
	firstDone := make(chan struct{})
	go func() {
		defer close(firstDone)
		if resp, err := impatient.Get(e.url(vPath(path, version, "zip"))); err == nil {
			resp.Body.Close()
			t.Errorf("the impatient client got an answer (%d) before its timeout", resp.StatusCode)
		}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the fetch never started")
	}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := tryDo(http.MethodGet, e.url(vPath(path, version, "zip")))
			if err != nil || r.Status != http.StatusOK || !bytes.Equal(r.Body, want) {
				t.Errorf("patient client: %v %v", r, err)
			}
		}()
	}
	wg.Wait()
	<-firstDone
	if n := e.up.Count(up); n != 1 {
		t.Errorf("upstream asked %d times for the zip, want 1", n)
	}
}
