package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAdminLoopbackOnly: without tokens the admin API answers clients on
// loopback addresses only.
func TestAdminLoopbackOnly(t *testing.T) {
	h := (&gateParts{}).admin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for addr, want := range map[string]int{"127.0.0.1:5000": 200, "[::1]:5000": 200, "10.1.2.3:5000": 403, "192.168.0.9:1": 403, "junk": 403} {
		req := httptest.NewRequest("DELETE", "/admin/v1/modules/example.com/m/@v/v1.0.0", nil)
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("client %s: %d, want %d", addr, rec.Code, want)
		}
	}
}
