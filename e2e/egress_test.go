package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
)

// TestEgressProxy: modgate reaches its upstream through the HTTP proxy
// that HTTP_PROXY names, as corporate egress needs. The upstream's host
// name exists only in that proxy, so a fetch that bypassed it would fail.
func TestEgressProxy(t *testing.T) {
	tree := t.TempDir()
	testenv.BuildTree(t, tree, []testenv.Module{{Path: "example.com/egress", Version: "v1.0.0", Files: goFile("egress", "v1.0.0")}})
	up := testenv.NewUpstream(t, tree)
	target, _ := url.Parse(up.URL())

	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() || r.URL.Host != "upstream.corp.test" {
			http.Error(w, "this proxy only knows upstream.corp.test", http.StatusBadGateway)
			return
		}
		proxied.Add(1)
		out := r.URL.ResolveReference(&url.URL{}) // a copy
		out.Scheme, out.Host = target.Scheme, target.Host
		resp, err := http.Get(out.String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(proxy.Close)

	p := testenv.StartEnv(t, []string{"HTTP_PROXY=" + proxy.URL, "http_proxy=" + proxy.URL, "NO_PROXY=", "no_proxy="},
		"--data-dir", t.TempDir(), "--upstream", "http://upstream.corp.test", "--prefetch=false")
	for _, f := range []string{"@v/list", "@v/v1.0.0.info", "@v/v1.0.0.mod", "@v/v1.0.0.zip"} {
		if r := get(t, p.URL+"/example.com/egress/"+f); r.Status != http.StatusOK {
			t.Fatalf("GET %s through the egress proxy: %v", f, r)
		}
	}
	if n := proxied.Load(); n < 4 || up.Total() != int(n) {
		t.Errorf("egress proxy forwarded %d requests, upstream saw %d; want every fetch through the proxy", n, up.Total())
	}
	if strings.Contains(p.Logs(), "upstream.corp.test: no such host") {
		t.Errorf("modgate resolved the upstream itself")
	}
}
