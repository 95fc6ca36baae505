package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

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
		{"GET", "/", []int{400, 404}},
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
	// modgate is still fine.
	mustGet(t, e.url("/example.com/m/@v/list"))
}

// TestLyingUpstream checks that an upstream sending a broken zip, go.mod or
// .info gets a 502 with a one-line reason, that nothing is stored, and that
// a later good answer is stored and served.
func TestLyingUpstream(t *testing.T) {
	e := newStdEnv(t)
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
			// Start the next case from scratch.
			for _, ext := range []string{"info", "mod", "zip", "ziphash"} {
				os.Remove(e.storedFile(path, version, ext))
			}
		})
	}
}
