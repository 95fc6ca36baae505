package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// TestBadRequests sends malformed paths, versions and methods, exactly as
// written (no client-side cleaning), and checks each gets a 4xx with a
// one-line text/plain "modgate:" reason, never a 500, and never reaches
// the upstream.
func TestBadRequests(t *testing.T) {
	e := newStdEnv(t)
	for _, tc := range []struct {
		method, path string
		statuses     []int
	}{
		{"GET", "/%2e%2e/@v/list", []int{400, 404}},
		{"GET", "/../../etc/passwd", []int{400, 404}},
		{"GET", "/example.com/../../etc/passwd", []int{400, 404}},
		{"GET", "/example.com/Upper/@v/list", []int{400, 404}}, // uppercase must be !-escaped
		{"GET", "/example.com/m/@v/v1.0.0.zip/../x", []int{400, 404}},
		{"GET", "/example.com/m/@v/./v1.0.0.zip", []int{400, 404}},
		{"GET", "//example.com/m/@v/list", []int{400, 404}},
		{"GET", "/example.com/m/@v/notaversion!.mod", []int{400, 404}},
		{"GET", "/example.com/m/@v/v1.0.mod", []int{400, 404}}, // .mod of a non-canonical version
		{"GET", "/example.com/m/@v/v1.0.zip", []int{400, 404}}, // .zip of a non-canonical version
		{"GET", "/example.com/m/@v/v1.0.0+build.zip", []int{400, 404}},
		{"GET", "/example.com/m/@v/v2.0.0.mod", []int{400, 404}}, // v2 on a path without /v2
		{"GET", "/example.com/m/@v/v2.0.0.info", []int{400, 404}},
		{"GET", "/example.com/m/v2/@v/v1.0.0.zip", []int{400, 404}}, // v1 on a /v2 path
		{"GET", "/example.com/m/@v/V1.0.0.info", []int{400, 404}},
		{"GET", "/example.com/m/@v/..%2f..%2fx.info", []int{400, 404}},
		{"GET", "/example.com/m/@v/v1.0.0.info%00", []int{400, 404}},
		{"GET", "/example.com/m/@v/%ff.info", []int{400, 404}},
		{"GET", "/example.com/m/@v/.info", []int{400, 404}},
		{"GET", "/example.com/m/@v/", []int{400, 404}},
		{"GET", "/example.com/m/@v/v1.0.0.tar", []int{400, 404}},
		{"GET", "/example.com/m/@latest/x", []int{400, 404}},
		{"GET", "/@v/list", []int{400, 404}},
		{"GET", "/-example.com/m/@v/list", []int{400, 404}},
		{"GET", "/example.com/%20m/@v/list", []int{400, 404}},
		{"GET", "/" + strings.Repeat("a", 3000) + "/@v/list", []int{400, 404}},
		{"GET", "/example.com/m/@v/v1.0.0.0.zip", []int{400, 404}},
		{"POST", "/", []int{405}},
		{"GET", "/setup/../../etc/passwd", []int{400, 404}},
		{"GET", "*", []int{400}},
		{"CONNECT", "example.com:443", []int{400, 405}},
		{"GET", "http://example.com/example.com/m/@v/../x", []int{400, 404}},
		{"POST", "/example.com/m/@v/list", []int{405}},
		{"PUT", "/example.com/m/@v/v1.0.0.zip", []int{405}},
		{"DELETE", "/example.com/m/@v/v1.0.0.zip", []int{405}},
		{"POST", "/example.com/m/@latest", []int{405}},
	} {
		before := e.up.Total()
		r := rawRequest(t, e.proc.URL, tc.method, tc.path)
		what := tc.method + " " + abbrev([]byte(tc.path))
		if r.Status >= 500 {
			t.Errorf("%s: server error %v", what, r)
			continue
		}
		checkErrorBody(t, what, r, tc.statuses...)
		if n := e.up.Total() - before; n != 0 && r.Status != http.StatusNotFound {
			t.Errorf("%s: rejected request reached the upstream %d times", what, n)
		}
	}
	if files := e.storedUnder("."); len(files) != 0 {
		t.Errorf("bad requests stored files: %v", files)
	}
	// A browser at the root learns what this is and where to go.
	if r := get(t, e.url("/")); r.Status != 200 || !strings.Contains(string(r.Body), `href="/setup"`) {
		t.Errorf("GET /: %v, want a page linking to /setup", r)
	}
	// modgate is still fine.
	mustGet(t, e.url("/example.com/m/@v/list"))
}

