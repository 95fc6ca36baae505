package gitserver

import (
	"crypto/subtle"
	"fmt"
	"html"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// DefaultHost is the host name repositories are served as by default.
const DefaultHost = "git.corp.test"

// MaxHang bounds how long a request stalls in hang mode.
const MaxHang = 2 * time.Minute

// Options configure Start.
type Options struct {
	// Host is the virtual host name the repositories are served as, in
	// meta tags and for absolute-form (proxy) requests; DefaultHost when
	// empty. It may carry a port ("git.corp.test:8443").
	Host string
	// Scheme is the scheme of the repository URLs in meta tags; "http"
	// when empty. The server itself only speaks plain http.
	Scheme string
	// User and Password, when User is not empty, are required as basic
	// auth on git requests, and on meta tag pages too if AuthMeta is set.
	User, Password string
	AuthMeta       bool
	// Repos are the repositories served at first; Server.Add adds more.
	Repos []*Repo
}

// Server serves repositories over git's smart http protocol.
type Server struct {
	// URL is the server's base URL, "http://127.0.0.1:port". It is also
	// the HTTP proxy to give to clients that should reach Host.
	URL string
	// Host is the virtual host name, Options.Host or DefaultHost.
	Host string

	opts    Options
	scheme  string
	addr    string // 127.0.0.1:port, also accepted as a host
	root    string // GIT_PROJECT_ROOT
	backend *cgi.Handler
	stop    chan struct{}
	stderr  testenv.SyncBuffer // git http-backend's, from concurrent requests

	hang     atomic.Bool
	requests atomic.Int64
	refused  atomic.Int64

	mu    sync.Mutex
	repos map[string]*Repo  // by name
	git   map[string]int64  // git requests by repository name
	metas map[string]string // SetMeta overrides by path prefix
}

// Start serves opts.Repos on 127.0.0.1 until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	RequireGit(t)
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("gitserver: git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("gitserver: git http-backend is missing: %v", err)
	}
	s := &Server{
		Host:   opts.Host,
		opts:   opts,
		scheme: opts.Scheme,
		root:   t.TempDir(),
		stop:   make(chan struct{}),
		repos:  map[string]*Repo{},
		git:    map[string]int64{},
		metas:  map[string]string{},
	}
	if s.Host == "" {
		s.Host = DefaultHost
	}
	if s.scheme == "" {
		s.scheme = "http"
	}
	s.backend = &cgi.Handler{
		Path: backend,
		Root: "/",
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_CONFIG_NOSYSTEM=1",
		},
		Stderr: &s.stderr,
	}
	for _, r := range opts.Repos {
		s.Add(t, r)
	}
	ts := httptest.NewServer(s)
	s.URL = ts.URL
	s.addr = ts.Listener.Addr().String()
	t.Cleanup(func() {
		close(s.stop) // release hanging handlers first: Close waits for them
		ts.Close()
		if t.Failed() {
			if e := s.stderr.String(); e != "" {
				t.Logf("git http-backend stderr:\n%s", e)
			}
		}
	})
	return s
}

// Add serves r too. The server exposes r's .git directory itself, so every
// later change (commit, tag moved, branch deleted) is visible at once.
func (s *Server) Add(t testing.TB, r *Repo) {
	t.Helper()
	link := filepath.Join(s.root, filepath.FromSlash(r.name)+".git")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(r.gitDir(), link); err != nil {
		t.Fatalf("gitserver: serving %s: %v", r.name, err)
	}
	s.mu.Lock()
	s.repos[r.name] = r
	s.mu.Unlock()
}

// RepoURL is the URL clients clone r from: "http://git.corp.test/team/repo.git"
// (Options.Scheme and Host).
func (s *Server) RepoURL(r *Repo) string {
	return s.scheme + "://" + s.Host + "/" + r.name + ".git"
}

// ImportPath is the import path prefix r's meta tag announces,
// "git.corp.test/team/repo".
func (s *Server) ImportPath(r *Repo) string { return s.Host + "/" + r.name }

