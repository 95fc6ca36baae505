package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
)

// TestCredentialsNeverShown runs modgate with credentials in its upstream
// URLs: the first upstream is dead, the second answers 500 with an error
// body that quotes the URL it was asked for, credentials and all. The
// credentials must appear in no response (body or header), no log line,
// not in /metrics and not in /readyz.
func TestCredentialsNeverShown(t *testing.T) {
	const user, secret = "modgateuser", "s3cr3tpw"
	var authed atomic.Int32
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == user && p == secret {
			authed.Add(1)
		}
		http.Error(w, fmt.Sprintf("backend error fetching http://%s:%s@%s%s", user, secret, r.Host, r.URL.Path), http.StatusInternalServerError)
	}))
	defer failing.Close()
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	upstream := fmt.Sprintf("http://%s:%s@%s|http://%s:%s@%s", user, secret, dead, user, secret, strings.TrimPrefix(failing.URL, "http://"))
	p := testenv.Start(t, "--data-dir", t.TempDir(), "--upstream", upstream, "--log-level", "debug")

	var seen []string // everything modgate sent back
	for _, path := range []string{
		"/example.com/m/@v/list",
		"/example.com/m/@latest",
		"/example.com/m/@v/v1.0.0.info",
		"/example.com/m/@v/main.info",
		"/example.com/m/@v/v1.0.0.mod",
		"/example.com/m/@v/v1.0.0.zip",
		"/example.com/m/@v/bad!.info",
		"/sumdb/sum.golang.org/supported",
		"/readyz",
		"/healthz",
		"/metrics",
	} {
		r := get(t, p.URL+path)
		if strings.HasPrefix(path, "/example.com/m/@v/v1") && r.Status != http.StatusBadGateway {
			t.Errorf("GET %s: %v, want 502 (the upstreams fail)", path, r)
		}
		seen = append(seen, fmt.Sprintf("GET %s: %d %v\n%s", path, r.Status, r.Header, r.Body))
	}
	if authed.Load() == 0 {
		t.Fatal("the upstream never got the credentials: the test tests nothing")
	}
	p.Stop(t)
	seen = append(seen, "logs:\n"+p.Logs())
	for _, s := range seen {
		for _, bad := range []string{secret, user} {
			if strings.Contains(s, bad) {
				t.Errorf("%q shown in:\n%s", bad, s)
			}
		}
	}
}
