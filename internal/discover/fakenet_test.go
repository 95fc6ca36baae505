package discover

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
)

// fakeNet is a network of named hosts that all live on 127.0.0.1, reached
// the way a corporate network reaches them: through an HTTP forward proxy
// (HTTPS_PROXY), which is the only address the client may dial. The proxy
// records every host:port it is asked for, so tests can prove which hosts
// a lookup contacted. https goes through CONNECT to one TLS server whose
// certificate names every host (trusted by the client alone); plain http
// goes through the proxy as absolute-URI requests.
type fakeNet struct {
	t       testing.TB
	proxy   *httptest.Server
	tlsSrv  *httptest.Server
	client  *http.Client
	mu      sync.Mutex
	hosts   map[string]*fakeHost
	dialed  []string // host:port, as asked of the proxy
	reqs    []seenRequest
	tunnels sync.WaitGroup
	conns   []net.Conn
}

// fakeHost is one named host: what it answers over https and over http
// (nil: that port is closed).
type fakeHost struct {
	https, http http.Handler
}

type seenRequest struct {
	Scheme, Host, URI  string
	Auth, PrivateToken string
}

func newFakeNet(t testing.TB) *fakeNet {
	t.Helper()
	n := &fakeNet{t: t, hosts: make(map[string]*fakeHost)}
	cert, pool := testCertificate(t)
	n.tlsSrv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.serve(w, r, "https")
	}))
	n.tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	n.tlsSrv.StartTLS()
	n.proxy = httptest.NewServer(http.HandlerFunc(n.serveProxy))
	proxyURL, _ := url.Parse(n.proxy.URL)
	proxyAddr := n.proxy.Listener.Addr().String()
	n.client = &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyURL(proxyURL),
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != proxyAddr {
				n.t.Errorf("the client dialed %s directly, not through the proxy", addr)
				return nil, errors.New("direct connection refused by the test")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		DisableKeepAlives: true,
	}}
	t.Cleanup(func() {
		n.proxy.Close()
		n.mu.Lock()
		for _, c := range n.conns {
			c.Close()
		}
		n.mu.Unlock()
		n.tunnels.Wait()
		n.tlsSrv.Close()
	})
	return n
}

// host declares a host; either handler may be nil.
func (n *fakeNet) host(name string, https, plain http.Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hosts[name] = &fakeHost{https: https, http: plain}
}

func (n *fakeNet) lookupHost(hostport, defaultPort string) (*fakeHost, string, bool) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, defaultPort
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hosts[host]
	return h, port, ok
}

func (n *fakeNet) serveProxy(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		n.mu.Lock()
		n.dialed = append(n.dialed, r.Host)
		n.mu.Unlock()
		h, port, ok := n.lookupHost(r.Host, "443")
		if !ok || port != "443" || h.https == nil {
			http.Error(w, "no such host or port closed", http.StatusBadGateway)
			return
		}
		backend, err := net.Dial("tcp", n.tlsSrv.Listener.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			backend.Close()
			return
		}
		n.mu.Lock()
		n.conns = append(n.conns, conn, backend)
		n.mu.Unlock()
		conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		n.tunnels.Add(2)
		go func() { defer n.tunnels.Done(); io.Copy(backend, buf.Reader); backend.Close() }()
		go func() { defer n.tunnels.Done(); io.Copy(conn, backend); conn.Close() }()
		return
	}
	// A plain http request through the proxy: the target is in the URL.
	target := r.URL.Host
	if !strings.Contains(target, ":") {
		target += ":80"
	}
	n.mu.Lock()
	n.dialed = append(n.dialed, target)
	n.mu.Unlock()
	h, port, ok := n.lookupHost(target, "80")
	if !ok || port != "80" || h.http == nil {
		http.Error(w, "no such host or port closed", http.StatusBadGateway)
		return
	}
	n.serve(w, r, "http")
}

func (n *fakeNet) serve(w http.ResponseWriter, r *http.Request, scheme string) {
	name := r.Host
	if h, _, err := net.SplitHostPort(name); err == nil {
		name = h
	}
	n.mu.Lock()
	n.reqs = append(n.reqs, seenRequest{Scheme: scheme, Host: name, URI: r.URL.RequestURI(), Auth: r.Header.Get("Authorization"), PrivateToken: r.Header.Get("Private-Token")})
	h := n.hosts[name]
	n.mu.Unlock()
	if h == nil {
		http.Error(w, "unknown host", http.StatusMisdirectedRequest)
		return
	}
	handler := h.https
	if scheme == "http" {
		handler = h.http
	}
	handler.ServeHTTP(w, r)
}

// contacted returns the host:port pairs the proxy was asked for, sorted
// and without repeats.
func (n *fakeNet) contacted() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := slices.Clone(n.dialed)
	slices.Sort(out)
	return slices.Compact(out)
}

func (n *fakeNet) requests() []seenRequest {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.reqs)
}

func (n *fakeNet) reset() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dialed, n.reqs = nil, nil
}

// testCertificate makes a certificate for every name the tests use,
// signed by a test CA (testenv.NewCA) the returned pool trusts.
func testCertificate(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testenv.NewCA(t)
	certFile, keyFile := ca.Issue(t, "git.corp.test", "go.corp.test", "other.corp.test", "corp.test",
		"git.corp.test.evil.com", "evil.com", "plain.corp.test", "fuzz.test")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert, ca.Pool
}

// metaHandler answers every path with the given head content (go-import
// tags), and a status.
func metaHandler(status int, head string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("go-get") != "1" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, "<!DOCTYPE html>\n<html><head>\n"+head+"\n</head><body>nothing to see</body></html>\n")
	})
}

// metaByPath answers "?go-get=1" for the paths in pages (path -> head
// content) and 404 with no tags for others.
func metaByPath(pages map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		head, ok := pages[r.URL.Path]
		if !ok || r.URL.Query().Get("go-get") != "1" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "<html><head>"+head+"</head></html>")
	})
}

func goImport(prefix, vcs, repo string, subdir ...string) string {
	return `<meta name="go-import" content="` + strings.Join(append([]string{prefix, vcs, repo}, subdir...), " ") + `">`
}