// TestLyingUpstream checks that an upstream sending a broken zip, go.mod or
// .info gets a 502 with a one-line reason, that nothing is stored, and that
// a later good answer is stored and served.
func TestLyingUpstream(t *testing.T) {
	// No speculative prefetch: each case deletes the stored files behind
	// modgate's back, and a prefetch of the go.mod just served would fetch
	// it again (correctly, but into the next case's clean slate).
	e := newStdEnv(t, "--prefetch=false")
	const path, version = "example.com/m", "v1.0.0"
	otherZip := testenv.MakeZip(t, "example.com/other", version, map[string]string{"go.mod": "module example.com/other\n", "o.go": "package other\n"})
	goodZip := e.fixture(path, version, "zip")
	for _, tc := range []struct {
		name, ext string
		answer    func(w http.ResponseWriter)
	}{
		{"zip with the wrong path prefix", "zip", func(w http.ResponseWriter) { w.Write(otherZip) }},
		{"zip that is not a zip", "zip", func(w http.ResponseWriter) { fmt.Fprint(w, "<html>not a zip</html>") }},
		{"truncated zip", "zip", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", fmt.Sprint(len(goodZip)))
			w.Write(goodZip[:len(goodZip)/2])
			panic(http.ErrAbortHandler) // cut the connection mid-body
		}},
		{"zip cut short without a length", "zip", func(w http.ResponseWriter) { w.Write(goodZip[:len(goodZip)-10]) }},
		{"zip announced larger than any module may be", "zip", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "700000000")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}},
		{"go.mod that does not parse", "mod", func(w http.ResponseWriter) { fmt.Fprint(w, "module example.com/m\n\nrequire (((\n") }},
		{"go.mod that is HTML", "mod", func(w http.ResponseWriter) { fmt.Fprint(w, "<!DOCTYPE html><p>login</p>") }},
		{".info that is not JSON", "info", func(w http.ResponseWriter) { fmt.Fprint(w, "<!DOCTYPE html><p>login</p>") }},
		{".info without a version", "info", func(w http.ResponseWriter) { fmt.Fprint(w, `{"Time":"2024-01-02T03:04:05Z"}`) }},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			target := upPath(path, version, tc.ext)
			e.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != target {
					return false
				}
				tc.answer(w)
				return true
			})
			r := get(t, e.url(vPath(path, version, tc.ext)))
			checkErrorBody(t, tc.name, r, http.StatusBadGateway)
			if !strings.Contains(string(r.Body), e.up.URL()) {
				t.Errorf("%s: reason %q does not name the upstream", tc.name, r.Body)
			}
			e.assertNothingStored(path, version)

			// The upstream mends its ways: the good answer is stored.
			e.up.SetHook(nil)
			want := e.fixture(path, version, tc.ext)
			r = get(t, e.url(vPath(path, version, tc.ext)))
			if r.Status != http.StatusOK || !bytes.Equal(r.Body, want) {
				t.Fatalf("%s, then a good answer: %v", tc.name, r)
			}
			stored, err := os.ReadFile(e.storedFile(path, version, tc.ext))
			if err != nil || !bytes.Equal(stored, want) {
				t.Errorf("%s, then a good answer: stored file equal %v, err %v", tc.name, bytes.Equal(stored, want), err)
			}
			if tc.ext == "zip" {
				e.waitZipHashed(t, path, version) // not to be written after the cleanup
			}
			// Start the next case from scratch.
			for _, ext := range []string{"info", "mod", "zip", "ziphash"} {
				os.Remove(e.storedFile(path, version, ext))
			}
		})
	}
}

// TestHugeURLs: a request line over 8 KiB gets a one-line 414 and goes no
// further; one over 64 KiB is refused by net/http itself (431); neither
// floods the log, which shows any path cut to 512 bytes.
func TestHugeURLs(t *testing.T) {
	e := newStdEnv(t, "--log-level", "debug")
	for _, size := range []int{9 << 10, 60 << 10} {
		before := e.up.Total()
		r := rawRequest(t, e.proc.URL, "GET", "/example.com/"+strings.Repeat("a", size)+"/@v/list")
		what := fmt.Sprintf("GET of a %d-byte URL", size)
		checkErrorBody(t, what, r, http.StatusRequestURITooLong)
		if e.up.Total() != before {
			t.Errorf("%s reached the upstream", what)
		}
	}
	for _, size := range []int{100 << 10, 1 << 20} {
		logged := len(e.proc.Logs())
		status, err := hugeRequest(e.proc.URL, size)
		// net/http answers and closes while the client is still sending:
		// the client may see the answer or only the reset.
		if err == nil && status != http.StatusRequestHeaderFieldsTooLarge && status != http.StatusRequestURITooLong {
			t.Errorf("GET of a %d-byte URL: status %d, want 431 or 414", size, status)
		}
		if grown := len(e.proc.Logs()) - logged; grown > 4<<10 {
			t.Errorf("GET of a %d-byte URL wrote %d bytes of logs", size, grown)
		}
	}
	// The 9 KiB request was logged once, its path cut.
	var lines []string
	for _, line := range strings.Split(e.proc.Logs(), "\n") {
		if strings.Contains(line, "aaaaaaaa") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d log lines name the long paths, want one per request that got an answer:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, line := range lines {
		if len(line) > 1024 || !strings.Contains(line, "...(") {
			t.Errorf("log line of %d bytes, want the path cut to 512 bytes and its length: %s", len(line), abbrev([]byte(line)))
		}
	}
	mustGet(t, e.url("/example.com/m/@v/list"))
}

// hugeRequest sends a GET whose path has size bytes, reading the answer
// while it writes, and returns the status (or the error that ended it).
func hugeRequest(base string, size int) (int, error) {
	u, err := url.Parse(base)
	if err != nil {
		return 0, err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		fmt.Fprintf(conn, "GET /example.com/%s/@v/list HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", strings.Repeat("a", size), u.Host)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestLongPathElement: a path element longer than a file name may be (255
// bytes on common filesystems) is a bad request, not a storage failure.
func TestLongPathElement(t *testing.T) {
	e := newStdEnv(t)
	long := "example.com/" + strings.Repeat("a", 300)
	for _, p := range []string{
		vPath(long, "v1.0.0", "info"),
		vPath(long, "v1.0.0", "mod"),
		vPath(long, "v1.0.0", "zip"),
		modPath(long, "@v/list"),
		modPath(long, "@latest"),
		modPath(long, "@v/main.info"),
	} {
		r := get(t, e.url(p))
		checkErrorBody(t, "GET "+abbrev([]byte(p)), r, http.StatusBadRequest)
	}
}
