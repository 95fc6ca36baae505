// Package gitmirror keeps a persistent bare mirror of each remote git
// repository modgate reads private modules from, under one directory of
// the data dir, and answers questions about them (refs, commits, files,
// archives) with the git binary.
//
// Each mirror is a bare repository in a directory named by a hash of the
// remote's normalized URL, never by a name that comes from outside. It
// holds the remote's branches and tags under their own names
// (refs/heads/*, refs/tags/*) and its HEAD, and is brought up to date
// incrementally by Repo.Fetch; everything survives restarts.
//
// git runs as a tool modgate does not trust with anything it need not
// have: no prompts (no terminal, no askpass), no hooks, an allow-list of
// transports (https, ssh, and http only where Config.AllowHTTP says so;
// file://, ext:: and other helpers never), timeouts for the command and for
// a stalled transfer, and its whole process group killed on cancel. The
// operator's global git configuration still applies (credential helpers,
// insteadOf rules, proxies), but modgate's settings beat it: they are
// passed in GIT_CONFIG_* environment variables, which also keeps
// credentials out of the process list. Credentials go only to the host
// they are configured for and are never written to disk.
package gitmirror

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modgate/modgate/internal/gitauth"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout      = 10 * time.Minute
	DefaultLowSpeedTime = 30 * time.Second
	DefaultMaxRepoSize  = 2 << 30
)

// Config describes where mirrors live and how git may reach remotes.
type Config struct {
	Dir string // root of all mirrors, e.g. <data-dir>/git
	// Credentials returns what to present to host ("git.corp.example.com"
	// or "git.corp.example.com:8443"); ok false means none. It is asked
	// at every fetch, so rotated credentials apply at once.
	Credentials func(host string) (gitauth.Credentials, bool)
	// AllowHTTP reports whether plain http may be used for a remote URL
	// (--insecure). Without it only https and ssh are allowed.
	AllowHTTP func(remoteURL string) bool
	// Timeout bounds one git command (a fetch of a big repository
	// included); LowSpeedTime aborts a transfer that moves less than
	// 1 KiB/s for that long (a hanging server). Defaults: DefaultTimeout,
	// DefaultLowSpeedTime (whole seconds; git rounds up).
	Timeout      time.Duration
	LowSpeedTime time.Duration
	// MaxRepoSize bounds the disk one mirror may take (DefaultMaxRepoSize
	// when zero): a fetch that would grow it further is stopped.
	MaxRepoSize int64
	Logger      *slog.Logger
}

// Mirrors is the set of mirrors under Config.Dir.
type Mirrors struct {
	cfg     Config
	gitPath string
	env     []string // see gitEnv
	log     *slog.Logger

	// ctx ends with Close: it bounds fetches, which outlive the calls
	// that started them (other callers may be waiting for them).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	repos  map[string]*Repo // by directory name
	closed bool
}

// minGit is the oldest git with every option used here (fetch --atomic).
var minGit = [2]int{2, 31}

