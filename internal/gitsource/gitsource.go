// Package gitsource is a source.Source for private modules served straight
// from git repositories: it finds a module's repository (package
// discover), keeps a bare mirror of it (package gitmirror), and answers
// the module proxy protocol from the mirror exactly as the go command
// does in GOPROXY=direct mode: the same version lists, the same
// pseudo-versions, the same go.mod files and byte-for-byte the same zips.
//
// The rules it reproduces are those of the go command's modfetch
// (coderepo.go over codehost/git.go): how a module path maps to a
// directory and a tag prefix of its repository, which tags are versions,
// +incompatible, pseudo-version bases, the validation of a pseudo-version
// someone asks for, go.mod lookup in a /vN subdirectory or at the root,
// the synthesized go.mod of a repository without one, and the zip built
// from `git archive`.
package gitsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/modgate/modgate/internal/discover"
	"github.com/modgate/modgate/internal/gitmirror"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/source"
)

// DefaultFetchInterval is Config.FetchInterval when it is zero.
const DefaultFetchInterval = 10 * time.Second

// Config configures a Source.
type Config struct {
	// Lookup finds the repository of a module path.
	Lookup discover.Lookuper
	// Mirrors holds the bare mirrors the answers are read from.
	Mirrors *gitmirror.Mirrors
	// ScratchDir holds the temporary files zips are built in; the
	// system's temporary directory when empty.
	ScratchDir string
	// FetchInterval is the shortest time between two fetches of one
	// mirror: a list, an @latest or a branch query fetches the mirror
	// unless it was fetched more recently than that, and so does a
	// revision the mirror does not have (a tag pushed a moment ago, or a
	// typo asked for in a loop). DefaultFetchInterval when zero.
	FetchInterval time.Duration
	Logger        *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Source answers for private modules from git mirrors.
type Source struct {
	cfg Config

	mu      sync.Mutex
	mirrors map[string]*mirror // by gitmirror.RepoKey of the remote URL
}

var _ source.Source = (*Source)(nil)

// New returns a Source over cfg.Lookup and cfg.Mirrors.
func New(cfg Config) (*Source, error) {
	if cfg.Lookup == nil {
		return nil, errors.New("gitsource: no repository lookup")
	}
	if cfg.Mirrors == nil {
		return nil, errors.New("gitsource: no mirrors")
	}
	if cfg.ScratchDir == "" {
		cfg.ScratchDir = os.TempDir()
	}
	if err := os.MkdirAll(cfg.ScratchDir, 0o700); err != nil {
		return nil, fmt.Errorf("gitsource: scratch directory: %w", err)
	}
	if cfg.FetchInterval <= 0 {
		cfg.FetchInterval = DefaultFetchInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Source{cfg: cfg, mirrors: map[string]*mirror{}}, nil
}

// String names the source in errors and logs.
func (s *Source) String() string { return "git" }

// List returns the versions of path the repository's tags give, as `go
// list -m -versions` does, without times.
func (s *Source) List(ctx context.Context, path string) ([]string, error) {
	var list []string
	err := s.do(ctx, path, true, func(r *modRepo) error {
		var err error
		list, err = r.versions(ctx)
		return err
	})
	return list, err
}

// Latest returns the .info of the version the go command's @latest query
// chooses: the highest release, else the highest pre-release (retracted
// ones left out), else a pseudo-version of the default branch's head.
func (s *Source) Latest(ctx context.Context, path string) ([]byte, error) {
	var info []byte
	err := s.do(ctx, path, true, func(r *modRepo) error {
		ri, err := r.latest(ctx)
		if err != nil {
			return err
		}
		info, err = r.infoJSON(ri)
		return err
	})
	return info, err
}

// Info resolves a version or a query (a tag, a branch name, a commit hash
// or a prefix of at least 7 hex digits, a pseudo-version) to a canonical
// version and returns its .info.
func (s *Source) Info(ctx context.Context, path, query string) ([]byte, error) {
	if query == "latest" {
		return s.Latest(ctx, path)
	}
	// Names whose meaning changes (branches, HEAD, version prefixes)
	// want a fresh mirror; versions and hashes are looked up first and
	// fetched only when missing.
	fresh := isVersionPrefix(query) || !semver.IsValid(query) && !isHexRev(query)
	var info []byte
	err := s.do(ctx, path, fresh, func(r *modRepo) error {
		ri, err := r.query(ctx, query)
		if err != nil {
			return err
		}
		r.noteVersion(ri)
		info, err = r.infoJSON(ri)
		return err
	})
	return info, err
}

// GoMod returns the go.mod of a canonical version: the repository's file,
// or the one-line file the go command synthesizes when there is none.
func (s *Source) GoMod(ctx context.Context, path, version string) ([]byte, error) {
	var data []byte
	err := s.do(ctx, path, false, func(r *modRepo) error {
		ri, err := r.checkVersion(ctx, version)
		if err != nil {
			return err
		}
		r.noteVersion(ri)
		data, err = r.goMod(ctx, ri, version)
		return err
	})
	return data, err
}

// Zip builds the module zip of a canonical version in a temporary file of
// Config.ScratchDir and streams it; Close removes the file.
func (s *Source) Zip(ctx context.Context, path, version string) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := s.do(ctx, path, false, func(r *modRepo) error {
		ri, err := r.checkVersion(ctx, version)
		if err != nil {
			return err
		}
		r.noteVersion(ri)
		rc, err = r.zip(ctx, ri, version)
		return err
	})
	if err != nil && rc != nil {
		rc.Close()
		rc = nil
	}
	return rc, err
}

// do finds path's repository and mirror and runs f on them. fresh asks for
// the mirror to be fetched first unless it was within FetchInterval (for
// answers that change when the remote does: lists and @latest).
//
// Errors leave as the source package wants them: failures to reach or
// read git are *source.FetchError, everything else the go command would
// call a missing module or version is a *source.NotFoundError worded as
// the go command words it.
func (s *Source) do(ctx context.Context, path string, fresh bool, f func(*modRepo) error) error {
	err := s.run(ctx, path, fresh, f)
	if err == nil {
		return nil
	}
	var fe *source.FetchError
	var nf *source.NotFoundError
	var le *localError
	switch {
	case errors.As(err, &le):
		return le // an internal error: the client gets a request id
	case errors.As(err, &fe):
		named := *fe // "fetching <path> (what was being done) from git <url>: <cause>"
		named.Op = path
		if fe.Op != "" {
			named.Op += " (" + fe.Op + ")"
		}
		return &named
	case errors.As(err, &nf):
		return nf
	case ctx.Err() != nil:
		return &source.FetchError{Source: s.String(), Op: path, Timeout: errors.Is(ctx.Err(), context.DeadlineExceeded), Err: ctx.Err()}
	}
	return &source.NotFoundError{Msg: redact.Text(err.Error())}
}

func (s *Source) run(ctx context.Context, path string, fresh bool, f func(*modRepo) error) error {
	if err := module.CheckPath(path); err != nil {
		return &module.ModuleError{Path: path, Err: err}
	}
	loc, err := s.cfg.Lookup.Lookup(ctx, path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, source.ErrNotFound) {
			return &source.NotFoundError{Msg: redact.Text(err.Error())}
		}
		var fe *source.FetchError
		if errors.As(err, &fe) {
			return fe
		}
		return &source.FetchError{
			Source:  s.String(),
			Op:      "discovery",
			Timeout: errors.Is(err, context.DeadlineExceeded),
			Err:     err,
			Advice:  "check that modgate can reach the module's host, or map the module to its repository (git-repos)",
		}
	}
	m, err := s.mirror(ctx, loc.URL)
	if err != nil {
		return err
	}
	m.served(path)
	r, err := newModRepo(s, m, loc, path)
	if err != nil {
		return err
	}
	if fresh {
		if err := m.fetch(ctx, "fresh"); err != nil {
			return err
		}
	}
	err = f(r)
	if r.gitErr != nil {
		// Whatever the rules made of it, an answer that git failed to
		// give is no answer.
		return r.gitErr
	}
	return err
}

