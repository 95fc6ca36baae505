// Package discover finds the git repository that holds a module path, as
// the go command's repository discovery does: a static mapping from the
// configuration, known hosting sites, the ".git" suffix rule, and the
// go-import meta tags a server answers to "?go-get=1".
//
// Discovery is where a module path, which comes from outside, turns into
// a network address, so it is strict about where it goes: the only host a
// Lookup ever connects to is the module path's own (a static mapping
// connects to nothing), redirects to another host are refused, the
// credentials configured for that host go nowhere else, answers are read
// up to a limit, and only https (ssh for repositories) is used unless
// the path is marked insecure.
package discover

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/mod/module"
	"golang.org/x/sync/singleflight"

	"github.com/modgate/modgate/internal/gitauth"
	"github.com/modgate/modgate/internal/redact"
)

// Repo is where a module path's code lives.
type Repo struct {
	// Root is the import path prefix of the repository root
	// ("git.corp.example.com/team/repo").
	Root string
	// URL is the repository's clone URL, credentials never included
	// ("https://git.corp.example.com/team/repo.git", "ssh://git@host/x.git").
	URL string
	// Subdir is the go-import subdirectory field: the directory of the
	// repository that Root corresponds to ("" for the top).
	Subdir string
}

// Lookup returns the repository of modPath. It is only ever called for
// paths the operator made private (or that reach a direct entry); it
// connects to no host but modPath's own (or a static mapping's).
type Lookuper interface {
	Lookup(ctx context.Context, modPath string) (Repo, error)
}