// New prepares cfg.Dir and checks that a recent enough git is installed.
func New(cfg Config) (*Mirrors, error) {
	if cfg.Dir == "" {
		return nil, errors.New("gitmirror: no directory")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.LowSpeedTime <= 0 {
		cfg.LowSpeedTime = DefaultLowSpeedTime
	}
	if cfg.MaxRepoSize <= 0 {
		cfg.MaxRepoSize = DefaultMaxRepoSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Credentials == nil {
		cfg.Credentials = func(string) (gitauth.Credentials, bool) { return gitauth.Credentials{}, false }
	}
	if cfg.AllowHTTP == nil {
		cfg.AllowHTTP = func(string) bool { return false }
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("gitmirror: private modules need the git binary: %w", err)
	}
	if err := checkGitVersion(gitPath); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("gitmirror: %w", err)
	}
	removeStaleTemps(cfg.Dir)
	ctx, cancel := context.WithCancel(context.Background())
	return &Mirrors{
		cfg:     cfg,
		gitPath: gitPath,
		env:     gitEnv(os.Environ()),
		log:     cfg.Logger,
		ctx:     ctx,
		cancel:  cancel,
		repos:   map[string]*Repo{},
	}, nil
}

var gitVersionRE = regexp.MustCompile(`git version (\d+)\.(\d+)`)

func checkGitVersion(gitPath string) error {
	out, err := exec.Command(gitPath, "version").Output()
	if err != nil {
		return fmt.Errorf("gitmirror: git version: %w", err)
	}
	m := gitVersionRE.FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("gitmirror: cannot read the version of git from %q", strings.TrimSpace(string(out)))
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	if major < minGit[0] || major == minGit[0] && minor < minGit[1] {
		return fmt.Errorf("gitmirror: git %d.%d is too old; private modules need git %d.%d or later", major, minor, minGit[0], minGit[1])
	}
	return nil
}

// tempPrefix names mirrors being created; they are renamed into place
// once complete, so a crash leaves only debris with this prefix.
const tempPrefix = ".tmp-"

// removeStaleTemps removes creation debris older than an hour (younger
// ones may belong to another process sharing the directory).
func removeStaleTemps(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// Close stops fetches in progress and waits for them to end. Repos of m
// must not be used afterwards.
func (m *Mirrors) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return nil
}

// dirName is the directory of a mirror: a hash of its normalized URL.
func dirName(normURL string) string {
	sum := sha256.Sum256([]byte(normURL))
	return hex.EncodeToString(sum[:16])
}

// Open returns the mirror of remoteURL, creating an empty bare repository
// for it if there is none (it fetches nothing). A URL whose scheme is not
// allowed, that carries credentials or is not a plain remote URL is
// refused with an *Error of KindRefused; git does not run.
func (m *Mirrors) Open(ctx context.Context, remoteURL string) (*Repo, error) {
	rem, err := parseRemote(remoteURL)
	if err != nil {
		return nil, err
	}
	if err := m.checkScheme(rem); err != nil {
		return nil, err
	}
	name := dirName(rem.url)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("gitmirror: closed")
	}
	if r := m.repos[name]; r != nil {
		return r, nil
	}
	r := &Repo{m: m, rem: rem, dir: filepath.Join(m.cfg.Dir, name)}
	if err := r.openOrCreate(ctx); err != nil {
		return nil, err
	}
	m.repos[name] = r
	return r, nil
}

// checkScheme refuses plain http unless the configuration allows it for
// this URL.
func (m *Mirrors) checkScheme(rem remote) error {
	if rem.scheme == "http" && !m.cfg.AllowHTTP(rem.url) {
		return &Error{Host: rem.host, Kind: KindRefused, Detail: "plain http is not allowed for this remote (see --insecure)"}
	}
	return nil
}

// Repo is one mirror.
type Repo struct {
	m   *Mirrors
	rem remote
	dir string

	mu        sync.Mutex
	running   *fetchCall // the fetch in progress
	next      *fetchCall // the one that starts when it ends, shared by everyone waiting
	fetchedAt time.Time
}

// Ref is a branch or tag and the commit it points to (annotated tags peeled).
type Ref struct {
	Name string // full name: "refs/tags/v1.2.3", "refs/heads/main"
	Hash string // 40-hex commit hash
}

// Commit is a resolved revision.
type Commit struct {
	Hash string
	Time time.Time // committer time, UTC
}

// Files of a mirror besides git's own.
const (
	fetchedFile = "modgate-fetched" // time of the last successful fetch
	lockName    = "modgate.lock"    // flock of fetches across processes
)

// exportAttributes turns off export-subst and export-ignore for every
// file, as the go command does in its own mirrors before `git archive`, so
// that zips do not depend on attributes in the repository.
const exportAttributes = "\n* -export-subst -export-ignore\n"

