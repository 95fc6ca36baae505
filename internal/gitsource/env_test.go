package gitsource

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/discover"
	"github.com/modgate/modgate/internal/gitauth"
	"github.com/modgate/modgate/internal/gitmirror"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/gitserver"
)

// Credentials of the fixture git server.
const (
	fixtureUser     = "alice"
	fixturePassword = "fixture-s3cret-password"
)

// staticLookup is a discover.Lookuper over a fixed table, as the
// configuration's static mapping is: the longest root that is a path
// prefix of the module path wins.
type staticLookup map[string]discover.Repo

func (l staticLookup) Lookup(_ context.Context, modPath string) (discover.Repo, error) {
	best := ""
	for root := range l {
		if hasPathPrefix(modPath, root) && len(root) > len(best) {
			best = root
		}
	}
	if best == "" {
		return discover.Repo{}, &source.NotFoundError{Msg: "no repository is known for " + modPath}
	}
	return l[best], nil
}

// add maps the repository's import path to it, as the server's default
// meta tag does.
func (l staticLookup) add(srv *gitserver.Server, r *gitserver.Repo) {
	l[srv.ImportPath(r)] = discover.Repo{Root: srv.ImportPath(r), URL: srv.RepoURL(r)}
}

// env is a git source over real mirrors of a fixture server's
// repositories.
type env struct {
	srv     *gitserver.Server
	lookup  staticLookup
	mirrors string // mirror root
	scratch string
	clock   *testenv.Clock
	logs    *logRecorder
	src     *Source
}

// newEnv starts srv's client side. The mirrors' git reaches the server's
// virtual host through it as HTTP proxy, as the go command does.
func newEnv(t testing.TB, srv *gitserver.Server, lookup staticLookup) *env {
	t.Helper()
	for _, kv := range srv.ProxyEnv() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	e := &env{
		srv:     srv,
		lookup:  lookup,
		mirrors: t.TempDir(),
		scratch: t.TempDir(),
		clock:   testenv.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)),
		logs:    &logRecorder{},
	}
	e.src = e.newSource(t)
	return e
}

// newSource is a Source over e's mirror directory, as after a restart.
func (e *env) newSource(t testing.TB) *Source {
	t.Helper()
	logger := slog.New(teeHandler{e.logs, testenv.Logger(t, "gitsource").Handler()})
	mirrors, err := gitmirror.New(gitmirror.Config{
		Dir: e.mirrors,
		Credentials: func(host string) (gitauth.Credentials, bool) {
			if host != e.srv.Host {
				return gitauth.Credentials{}, false
			}
			return gitauth.Credentials{Username: fixtureUser, Password: fixturePassword}, true
		},
		AllowHTTP:    func(string) bool { return true },
		Timeout:      time.Minute,
		LowSpeedTime: 30 * time.Second,
		MaxRepoSize:  1 << 30,
		Logger:       logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mirrors.Close() })
	src, err := New(Config{
		Lookup:     e.lookup,
		Mirrors:    mirrors,
		ScratchDir: e.scratch,
		Logger:     logger,
		Now:        e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// logRecorder keeps the records logged at warning level and above.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.Key + "=" + a.Value.String())
			return true
		})
		out = append(out, b.String())
	}
	return out
}

// teeHandler records warnings in rec and passes everything to next.
type teeHandler struct {
	rec  *logRecorder
	next slog.Handler
}

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }
func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.rec.mu.Lock()
		h.rec.records = append(h.rec.records, r.Clone())
		h.rec.mu.Unlock()
	}
	return h.next.Handle(ctx, r)
}
func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.rec, h.next.WithAttrs(as)}
}
func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h.rec, h.next.WithGroup(name)}
}

// isNotFound reports whether err is a not-found answer of the source
// package's kind.
func isNotFound(err error) bool {
	var nf *source.NotFoundError
	return errors.As(err, &nf) && errors.Is(err, source.ErrNotFound)
}