// Config is how a Resolver discovers repositories.
type Config struct {
	// Client makes the "?go-get=1" requests. The default uses
	// HTTPS_PROXY, HTTP_PROXY and NO_PROXY. Whatever its own redirect
	// policy, a redirect to another host or from https to http is
	// refused.
	Client *http.Client
	// Insecure lists the paths, in GOINSECURE syntax (comma-separated
	// globs of path prefixes), whose discovery may fall back to plain
	// http and whose repositories may have http URLs.
	Insecure string
	// Static maps module path prefixes (Repo.Root) to repositories (URL,
	// and the repository directory the prefix corresponds to, Subdir),
	// for servers that answer no meta tags. The longest prefix that
	// matches at a path element boundary wins; it is used before anything
	// else.
	Static []Repo
	// Credentials returns what to send with the meta-tag request to a
	// host (basic auth, a header). They are sent to that host only, on
	// https, or on http for an insecure path.
	Credentials func(host string) (gitauth.Credentials, bool)
	// TTL is how long an answer is remembered (default 15m).
	TTL time.Duration
	// MaxEntries bounds the answers remembered (default 10000).
	MaxEntries int
	// Timeout bounds one HTTP request (default 30s).
	Timeout time.Duration
	// Ping, when set, tells whether a repository URL answers (e.g. `git
	// ls-remote`). The ".git" suffix rule uses it to choose a scheme as
	// the go command does (https, then http for insecure paths, then
	// ssh); without it the rule answers https without connecting.
	Ping func(ctx context.Context, repoURL string) error
	// Now is the clock of the cache (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Resolver is the Lookuper of modgate: a Config, a cache of answers, and
// one discovery at a time per module path.
type Resolver struct {
	cfg    Config
	client *http.Client
	static []staticEntry
	cache  *lru.Cache[string, cached]
	flight singleflight.Group
	log    *slog.Logger
}

type cached struct {
	repo    Repo
	expires time.Time
}

// New returns a Resolver for cfg. A static mapping entry that is not
// valid fails the lookups it would answer (CheckStatic tells at start-up).
func New(cfg Config) *Resolver {
	if cfg.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = http.ProxyFromEnvironment
		cfg.Client = &http.Client{Transport: t}
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Minute
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 10000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cache, err := lru.New[string, cached](cfg.MaxEntries)
	if err != nil {
		panic(err) // only for a size <= 0, excluded above
	}
	return &Resolver{
		cfg:    cfg,
		client: sameHostClient(cfg.Client),
		static: buildStatic(cfg.Static, cfg.Insecure),
		cache:  cache,
		log:    cfg.Logger,
	}
}

// Lookup returns the repository of modPath.
//
// The order is the go command's (cmd/go/internal/vcs,
// RepoRootForImportPath): the static mapping (modgate's own, first),
// known hosting sites (github.com, bitbucket.org), a path element ending
// in ".git" (and the other version control suffixes, refused), then the
// go-import meta tags of https://<modPath>?go-get=1.
//
// Errors are one line naming the module path and the host. An error that
// means "there is no such repository" (a server that answered without a
// matching meta tag, a path that cannot exist on a known site) matches
// errors.Is(err, fs.ErrNotExist).
func (r *Resolver) Lookup(ctx context.Context, modPath string) (Repo, error) {
	if err := module.CheckPath(modPath); err != nil {
		return Repo{}, newError(modPath, true, nil, "not a valid module path: %v", err)
	}
	if c, ok := r.cache.Get(modPath); ok && r.cfg.Now().Before(c.expires) {
		return c.repo, nil
	}
	// One discovery per path at a time. It runs detached from the first
	// caller's context, so that its cancellation does not fail the
	// others; its own requests are bounded by Config.Timeout.
	ch := r.flight.DoChan(modPath, func() (any, error) {
		repo, how, err := r.discover(context.WithoutCancel(ctx), modPath)
		if err != nil {
			r.log.Debug("discovery failed", "module", modPath, "error", err.Error())
			return Repo{}, err
		}
		r.cache.Add(modPath, cached{repo: repo, expires: r.cfg.Now().Add(r.cfg.TTL)})
		r.log.Debug("discovered repository", "module", modPath, "root", repo.Root,
			"url", redact.URL(repo.URL), "subdir", repo.Subdir, "by", how)
		return repo, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Repo{}, res.Err
		}
		return res.Val.(Repo), nil
	case <-ctx.Done():
		return Repo{}, newError(modPath, false, ctx.Err(), "discovery abandoned: %v", ctx.Err())
	}
}

// discover runs the rules in order; how names the rule that answered.
func (r *Resolver) discover(ctx context.Context, modPath string) (repo Repo, how string, err error) {
	if repo, ok, err := r.lookupStatic(modPath); ok || err != nil {
		return repo, "static mapping", err
	}
	if repo, ok, err := lookupKnownHost(modPath); ok || err != nil {
		return repo, "known hosting site", err
	}
	if repo, ok, err := r.lookupSuffix(ctx, modPath); ok || err != nil {
		return repo, "version control suffix", err
	}
	repo, err = r.lookupMeta(ctx, modPath)
	return repo, "go-import meta tag", err
}

func (r *Resolver) insecure(modPath string) bool {
	return r.cfg.Insecure != "" && module.MatchPrefixPatterns(r.cfg.Insecure, modPath)
}

// Error is a failed Lookup.
type Error struct {
	Path     string // the module path
	msg      string
	notFound bool
	cause    error
}

// Error is one line, naming the module path and the host; credentials
// and URLs' user information are redacted.
func (e *Error) Error() string { return e.msg }

// Unwrap returns the cause (a context error, a network error), if any.
func (e *Error) Unwrap() error { return e.cause }

// Is makes a not-found failure match fs.ErrNotExist.
func (e *Error) Is(target error) bool { return e.notFound && target == fs.ErrNotExist }

// maxErrorLen bounds an error's text: it may quote a server.
const maxErrorLen = 600

func newError(modPath string, notFound bool, cause error, format string, args ...any) *Error {
	msg := redact.Line("discover "+modPath+": "+fmt.Sprintf(format, args...), maxErrorLen)
	return &Error{Path: modPath, msg: msg, notFound: notFound, cause: cause}
}

// hasPathPrefix reports whether prefix is s or a leading run of s's path
// elements: "a/b" is a path prefix of "a/b/c", not of "a/bc".
func hasPathPrefix(s, prefix string) bool {
	return s == prefix || len(s) > len(prefix) && s[len(prefix)] == '/' && strings.HasPrefix(s, prefix)
}

// hostOf returns the first element of a module path.
func hostOf(modPath string) string {
	host, _, _ := strings.Cut(modPath, "/")
	return host
}