// openOrCreate checks the mirror directory, or creates it.
func (r *Repo) openOrCreate(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(r.dir, "HEAD")); err == nil {
		return r.check(ctx)
	}
	tmp, err := os.MkdirTemp(r.m.cfg.Dir, tempPrefix)
	if err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	t := &Repo{m: r.m, rem: r.rem, dir: tmp}
	steps := [][]string{
		{"init", "--bare", "--quiet", "--template=", "--object-format=sha1"},
		{"config", "remote.origin.url", r.rem.url},
		{"config", "--add", "remote.origin.fetch", "+refs/heads/*:refs/heads/*"},
		{"config", "--add", "remote.origin.fetch", "+refs/tags/*:refs/tags/*"},
		{"config", "remote.origin.tagOpt", "--no-tags"},
		{"config", "core.logAllRefUpdates", "false"},
	}
	for _, args := range steps {
		if _, err := t.run(ctx, gitRun{args: args}); err != nil {
			return fmt.Errorf("gitmirror: creating the mirror of %s: %w", r.rem.url, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(tmp, "info"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "info", "attributes"), []byte(exportAttributes), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, r.dir); err != nil {
		// Another process may have created it first.
		if _, serr := os.Stat(filepath.Join(r.dir, "HEAD")); serr == nil {
			return r.check(ctx)
		}
		return fmt.Errorf("gitmirror: %w", err)
	}
	r.m.log.Info("git mirror created", "remote", r.rem.url, "dir", r.dir)
	return nil
}

// check makes sure an existing mirror directory is the mirror of r's
// remote, and reads when it was last fetched.
func (r *Repo) check(ctx context.Context) error {
	out, err := r.run(ctx, gitRun{args: []string{"config", "--get", "remote.origin.url"}})
	if err != nil {
		return fmt.Errorf("gitmirror: mirror %s of %s is unusable (remove it to start over): %w", r.dir, r.rem.url, err)
	}
	if got := strings.TrimSpace(string(out)); got != r.rem.url {
		return fmt.Errorf("gitmirror: mirror %s belongs to another remote URL", r.dir)
	}
	attrs, _ := os.ReadFile(filepath.Join(r.dir, "info", "attributes"))
	if !strings.HasSuffix(string(attrs), exportAttributes) {
		if err := os.MkdirAll(filepath.Join(r.dir, "info"), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(r.dir, "info", "attributes"), []byte(exportAttributes), 0o600); err != nil {
			return err
		}
	}
	if b, err := os.ReadFile(filepath.Join(r.dir, fetchedFile)); err == nil {
		if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err == nil {
			r.fetchedAt = t
		}
	}
	return nil
}

// URL is the remote's URL, credentials never included.
func (r *Repo) URL() string { return r.rem.url }

// Host is the remote's host ("git.corp.example.com", with a port when it
// is not the default), as errors name it and credentials are looked up.
func (r *Repo) Host() string { return r.rem.host }

// Dir is the mirror's directory.
func (r *Repo) Dir() string { return r.dir }

// FetchedAt is when the last successful fetch ended (zero: never). A
// mirror never fetched has no refs; it is not a remote without tags.
func (r *Repo) FetchedAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetchedAt
}

// Size is the disk the mirror takes, in bytes (sizes of its files).
func (r *Repo) Size() (int64, error) { return dirSize(r.dir) }

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking: a temporary file of git's
			}
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}

// writeFetched records t as the time of the last successful fetch.
func (r *Repo) writeFetched(t time.Time) error {
	name := filepath.Join(r.dir, fetchedFile)
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(t.UTC().Format(time.RFC3339Nano)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// readLines splits output into lines, without empty ones.
func readLines(out []byte) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 0, 64<<10), maxOutput)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// Remotes returns the remote URLs of the mirrors kept under Config.Dir,
// opened by this process or by an earlier one, so that a caller that
// learns of a repository by another of its names (a webhook) can find its
// mirror without creating one. Directories that are not complete mirrors
// are skipped.
func (m *Mirrors) Remotes(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("gitmirror: %w", err)
	}
	var urls []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		dir := filepath.Join(m.cfg.Dir, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
			continue
		}
		r := &Repo{m: m, dir: dir}
		out, err := r.run(ctx, gitRun{args: []string{"config", "--get", "remote.origin.url"}})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		if u := strings.TrimSpace(string(out)); u != "" && dirName(u) == e.Name() {
			urls = append(urls, u)
		}
	}
	return urls, nil
}