// mirror returns the mirror of remoteURL, opening it once per process and
// fetching it when it was never fetched at all.
func (s *Source) mirror(ctx context.Context, remoteURL string) (*mirror, error) {
	key := gitmirror.RepoKey(remoteURL)
	if key == "" {
		return nil, &source.FetchError{Source: s.String(), Op: "opening a mirror", Err: fmt.Errorf("unusable repository URL %q", redact.URL(remoteURL))}
	}
	s.mu.Lock()
	m := s.mirrors[key]
	if m == nil {
		m = &mirror{s: s, key: key, remote: remoteURL}
		s.mirrors[key] = m
	}
	s.mu.Unlock()
	if err := m.open(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// infoJSON is the .info the go command writes into its module cache for
// a version fetched directly: Version, Time and Origin, where Origin says
// which commit of which repository it is and, for a tag or a branch
// query, through which ref (never for a pseudo-version, whose name says
// the commit already).
func (r *modRepo) infoJSON(ri *revInfo) ([]byte, error) {
	type origin struct {
		VCS    string `json:",omitempty"`
		URL    string `json:",omitempty"`
		Subdir string `json:",omitempty"`
		Hash   string `json:",omitempty"`
		Ref    string `json:",omitempty"`
	}
	o := &origin{VCS: "git", URL: redact.URL(r.m.remote), Subdir: r.codeDir, Hash: ri.hash, Ref: ri.ref}
	if module.IsPseudoVersion(ri.version) {
		o.Ref = ""
	}
	return json.Marshal(struct {
		Version string
		Time    time.Time
		Origin  *origin
	}{ri.version, ri.time.UTC(), o})
}

// fetchError describes a failure of git on the mirror of m while doing
// op ("" for fetching); the module path is added by Source.do. A remote
// that has no such repository is a not-found answer: the module is not
// there. The gitmirror error stays in the chain (its Kind says what went
// wrong), and it holds no credential.
func (m *mirror) fetchError(op string, err error) error {
	if op == "" && errors.Is(err, fs.ErrNotExist) {
		return &source.NotFoundError{Msg: "repository " + redact.URL(m.remote) + ": " + redact.Text(err.Error())}
	}
	var ge *gitmirror.Error
	if !errors.As(err, &ge) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		// Not the git server's doing but this machine's (its disk, its
		// git binary): not a FetchError, whose text the client sees, but
		// an internal error, which the client gets as a request id and
		// the log gets with its cause (paths of the data dir included).
		return &localError{fmt.Errorf("git source: the local mirror of %s, %s: %w", redact.URL(m.remote), op, err)}
	}
	return &source.FetchError{
		Source:  "git " + redact.URL(m.remote),
		Op:      op,
		Timeout: errors.Is(err, context.DeadlineExceeded),
		Err:     err,
		Advice:  advice(err),
	}
}

// localError is a failure of this machine (its data dir, its git
// binary), neither a missing module nor the git server's doing.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// advice is what the client's error line tells to check, by what git
// said went wrong.
func advice(err error) string {
	var ge *gitmirror.Error
	if !errors.As(err, &ge) {
		return ""
	}
	host := ge.Host
	if host == "" {
		host = "the git host"
	}
	switch ge.Kind {
	case gitmirror.KindAuth:
		return "check modgate's credentials for " + host + " (--netrc, git-hosts)"
	case gitmirror.KindHostKey:
		return "check the known-hosts file of " + host + "'s git-hosts entry (ssh-keyscan, then verify the key out of band)"
	case gitmirror.KindConnect:
		return "check that modgate can reach " + host + " (network, proxy settings)"
	case gitmirror.KindTimeout:
		return "check " + host + ", --git-timeout and --upstream-idle-timeout"
	case gitmirror.KindRefused:
		return "check the repository URL of the module and --insecure"
	case gitmirror.KindTooLarge:
		return "the repository exceeds --git-max-repo-size"
	}
	return "check " + host
}

// notFound is an error meaning "no such module or version", worded by
// the caller as the go command would.
func notFound(format string, args ...any) error {
	return &source.NotFoundError{Msg: redact.Text(fmt.Sprintf(format, args...))}
}

// isNotExist reports whether a gitmirror error means "no such file".
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// trimSlashes is strings.Trim(s, "/").
func trimSlashes(s string) string { return strings.Trim(s, "/") }