// ProxyEnv returns the environment variables that send a client's http
// traffic (git's and the go command's) through the server, so that Host
// resolves without DNS: http_proxy and HTTP_PROXY set to URL, no_proxy and
// NO_PROXY empty.
func (s *Server) ProxyEnv() []string {
	return []string{"http_proxy=" + s.URL, "HTTP_PROXY=" + s.URL, "no_proxy=", "NO_PROXY="}
}

// SetMeta makes `?go-get=1` requests for pathPrefix (a path below the
// host, "team/mono/sub"), and paths below it that no longer prefix
// matches, answer a page with one go-import meta tag of the given content,
// for example "git.corp.test/team/mono/sub git http://git.corp.test/team/mono.git sub".
// It overrides the default tag of a repository of that name. An empty
// content removes the override.
func (s *Server) SetMeta(pathPrefix, content string) {
	p := strings.Trim(pathPrefix, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if content == "" {
		delete(s.metas, p)
		return
	}
	s.metas[p] = content
}

// Hang makes git requests stall without an answer (true) or be served
// normally again (false). A stalled request ends when its client gives up,
// when the test ends, or after MaxHang.
func (s *Server) Hang(on bool) { s.hang.Store(on) }

// Requests counts every request the server received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// GitRequests counts the git requests (not meta tag pages) for the
// repository named name ("team/repo"), refused ones (auth) included.
func (s *Server) GitRequests(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.git[name]
}

// Refused counts the requests for a host other than Host and the
// server's own address, answered 502.
func (s *Server) Refused() int64 { return s.refused.Load() }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	// A proxied request arrives in absolute form; Go puts its host in
	// r.Host, as it does the Host header of a direct one.
	if r.Method == http.MethodConnect || (r.Host != s.Host && r.Host != s.addr) {
		s.refused.Add(1)
		http.Error(w, fmt.Sprintf("gitserver: host %q is not served here", r.Host), http.StatusBadGateway)
		return
	}
	if r.URL.Query().Get("go-get") == "1" {
		if s.opts.AuthMeta && !s.authorized(w, r) {
			return
		}
		s.serveMeta(w, r)
		return
	}
	repo := s.gitRepo(r.URL.Path)
	if repo == "" {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.git[repo]++
	s.mu.Unlock()
	if !s.authorized(w, r) {
		return
	}
	if s.hang.Load() {
		timer := time.NewTimer(MaxHang)
		defer timer.Stop()
		select {
		case <-r.Context().Done():
		case <-s.stop:
		case <-timer.C:
		}
		return
	}
	s.backend.ServeHTTP(w, r)
}

// authorized checks basic auth when the server requires it, answering 401
// itself when it fails.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.User == "" {
		return true
	}
	user, pass, ok := r.BasicAuth()
	if ok && subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.User)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.Password)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="gitserver"`)
	http.Error(w, "gitserver: authentication required", http.StatusUnauthorized)
	return false
}

// gitRepo returns the name of the served repository urlPath is inside
// ("/team/repo.git/info/refs" -> "team/repo"), or "".
func (s *Server) gitRepo(urlPath string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.repos {
		if strings.HasPrefix(urlPath, "/"+name+".git/") {
			return name
		}
	}
	return ""
}

// serveMeta answers a go-get request with the tag of the longest matching
// prefix, SetMeta overrides first.
func (s *Server) serveMeta(w http.ResponseWriter, r *http.Request) {
	p := strings.Trim(r.URL.Path, "/")
	under := func(prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
	best, content := "", ""
	s.mu.Lock()
	for name := range s.repos {
		if under(name) && len(name) > len(best) {
			best, content = name, s.Host+"/"+name+" git "+s.scheme+"://"+s.Host+"/"+name+".git"
		}
	}
	for prefix, c := range s.metas {
		if under(prefix) && len(prefix) >= len(best) {
			best, content = prefix, c
		}
	}
	s.mu.Unlock()
	if content == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head>\n<meta name=\"go-import\" content=\"%s\">\n</head><body>go get %s</body></html>\n",
		html.EscapeString(content), html.EscapeString(s.Host+"/"+p))
}
