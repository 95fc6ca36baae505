package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modgate/modgate/internal/config"
)

// TestAdminLoopbackOnly: without tokens the admin API answers clients on
// loopback addresses only, unless --admin-open lets every client in.
func TestAdminLoopbackOnly(t *testing.T) {
	for _, open := range []bool{false, true} {
		g, err := newGate(&config.Config{AdminOpen: open}, nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		h := g.admin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		for addr, local := range map[string]bool{"127.0.0.1:5000": true, "[::1]:5000": true, "10.1.2.3:5000": false, "192.168.0.9:1": false, "junk": false} {
			req := httptest.NewRequest("DELETE", "/admin/v1/modules/example.com/m/@v/v1.0.0", nil)
			req.RemoteAddr = addr
			req.Host = "127.0.0.1:7070"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			want := http.StatusForbidden
			if local || open {
				want = http.StatusOK
			}
			if rec.Code != want {
				t.Errorf("admin-open=%v, client %s: %d, want %d", open, addr, rec.Code, want)
			}
		}
	}
}

// TestAdminRebinding: without tokens, a local client's request for a host
// name that is not a loopback one (a rebound DNS name) is refused.
func TestAdminRebinding(t *testing.T) {
	g, err := newGate(&config.Config{}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := g.admin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for host, want := range map[string]int{
		"localhost:7070": 200, "LOCALHOST": 200, "127.0.0.1": 200, "127.0.0.2:80": 200, "[::1]:7070": 200,
		"attacker.example:7070": 403, "localhost.attacker.example": 403, "10.0.0.1:7070": 403, "": 403,
	} {
		req := httptest.NewRequest("GET", "/admin/v1/stats", nil)
		req.RemoteAddr = "127.0.0.1:5000"
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}

// TestAdminCrossSite: a browser's cross-site POST or DELETE (a form on
// another site needs no preflight) is refused, with tokens on or off;
// same-origin requests and clients that are not browsers pass.
func TestAdminCrossSite(t *testing.T) {
	g, err := newGate(&config.Config{AdminOpen: true}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := g.admin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	cases := []struct {
		method, site, origin string
		want                 int
	}{
		{"POST", "", "", 200}, // curl, scripts
		{"POST", "same-origin", "http://127.0.0.1:7070", 200}, // the web UI
		{"DELETE", "none", "", 200},                           // typed by the user
		{"POST", "cross-site", "https://evil.example", 403},   // a form elsewhere
		{"POST", "same-site", "http://other.127.0.0.1:7070", 403},
		{"DELETE", "", "https://evil.example", 403},        // an older browser
		{"POST", "", "null", 403},                          // sandboxed frame
		{"GET", "cross-site", "https://evil.example", 200}, // reads are the CORS policy's
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "/admin/v1/prefetch", nil)
		req.RemoteAddr = "127.0.0.1:5000"
		req.Host = "127.0.0.1:7070"
		if c.site != "" {
			req.Header.Set("Sec-Fetch-Site", c.site)
		}
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s Sec-Fetch-Site=%q Origin=%q: %d, want %d", c.method, c.site, c.origin, rec.Code, c.want)
		}
	}
}
