package audit_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/audit"
)

// TestHandler: GET /admin/v1/audit filters by module, principal, decision
// and time, newest first, and answers 400 with one text/plain line for a
// bad parameter.
func TestHandler(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "audit.log"), audit.Config{})
	// m000..m005; principals alternate ci/anonymous; m002 denied, m004
	// would-deny; m005 repeats m001's module.
	for i := range 6 {
		e := event(i)
		if i%2 == 1 {
			e.Principal = "anonymous"
		}
		switch i {
		case 2:
			e.Decision, e.Rule = audit.Deny, "vuln"
		case 4:
			e.Decision, e.Rule = audit.WouldDeny, "min-age"
		case 5:
			e.Module = event(1).Module
		}
		write(t, l, e)
	}
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	get := func(query string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/admin/v1/audit?" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	ts := func(i int) string { return url.QueryEscape(event(i).Time.Format("2006-01-02T15:04:05Z07:00")) }
	for _, c := range []struct {
		query string
		want  []string // request ids
	}{
		{"", []string{"req-5", "req-4", "req-3", "req-2", "req-1", "req-0"}},
		{"module=example.com/m001", []string{"req-5", "req-1"}},
		{"module=example.com/m00", nil},
		{"principal=anonymous", []string{"req-5", "req-3", "req-1"}},
		{"principal=ci&decision=allow", []string{"req-0"}},
		{"decision=deny", []string{"req-2"}},
		{"decision=would-deny", []string{"req-4"}},
		{"since=" + ts(2) + "&until=" + ts(4), []string{"req-3", "req-2"}},
		{"since=" + ts(4), []string{"req-5", "req-4"}},
		{"until=" + ts(1), []string{"req-0"}},
		{"limit=2", []string{"req-5", "req-4"}},
		{"module=example.com/m001&principal=anonymous&limit=1", []string{"req-5"}},
	} {
		resp, body := get(c.query)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("?%s: %d %s %q", c.query, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			continue
		}
		var events []audit.Event
		if err := json.Unmarshal([]byte(body), &events); err != nil || events == nil {
			t.Errorf("?%s: body %q: %v; want a JSON array", c.query, body, err)
		}
		var ids []string
		for _, e := range events {
			ids = append(ids, e.RequestID)
		}
		if !slices.Equal(ids, c.want) {
			t.Errorf("?%s = %v, want %v", c.query, ids, c.want)
		}
	}

	for _, query := range []string{
		"since=yesterday",
		"until=2025-03-01",
		"since=" + ts(3) + "&until=" + ts(3),
		"decision=block",
		"limit=0",
		"limit=10001",
		"limit=ten",
		"modul=example.com/m001",
		"module=a&module=b",
	} {
		resp, body := get(query)
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
			strings.Count(body, "\n") != 1 || !strings.HasPrefix(body, "modgate: ") {
			t.Errorf("?%s = %d %s %q, want 400 and one text/plain line", query, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}

	resp, err := http.Post(srv.URL+"/admin/v1/audit", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", resp.StatusCode)
	}
}

// TestHandlerNoFile: a log on standard output answers 501, no log 404.
func TestHandlerNoFile(t *testing.T) {
	for _, c := range []struct {
		l    *audit.Log
		want int
	}{{open(t, audit.Stdout, audit.Config{}), http.StatusNotImplemented}, {nil, http.StatusNotFound}} {
		rec := httptest.NewRecorder()
		c.l.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/v1/audit", nil))
		if rec.Code != c.want {
			t.Errorf("status %d %q, want %d", rec.Code, rec.Body, c.want)
		}
	}
}
