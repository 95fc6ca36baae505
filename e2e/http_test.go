package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// maxAge returns the max-age of a Cache-Control value, or -1.
func maxAge(cc string) int {
	m := regexp.MustCompile(`max-age=(\d+)`).FindStringSubmatch(cc)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestHTTPHeaders checks content types, caching headers, HEAD, Range and
// conditional requests.
func TestHTTPHeaders(t *testing.T) {
	e := newStdEnv(t)
	const path, version = "example.com/Upper/Mod", "v1.0.0"
	zipURL := e.url(vPath(path, version, "zip"))
	want := e.fixture(path, version, "zip")

	// A Range request on an uncached zip: fetched, then the range served.
	r := get(t, zipURL, "Range", "bytes=10-99")
	if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, want[10:100]) {
		t.Errorf("Range bytes=10-99 on an uncached zip: %d, %d bytes, want 206 with 90 bytes", r.Status, len(r.Body))
	}
	if cr, w := r.Header.Get("Content-Range"), fmt.Sprintf("bytes 10-99/%d", len(want)); cr != w {
		t.Errorf("Content-Range %q, want %q", cr, w)
	}

	// Content types and caching, for each kind of answer.
	for _, tc := range []struct {
		urlPath, ctype string
		immutable      bool
	}{
		{vPath(path, version, "zip"), "application/zip", true},
		{vPath(path, version, "info"), "application/json", true},
		{vPath(path, version, "mod"), "text/plain", true},
		{modPath(path, "@v/list"), "text/plain", false},
		{modPath(path, "@latest"), "application/json", false},
	} {
		r := get(t, e.url(tc.urlPath))
		if r.Status != http.StatusOK {
			t.Errorf("GET %s: %v", tc.urlPath, r)
			continue
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.urlPath, ct, tc.ctype)
		}
		cc := r.Header.Get("Cache-Control")
		if tc.immutable {
			if !strings.Contains(cc, "immutable") || maxAge(cc) < 86400 {
				t.Errorf("GET %s: Cache-Control %q, want long-lived immutable", tc.urlPath, cc)
			}
			if _, err := http.ParseTime(r.Header.Get("Last-Modified")); err != nil {
				t.Errorf("GET %s: Last-Modified %q: %v", tc.urlPath, r.Header.Get("Last-Modified"), err)
			}
			if r.Header.Get("ETag") == "" {
				t.Errorf("GET %s: no ETag", tc.urlPath)
			}
		} else if strings.Contains(cc, "immutable") || maxAge(cc) < 0 || maxAge(cc) > 600 {
			t.Errorf("GET %s: Cache-Control %q, want a short max-age", tc.urlPath, cc)
		}
		if cl := r.Header.Get("Content-Length"); cl != strconv.Itoa(len(r.Body)) {
			t.Errorf("GET %s: Content-Length %q for a %d-byte body", tc.urlPath, cl, len(r.Body))
		}
	}

	// HEAD: the length, no body (read from the wire, not through a client
	// that knows HEAD has no body).
	status, hdr, rest := rawHead(t, e.proc.URL, vPath(path, version, "zip"))
	if status != http.StatusOK || hdr.Get("Content-Length") != strconv.Itoa(len(want)) || len(rest) != 0 {
		t.Errorf("HEAD zip: status %d, Content-Length %q (want %d), %d body bytes (want 0)", status, hdr.Get("Content-Length"), len(want), len(rest))
	}
	if ct := hdr.Get("Content-Type"); ct != "application/zip" {
		t.Errorf("HEAD zip: Content-Type %q", ct)
	}

	// Range on a cached zip, suffix range, unsatisfiable range.
	r = get(t, zipURL, "Range", "bytes=0-0")
	if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, want[:1]) {
		t.Errorf("Range bytes=0-0: %d %d bytes", r.Status, len(r.Body))
	}
	r = get(t, zipURL, "Range", "bytes=-22")
	if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, want[len(want)-22:]) {
		t.Errorf("Range bytes=-22: %d %d bytes", r.Status, len(r.Body))
	}
	r = get(t, zipURL, "Range", fmt.Sprintf("bytes=%d-", len(want)+100))
	if r.Status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable Range: %d, want 416", r.Status)
	}

	// Conditional requests.
	full := get(t, zipURL)
	etag, lastMod := full.Header.Get("ETag"), full.Header.Get("Last-Modified")
	if etag == "" || lastMod == "" {
		t.Fatalf("zip without ETag (%q) or Last-Modified (%q)", etag, lastMod)
	}
	r = get(t, zipURL, "If-None-Match", etag)
	if r.Status != http.StatusNotModified || len(r.Body) != 0 {
		t.Errorf("If-None-Match with the ETag: %d with %d bytes, want 304 empty", r.Status, len(r.Body))
	}
	r = get(t, zipURL, "If-None-Match", `"something-else"`)
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, want) {
		t.Errorf("If-None-Match with another ETag: %d, want 200 with the zip", r.Status)
	}
	r = get(t, zipURL, "If-Modified-Since", lastMod)
	if r.Status != http.StatusNotModified {
		t.Errorf("If-Modified-Since Last-Modified: %d, want 304", r.Status)
	}
	r = get(t, zipURL, "Range", "bytes=0-9", "If-Range", etag)
	if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, want[:10]) {
		t.Errorf("Range with a matching If-Range: %d, want 206", r.Status)
	}
	// The validator survives a restart (nothing was rewritten).
	e.restart()
	zipURL = e.url(vPath(path, version, "zip"))
	r = get(t, zipURL, "If-None-Match", etag)
	if r.Status != http.StatusNotModified {
		t.Errorf("If-None-Match after a restart: %d, want 304 (ETag now %q, was %q)", r.Status, get(t, zipURL).Header.Get("ETag"), etag)
	}
}

