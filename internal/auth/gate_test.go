package auth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/auth"
	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// gateEnv is the gate in front of the real handler over a real cache
// fetching from a fixture upstream, with stubs at the other paths of
// modgate's URL space that answer with the principal they see.
type gateEnv struct {
	url       string
	up        *testenv.Upstream
	cache     *cache.Modules
	gate      *auth.Gate
	corp, ops string // tokens: corp may read corp.example.com; ops is admin and may read all
	logs      *testenv.SyncBuffer
	secrets   []string
	anonymous string
}

func newGateEnv(t *testing.T, anonymous string) *gateEnv {
	t.Helper()
	tree := t.TempDir()
	testenv.BuildTree(t, tree, []testenv.Module{
		{Path: "corp.example.com/lib", Version: "v1.0.0", Files: map[string]string{"lib.go": "package lib\n"}},
		{Path: "example.com/pub", Version: "v1.0.0", Files: map[string]string{"pub.go": "package pub\n"}},
	})
	e := &gateEnv{up: testenv.NewUpstream(t, tree), anonymous: anonymous}
	file := filepath.Join(t.TempDir(), "tokens.json")
	var err error
	if e.corp, err = auth.Add(file, "corp", []string{"corp.example.com"}, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if e.ops, err = auth.Add(file, "ops", []string{"*"}, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.secrets = []string{e.corp, e.ops}
	log, logs := logger(t)
	e.logs = logs
	s, err := auth.Open(file, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.gate = auth.NewGate(s, anonymous)

	disk, err := store.NewDisk(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := source.ParseList(e.up.URL(), func(base string) source.Source {
		return source.NewUpstream(base, source.NewHTTPClient())
	})
	if err != nil {
		t.Fatal(err)
	}
	e.cache = cache.New(cache.Config{Store: disk, Source: chain, ScratchDir: disk.StagingDir(),
		ListTTL: time.Hour, NegativeTTL: time.Hour, FetchTimeout: 10 * time.Second, Logger: log})
	t.Cleanup(e.cache.Close)

	stub := func(w http.ResponseWriter, r *http.Request) {
		p, ok := protocol.PrincipalFrom(r.Context())
		fmt.Fprintf(w, "reached as %q %v\n", p.Name, ok)
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/admin/", "/sumdb/", "/webhooks/git", "/setup", "/setup.json", "/{$}", "/ui/"} {
		mux.HandleFunc(p, stub)
	}
	mux.Handle("/", &goproxy.Handler{Modules: e.gate.Wrap(e.cache)})
	srv := httptest.NewServer(goproxy.Instrument(log, e.gate.Middleware(mux)))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

type answer struct {
	status    int
	challenge string
	body      string
}

// get asks for p with an Authorization header built by auth ("" for
// none).
func (e *gateEnv) get(t *testing.T, p, authz string) answer {
	t.Helper()
	req, err := http.NewRequest("GET", e.url+p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // no redirects followed
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)}
	if a.status >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || strings.Count(a.body, "\n") != 1 {
			t.Errorf("GET %s: error %d is %q, %q; want one text/plain line", p, a.status, ct, a.body)
		}
	}
	return a
}

func bearer(s string) string { return "Bearer " + s }

func basic(user, s string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, s)
	return r.Header.Get("Authorization")
}

const badToken = "mgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// TestMiddlewarePaths: the status, challenge and principal of every
// class of path, for no token, a bad one, a plain one and an admin one.
func TestMiddlewarePaths(t *testing.T) {
	for _, anonymous := range []string{"", "example.com"} {
		t.Run("anonymous="+anonymous, func(t *testing.T) {
			e := newGateEnv(t, anonymous)
			sumdbAnon := answer{401, `Basic realm="modgate"`, "the checksum database needs a token"}
			if anonymous != "" {
				sumdbAnon = answer{200, "", `reached as "anonymous" true`}
			}
			bad := answer{401, `Basic realm="modgate"`, "check the token in GOAUTH or .netrc"}
			for _, tc := range []struct {
				path, authz string
				want        answer
			}{
				{"/healthz", "", answer{200, "", `reached as "" false`}},
				{"/healthz", bearer(badToken), answer{200, "", `reached as "" false`}},
				{"/readyz", "Digest nonsense", answer{200, "", `reached as "" false`}},
				{"/webhooks/git", bearer(badToken), answer{200, "", `reached as "" false`}},
				{"/setup", "", answer{200, "", `reached as "" false`}},
				{"/setup.json", bearer(badToken), answer{200, "", `reached as "" false`}},
				{"/", "", answer{200, "", `reached as "" false`}},
				{"/ui/", bearer(badToken), answer{200, "", `reached as "" false`}},
				{"/ui/app.js", "", answer{200, "", `reached as "" false`}},

				{"/metrics", "", answer{401, `Basic realm="modgate"`, "needs an admin token"}},
				{"/metrics", bearer(badToken), bad},
				{"/metrics", bearer(e.corp), answer{403, "", "token corp is not an admin token"}},
				{"/metrics", bearer(e.ops), answer{200, "", `reached as "ops" true`}},
				{"/admin/v1/audit", "", answer{401, `Basic realm="modgate"`, "needs an admin token"}},
				{"/admin/v1/audit", basic("x", e.corp), answer{403, "", "token corp is not an admin token"}},
				{"/admin/v1/audit", basic("", e.ops), answer{200, "", `reached as "ops" true`}},

				{"/sumdb/sum.golang.org/supported", "", sumdbAnon},
				{"/sumdb/sum.golang.org/supported", bearer(badToken), bad},
				{"/sumdb/sum.golang.org/supported", bearer(e.corp), answer{200, "", `reached as "corp" true`}},

				{"/corp.example.com/lib/@v/list", bearer(badToken), bad},
				{"/corp.example.com/lib/@v/list", basic("me", badToken), bad},
				{"/corp.example.com/lib/@v/list", "Basic !!!", bad},
				{"/corp.example.com/lib/@v/list", "Token " + e.corp, bad},
				{"/corp.example.com/lib/@v/list", "bearer " + e.corp, answer{200, "", "v1.0.0\n"}},
				{"/corp.example.com/lib/@v/list", basic("anyone", e.corp), answer{200, "", "v1.0.0\n"}},
			} {
				got := e.get(t, tc.path, tc.authz)
				if got.status != tc.want.status || got.challenge != tc.want.challenge || !strings.Contains(got.body, tc.want.body) {
					t.Errorf("GET %s (%s) = %d %q %q, want %d %q and %q", tc.path, strings.Fields(tc.authz + " none")[0],
						got.status, got.challenge, got.body, tc.want.status, tc.want.challenge, tc.want.body)
				}
				noSecrets(t, "answer", got.body, e.secrets...)
			}
			noSecrets(t, "log", e.logs.String(), append(e.secrets, badToken)...)

			// The server refuses a path that is not clean before the gate;
			// the gate alone classifies it as the mux would route it.
			for _, p := range []string{"/healthz/../metrics", "//admin/x", "/readyz/../admin/"} {
				w := httptest.NewRecorder()
				e.gate.Middleware(http.NotFoundHandler()).ServeHTTP(w, &http.Request{Method: "GET", URL: &url.URL{Path: p}, Header: http.Header{}})
				if w.Code != 401 {
					t.Errorf("gate alone: GET %s = %d, want 401", p, w.Code)
				}
			}
		})
	}
}

// TestWrapAuthorizes: each token reads what its patterns match and
// nothing else, with an answer that is the same whether the module
// exists or not and that no fetch precedes; without a token, only the
// anonymous patterns are readable and anything else is a 401 challenge.
func TestWrapAuthorizes(t *testing.T) {
	e := newGateEnv(t, "example.com")
	files := func(mod string) []string {
		return []string{"/" + mod + "/@v/list", "/" + mod + "/@latest", "/" + mod + "/@v/v1.0.0.info",
			"/" + mod + "/@v/v1.0.0.mod", "/" + mod + "/@v/v1.0.0.zip", "/" + mod + "/@v/main.info"}
	}
	for _, tc := range []struct {
		who, authz, mod string
		status          int
		body            string
	}{
		{"corp", bearer(e.corp), "corp.example.com/lib", 200, ""},
		{"ops", bearer(e.ops), "corp.example.com/lib", 200, ""},
		{"ops", bearer(e.ops), "example.com/pub", 200, ""},
		{"anonymous", "", "example.com/pub", 200, ""},
		{"corp", bearer(e.corp), "example.com/pub", 403, "token corp may not read example.com/pub"},
		{"corp", bearer(e.corp), "example.com/missing", 403, "token corp may not read example.com/missing"},
		{"corp", bearer(e.corp), "corp.example.com.evil.com/x", 403, "token corp may not read corp.example.com.evil.com/x"},
		{"anonymous", "", "corp.example.com/lib", 401, "corp.example.com/lib: a token is needed; set GOAUTH or .netrc for this server"},
		{"anonymous", "", "corp.example.com/missing", 401, "corp.example.com/missing: a token is needed; set GOAUTH or .netrc for this server"},
	} {
		for _, p := range files(tc.mod) {
			before := e.up.Total()
			got := e.get(t, p, tc.authz)
			if tc.status == 200 {
				if got.status != 200 && !strings.HasSuffix(p, "main.info") {
					t.Errorf("%s: GET %s = %d %q, want 200", tc.who, p, got.status, got.body)
				}
				continue
			}
			want := "modgate: " + tc.body + "\n"
			if got.status != tc.status || got.body != want {
				t.Errorf("%s: GET %s = %d %q, want %d %q", tc.who, p, got.status, got.body, tc.status, want)
			}
			if wantChallenge := tc.status == 401; (got.challenge != "") != wantChallenge {
				t.Errorf("%s: GET %s: WWW-Authenticate %q", tc.who, p, got.challenge)
			}
			if n := e.up.Total() - before; n != 0 {
				t.Errorf("%s: GET %s asked the upstream %d times before refusing", tc.who, p, n)
			}
		}
	}
	noSecrets(t, "log", e.logs.String(), e.secrets...)
}

// TestWrapFailsClosed: without the middleware's principal, or with a
// principal someone else made up, nothing is answered.
func TestWrapFailsClosed(t *testing.T) {
	e := newGateEnv(t, "*")
	m := e.gate.Wrap(e.cache)
	for _, ctx := range []context.Context{
		context.Background(),
		protocol.WithPrincipal(context.Background(), protocol.Principal{Name: "ops", Admin: true}),
	} {
		_, err := m.List(ctx, "example.com/pub")
		var forbidden *protocol.ForbiddenError
		if !errors.As(err, &forbidden) {
			t.Errorf("List without the middleware: err = %v, want ForbiddenError", err)
		}
	}
	if e.up.Total() != 0 {
		t.Errorf("the upstream was asked %d times", e.up.Total())
	}
	// The same principal, as the middleware makes it, is anonymous and
	// "*" lets it read.
	vs, err := m.List(protocol.WithPrincipal(context.Background(), protocol.Principal{Name: protocol.Anonymous}), "example.com/pub")
	if err != nil || len(vs.Tagged) != 1 {
		t.Errorf("anonymous List with anonymous \"*\" = %+v, %v", vs, err)
	}
}
