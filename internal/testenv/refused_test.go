package testenv

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRefusedURL: connections to the address are refused at once, again
// and again, and no listener can take its port while the test runs.
func TestRefusedURL(t *testing.T) {
	u := RefusedURL(t)
	addr, ok := strings.CutPrefix(u, "http://127.0.0.1:")
	if !ok || addr == "" {
		t.Fatalf("RefusedURL = %q, want http://127.0.0.1:port", u)
	}
	addr = "127.0.0.1:" + addr
	for i := 0; i < 3; i++ {
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("dial %s: connected, want refused", addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v, want connection refused", addr, err)
		}
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Fatalf("listening on %s succeeded while RefusedURL holds it", addr)
	}
	if l, err := net.Listen("tcp", "0.0.0.0"+addr[len("127.0.0.1"):]); err == nil {
		l.Close()
		t.Fatalf("listening on all addresses at the port of %s succeeded while RefusedURL holds it", addr)
	}
}