// rawHead sends a HEAD request with Connection: close and returns the
// status, the headers and every byte that followed them on the wire.
func rawHead(t *testing.T, base, urlPath string) (int, http.Header, []byte) {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "HEAD %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", urlPath, u.Host)
	all, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	head, rest, ok := bytes.Cut(all, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("HEAD %s: no end of headers in %q", urlPath, all)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(append(head, "\r\n\r\n"...))), &http.Request{Method: http.MethodHead})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header, rest
}

// metricValue sums the samples of metric whose labels include all of
// labels (`name="value"` strings).
func metricValue(text, metric string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// TestOpsEndpoints checks /healthz, /readyz and /metrics.
func TestOpsEndpoints(t *testing.T) {
	e := newStdEnv(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := get(t, e.url(p)); r.Status != http.StatusOK {
			t.Errorf("GET %s: %v", p, r)
		}
	}
	// Traffic: a miss, two hits, a list and a 404.
	zipURL := e.url(vPath("example.com/m", "v1.1.0", "zip"))
	for i := 0; i < 3; i++ {
		mustGet(t, zipURL)
	}
	mustGet(t, e.url("/example.com/m/@v/list"))
	checkErrorBody(t, "missing", get(t, e.url("/example.com/nosuch/@v/v1.0.0.zip")), http.StatusNotFound)

	r := get(t, e.url("/metrics"))
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: %v", r)
	}
	text := string(r.Body)
	for _, tc := range []struct {
		metric string
		labels []string
		min    float64
	}{
		{"modgate_http_requests_total", []string{`endpoint="zip"`, `code="200"`}, 3},
		{"modgate_http_requests_total", []string{`endpoint="zip"`, `code="404"`}, 1},
		{"modgate_http_requests_total", []string{`endpoint="list"`, `code="200"`}, 1},
		{"modgate_cache_requests_total", []string{`kind="zip"`, `result="hit"`}, 2},
		{"modgate_cache_requests_total", []string{`kind="zip"`, `result="miss"`}, 1},
		{"modgate_cache_requests_total", []string{`kind="list"`}, 1},
	} {
		v, ok := metricValue(text, tc.metric, tc.labels...)
		if !ok || v < tc.min {
			t.Errorf("%s%v = %v (found %v), want >= %v", tc.metric, tc.labels, v, ok, tc.min)
		}
	}
}

// TestRequestIDHeader: a client's X-Request-Id is echoed and logged only
// when it is short and made of [A-Za-z0-9._-]; anything else is replaced by
// an id of modgate's own, and never reaches the logs.
func TestRequestIDHeader(t *testing.T) {
	e := newStdEnv(t, "--log-level", "debug")
	ok := "ci-build.42_" + strings.Repeat("x", 52) // 64 bytes
	r := get(t, e.url("/healthz"), "X-Request-Id", ok)
	if got := r.Header.Get("X-Request-Id"); got != ok {
		t.Errorf("X-Request-Id %q answered with %q, want it echoed", ok, got)
	}
	for _, bad := range []string{
		ok + "y", // 65 bytes
		`x" status=200 forged="1`,
		"spaces are not allowed",
		"tab\there",
		"ünicode",
		"semi;colon",
	} {
		r := get(t, e.url("/healthz"), "X-Request-Id", bad)
		got := r.Header.Get("X-Request-Id")
		if got == bad || got == "" || !regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`).MatchString(got) {
			t.Errorf("X-Request-Id %q answered with %q, want a fresh safe id", bad, got)
		}
	}
	// The ids that were sent back were logged; the refused ones were not.
	client.CloseIdleConnections()
	e.proc.Stop(t)
	logs := e.proc.Logs()
	if !strings.Contains(logs, ok) {
		t.Errorf("the accepted id %q is not in the logs", ok)
	}
	for _, s := range []string{"forged", "spaces are", "semi;colon", ok + "y"} {
		if strings.Contains(logs, s) {
			t.Errorf("the refused id containing %q reached the logs", s)
		}
	}
}
