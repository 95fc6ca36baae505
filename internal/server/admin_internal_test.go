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
