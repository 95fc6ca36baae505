package source

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recordingProxy is a real HTTP server answering every request with status
// and body, and remembering the paths it was asked for.
type recordingProxy struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newRecordingProxy(t *testing.T, status int, body string) *recordingProxy {
	p := &recordingProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.paths = append(p.paths, r.URL.Path)
		p.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(p.Close)
	return p
}

// asked returns the paths asked so far.
func (p *recordingProxy) asked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.paths...)
}

// askedFor reports whether any request named the module path.
func (p *recordingProxy) askedFor(modPath string) bool {
	for _, a := range p.asked() {
		if strings.Contains(a, modPath) {
			return true
		}
	}
	return false
}

func mustRouter(t *testing.T, def Source, routes ...Route) *Router {
	t.Helper()
	r, err := NewRouter(def, routes...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// everyFetch calls each Source method for modPath and returns the errors.
func everyFetch(ctx context.Context, s Source, modPath string) []error {
	_, e1 := s.List(ctx, modPath)
	_, e2 := s.Latest(ctx, modPath)
	_, e3 := s.Info(ctx, modPath, "v1.0.0")
	_, e4 := s.GoMod(ctx, modPath, "v1.0.0")
	rc, e5 := s.Zip(ctx, modPath, "v1.0.0")
	if rc != nil {
		rc.Close()
	}
	return []error{e1, e2, e3, e4, e5}
}

// TestRouterPrivateRoute: a private route's modules are fetched from its
// own source only; the public chain never hears their names, not even when
// the private source does not have them.
func TestRouterPrivateRoute(t *testing.T) {
	ctx := context.Background()
	public := newRecordingProxy(t, 200, `{"Version":"v1.0.0"}`)
	private := newRecordingProxy(t, 200, `{"Version":"v1.0.0"}`)
	r := mustRouter(t, chainOf(t, public.URL),
		Route{Patterns: "corp.example.com,*.internal", Source: NewUpstream(private.URL, NewHTTPClient()), Private: true})

	for _, p := range []string{"corp.example.com/lib", "corp.example.com", "git.team.internal/x/y"} {
		for i, err := range everyFetch(ctx, r, p) {
			if err != nil {
				t.Errorf("%s: fetch %d: %v", p, i, err)
			}
		}
		if !private.askedFor(p) {
			t.Errorf("%s: the private source was not asked", p)
		}
	}
	if got := public.asked(); len(got) != 0 {
		t.Fatalf("the public chain was asked %q", got)
	}

	// Other paths, including look-alikes of the patterns, go to the chain.
	for _, p := range []string{"example.com/m", "corp.example.com.evil.example/x", "example.com/corp.example.com"} {
		before := len(private.asked())
		if _, err := r.GoMod(ctx, p, "v1.0.0"); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if !public.askedFor(p) || len(private.asked()) != before {
			t.Errorf("%s: not answered by the public chain alone", p)
		}
	}
}

func TestRouterPrivateNotFoundDoesNotFallThrough(t *testing.T) {
	ctx := context.Background()
	public := newRecordingProxy(t, 200, `{"Version":"v1.0.0"}`)
	private := newRecordingProxy(t, 404, "no such module here")
	r := mustRouter(t, chainOf(t, public.URL),
		Route{Patterns: "corp.example.com", Source: chainOf(t, private.URL), Private: true})

	for i, err := range everyFetch(ctx, r, "corp.example.com/secret-project") {
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no such module here") {
			t.Errorf("fetch %d: err = %v, want the private source's not found", i, err)
		}
	}
	if got := public.asked(); len(got) != 0 {
		t.Fatalf("a private module's name reached the public chain: %q", got)
	}
	if len(private.asked()) != 5 {
		t.Errorf("private source asked %q, want each of the 5 fetches once", private.asked())
	}
}

// TestRouterFirstRouteWins: routes are tried in order, and a route that is
// not private still keeps its paths from the default, without making them
// private.
func TestRouterFirstRouteWins(t *testing.T) {
	ctx := context.Background()
	def := newRecordingProxy(t, 200, "v1.0.0\n")
	first := newRecordingProxy(t, 200, "v1.0.0\n")
	second := newRecordingProxy(t, 200, "v1.0.0\n")
	r := mustRouter(t, chainOf(t, def.URL),
		Route{Patterns: "example.com/team", Source: chainOf(t, first.URL)},
		Route{Patterns: "example.com", Source: chainOf(t, second.URL), Private: true})

	if _, err := r.List(ctx, "example.com/team/m"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.List(ctx, "example.com/other"); err != nil {
		t.Fatal(err)
	}
	if !first.askedFor("example.com/team/m") || second.askedFor("example.com/team/m") {
		t.Errorf("example.com/team/m: first route asked %q, second %q", first.asked(), second.asked())
	}
	if !second.askedFor("example.com/other") || len(def.asked()) != 0 {
		t.Errorf("example.com/other: second route asked %q, default %q", second.asked(), def.asked())
	}
	for p, want := range map[string]bool{
		"example.com/team/m": false, // the first route, not private
		"example.com/other":  true,
		"example.com":        true,
		"golang.org/x/mod":   false, // the default
	} {
		if got := r.Private(p); got != want {
			t.Errorf("Private(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestRouterOrigin(t *testing.T) {
	missing := newRecordingProxy(t, 404, "not here")
	public := newRecordingProxy(t, 200, `{"Version":"v1.0.0"}`)
	private := newRecordingProxy(t, 200, `{"Version":"v1.0.0"}`)
	privateUp := NewUpstream("http://user:secret@"+strings.TrimPrefix(private.URL, "http://"), NewHTTPClient())
	r := mustRouter(t, chainOf(t, missing.URL+","+public.URL),
		Route{Patterns: "corp.example.com", Source: privateUp, Private: true})

	for _, tc := range []struct{ path, want string }{
		// A route's source that is no chain is named itself, redacted.
		{"corp.example.com/m", "http://REDACTED@" + strings.TrimPrefix(private.URL, "http://")},
		// The default chain names the entry that answered, as before.
		{"example.com/m", public.URL},
	} {
		ctx, origin := WithOrigin(context.Background())
		if _, err := r.Info(ctx, tc.path, "v1.0.0"); err != nil {
			t.Fatal(err)
		}
		if got := origin.String(); got != tc.want {
			t.Errorf("%s: origin %q, want %q", tc.path, got, tc.want)
		}
	}

	// Nothing answered: no origin.
	ctx, origin := WithOrigin(context.Background())
	gone := mustRouter(t, chainOf(t, missing.URL))
	if _, err := gone.Info(ctx, "example.com/m", "v1.0.0"); !errors.Is(err, ErrNotFound) || origin.String() != "" {
		t.Errorf("not found: err = %v, origin %q", err, origin.String())
	}
}

func TestRouterString(t *testing.T) {
	def := chainOf(t, "https://user:pw@a.example|https://b.example")
	if got, want := mustRouter(t, def).String(), def.String(); got != want {
		t.Errorf("without routes: String() = %q, want the chain's %q", got, want)
	}
	r := mustRouter(t, def,
		Route{Patterns: "corp.example.com", Source: NewUpstream("https://git:s3cr3t@git.corp.example.com/?token=abc", nil), Private: true},
		Route{Patterns: "example.com/mirror", Source: chainOf(t, "https://c.example")})
	got := r.String()
	want := "corp.example.com (private) -> https://REDACTED@git.corp.example.com/?token=REDACTED; " +
		"example.com/mirror -> https://c.example; others -> https://REDACTED@a.example|https://b.example"
	if got != want {
		t.Errorf("String() = %q\nwant %q", got, want)
	}
	for _, secret := range []string{"pw", "s3cr3t", "abc"} {
		if strings.Contains(got, secret) {
			t.Errorf("String() = %q shows %q", got, secret)
		}
	}
}

func TestNewRouterErrors(t *testing.T) {
	def := chainOf(t, "off")
	for _, tc := range []struct {
		def    Source
		routes []Route
		want   string
	}{
		{nil, nil, "no default source"},
		{def, []Route{{Patterns: "corp.example.com"}}, "route 1 (corp.example.com): no source"},
		{def, []Route{{Patterns: "a.example", Source: def}, {Patterns: " , ", Source: def}}, "route 2: no module path patterns"},
		{def, []Route{{Patterns: "corp.example.com/[", Source: def}}, `route 1: invalid pattern "corp.example.com/["`},
	} {
		_, err := NewRouter(tc.def, tc.routes...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewRouter(%v, %+v): err = %v, want %q", tc.def, tc.routes, err, tc.want)
		}
	}
}
