package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/ui"
)

func get(t *testing.T, h http.Handler, method, target string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

// TestFiles: the page and its files are served with their types, the
// security headers and an ETag that a revalidation answers with 304.
func TestFiles(t *testing.T) {
	h := ui.Handler()
	for path, ctype := range map[string]string{
		"/ui/":           "text/html; charset=utf-8",
		"/ui/index.html": "text/html; charset=utf-8",
		"/ui/app.js":     "text/javascript; charset=utf-8",
		"/ui/charts.js":  "text/javascript; charset=utf-8",
		"/ui/style.css":  "text/css; charset=utf-8",
		"/ui/icon.svg":   "image/svg+xml",
	} {
		resp := get(t, h, "GET", path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype || len(body) == 0 {
			t.Errorf("GET %s = %d %q (%d bytes), want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), ctype)
			continue
		}
		checkSecurityHeaders(t, path, resp.Header)
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache (revalidated by ETag)", path, cc)
		}
		etag := resp.Header.Get("ETag")
		if !regexp.MustCompile(`^"[0-9a-f]{16}"$`).MatchString(etag) {
			t.Errorf("GET %s: ETag %q", path, etag)
			continue
		}
		if again := get(t, h, "GET", path, "If-None-Match", etag); again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag = %d, want 304", path, again.StatusCode)
		}
		if head := get(t, h, "HEAD", path); head.StatusCode != 200 {
			t.Errorf("HEAD %s = %d", path, head.StatusCode)
		}
	}
}

func checkSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("%s: CSP %q allows something unsafe", what, csp)
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if h.Get(k) != v {
			t.Errorf("%s: %s %q, want %q", what, k, h.Get(k), v)
		}
	}
}

// TestRedirectAndErrors: /ui goes to /ui/; unknown files and other
// methods get one text/plain line, with the security headers too.
func TestRedirectAndErrors(t *testing.T) {
	h := ui.Handler()
	if resp := get(t, h, "GET", "/ui"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui = %d %q, want a redirect to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/ui/nope.js", 404},
		{"GET", "/ui/static/app.js", 404},
		{"GET", "/ui/../go.mod", 404},
		{"POST", "/ui/", 405},
	} {
		resp := get(t, h, tc.method, tc.path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || strings.Count(string(body), "\n") != 1 {
			t.Errorf("%s %s = %d %q %q, want %d and one text/plain line", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status)
		}
		checkSecurityHeaders(t, tc.method+" "+tc.path, resp.Header)
	}
}

// TestNoInlineCodeNorMarkupFromData holds the sources to the rules the CSP
// and the escaping rely on: no inline script, style or event handler in
// the page (the CSP would block them, breaking the page), every asset it
// names exists and is local, and the scripts never parse strings as
// markup (data from the API must stay text).
func TestNoInlineCodeNorMarkupFromData(t *testing.T) {
	dir := "static"
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	if m := regexp.MustCompile(`<script(?:\s[^>]*)?>`).FindAllString(html, -1); len(m) == 0 {
		t.Error("index.html loads no script")
	} else {
		for _, tag := range m {
			if !strings.Contains(tag, ` src="`) {
				t.Errorf("inline script in index.html: %s", tag)
			}
		}
	}
	for _, bad := range []*regexp.Regexp{regexp.MustCompile(`<style`), regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`(?i)(src|href)="(https?:)?//`)} {
		if loc := bad.FindString(html); loc != "" {
			t.Errorf("index.html has %q: inline code, or an outside asset", loc)
		}
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(html, -1) {
		if _, err := os.Stat(filepath.Join(dir, m[1])); err != nil {
			t.Errorf("index.html names %s, which is not embedded", m[1])
		}
	}
	for _, name := range []string{"app.js", "charts.js"} {
		src, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"style\"", ".style."} {
			if strings.Contains(string(src), bad) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
}
