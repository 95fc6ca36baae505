package gitmirror

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/gitauth"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/gitserver"
)

const (
	testUser     = "alice"
	testPassword = "s3cret-pw-7d1f" // distinctive, to find it anywhere it leaks
)

// fixture is a served repository and mirrors that reach it through the
// server as an HTTP proxy, as git.corp.test, with basic auth.
type fixture struct {
	repo *gitserver.Repo
	srv  *gitserver.Server
	m    *Mirrors
	url  string // http://git.corp.test/team/repo.git
}

// newMirrors returns Mirrors for cfg (Dir and Logger filled in) whose git
// sees no configuration of the machine and reaches srv as a proxy.
func newMirrors(t testing.TB, srv *gitserver.Server, cfg Config) *Mirrors {
	t.Helper()
	gitserver.RequireGit(t)
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger(t, "gitmirror")
	}
	if cfg.AllowHTTP == nil {
		cfg.AllowHTTP = func(string) bool { return true }
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.env = append(m.env, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	if srv != nil {
		m.env = append(m.env, srv.ProxyEnv()...)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// credsFor answers user and password for host only.
func credsFor(host, user, password string) func(string) (gitauth.Credentials, bool) {
	return func(h string) (gitauth.Credentials, bool) {
		if h != host {
			return gitauth.Credentials{}, false
		}
		return gitauth.Credentials{Username: user, Password: password}, true
	}
}

// newFixture serves a repository with a few commits, tags and a branch.
func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	repo := gitserver.NewRepo(t, "team/repo")
	repo.Write("go.mod", "module git.corp.test/team/repo\n\ngo 1.21\n")
	repo.Write("a.go", "package repo\n")
	repo.Commit("first")
	repo.Tag("v1.0.0")
	repo.Write("sub/go.mod", "module git.corp.test/team/repo/sub\n")
	repo.Write("crlf.txt", "one\r\ntwo\r\n")
	repo.Symlink("link", "a.go")
	repo.Commit("second")
	repo.AnnotatedTag("v1.1.0", "release 1.1.0")
	repo.Tag("sub/v0.1.0")
	repo.Branch("feature")
	repo.Write("feature.go", "package repo\n")
	repo.Commit("feature work")
	repo.Checkout("main")
	srv := gitserver.Start(t, gitserver.Options{Repos: []*gitserver.Repo{repo}, User: testUser, Password: testPassword})
	if cfg.Credentials == nil {
		cfg.Credentials = credsFor(srv.Host, testUser, testPassword)
	}
	return &fixture{repo: repo, srv: srv, m: newMirrors(t, srv, cfg), url: srv.RepoURL(repo)}
}

func (f *fixture) open(t testing.TB) *Repo {
	t.Helper()
	r, err := f.m.Open(context.Background(), f.url)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) fetched(t testing.TB) *Repo {
	t.Helper()
	r := f.open(t)
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// mirrorError returns err as an *Error, failing the test otherwise.
func mirrorError(t testing.TB, err error, want Kind) *Error {
	t.Helper()
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("error %v (%T), want a *gitmirror.Error", err, err)
	}
	if me.Kind != want {
		t.Fatalf("error %q has kind %d, want %d", err, me.Kind, want)
	}
	return me
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
