package gitserver

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// BaseTime is the author and committer date of a repository's first
// commit; each later commit is one hour after the previous one.
var BaseTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	authorName  = "Fixture Author"
	authorEmail = "author@corp.test"
)

// repoName is a served name: slash-separated segments of safe characters,
// none starting with a dot (no "..", no hidden directories).
var repoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*)*$`)

// Repo is a working git repository built by a test.
type Repo struct {
	t    testing.TB
	name string
	dir  string

	mu      sync.Mutex
	commits int // commits made so far; the next one is dated BaseTime+commits hours
}

// NewRepo creates an empty repository (branch main, no commit) in a
// temporary directory, to be served as "<name>.git".
func NewRepo(t testing.TB, name string) *Repo {
	t.Helper()
	RequireGit(t)
	if !repoName.MatchString(name) || strings.HasSuffix(name, ".git") {
		t.Fatalf("gitserver: bad repository name %q (want segments like team/repo, no .git suffix)", name)
	}
	r := &Repo{t: t, name: name, dir: t.TempDir()}
	r.Git("-c", "init.defaultBranch=main", "init", "-q")
	return r
}

// RequireGit skips the test when the git binary (with git http-backend) is
// missing, or fails it under CI=true.
func RequireGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		testenv.SkipOrFatal(t, "git not found: %v", err)
	}
}

// Name is the repository's served name, "team/repo".
func (r *Repo) Name() string { return r.name }

// Dir is the working tree's directory.
func (r *Repo) Dir() string { return r.dir }

// gitDir is what the server exposes.
func (r *Repo) gitDir() string { return filepath.Join(r.dir, ".git") }

// Env is the environment git runs with for this repository: no global or
// system configuration and fixed identities and dates, so that the same
// steps give the same hashes on every machine.
func (r *Repo) env() []string {
	r.mu.Lock()
	date := BaseTime.Add(time.Duration(r.commits) * time.Hour)
	r.mu.Unlock()
	d := fmt.Sprintf("%d +0000", date.Unix())
	return append(CleanEnv(),
		"GIT_AUTHOR_NAME="+authorName, "GIT_AUTHOR_EMAIL="+authorEmail, "GIT_AUTHOR_DATE="+d,
		"GIT_COMMITTER_NAME="+authorName, "GIT_COMMITTER_EMAIL="+authorEmail, "GIT_COMMITTER_DATE="+d,
	)
}

// CleanEnv is the process environment without any GIT_* variable, plus
// GIT_CONFIG_GLOBAL=/dev/null, GIT_CONFIG_NOSYSTEM=1 and
// GIT_TERMINAL_PROMPT=0: git run with it sees no configuration of the
// machine or the user running the tests, and never prompts.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
}

// Git runs git with args in the working tree and returns its standard
// output with surrounding white space trimmed.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = r.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("gitserver: %s: git %s: %v\n%s", r.name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(stdout.String())
}

// path turns a slash-separated path of the tree into a file name, refusing
// anything that would leave the working tree or touch .git.
func (r *Repo) path(p string) string {
	r.t.Helper()
	clean := filepath.ToSlash(filepath.Clean(filepath.FromSlash(p)))
	if p == "" || filepath.IsAbs(p) || clean == ".." || strings.HasPrefix(clean, "../") || clean == ".git" || strings.HasPrefix(clean, ".git/") {
		r.t.Fatalf("gitserver: %s: bad path %q", r.name, p)
	}
	return filepath.Join(r.dir, filepath.FromSlash(clean))
}

// Write creates or replaces the file at path (slash-separated, parents
// created) with content.
func (r *Repo) Write(path, content string) {
	r.t.Helper()
	name := r.path(path)
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// Symlink creates a symbolic link at path pointing to target (stored as
// is, so it may be relative, dangling or point outside the tree).
func (r *Repo) Symlink(path, target string) {
	r.t.Helper()
	name := r.path(path)
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		r.t.Fatal(err)
	}
	os.Remove(name)
	if err := os.Symlink(target, name); err != nil {
		r.t.Fatal(err)
	}
}

// Remove deletes the file, link or directory at path, which must exist.
func (r *Repo) Remove(path string) {
	r.t.Helper()
	name := r.path(path)
	if _, err := os.Lstat(name); err != nil {
		r.t.Fatalf("gitserver: %s: remove: %v", r.name, err)
	}
	if err := os.RemoveAll(name); err != nil {
		r.t.Fatal(err)
	}
}

// Commit records every change of the working tree (additions, changes,
// removals; an empty commit when there is none) and returns the new
// commit's hash.
func (r *Repo) Commit(msg string) string {
	r.t.Helper()
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "--no-verify", "-m", msg)
	r.mu.Lock()
	r.commits++
	r.mu.Unlock()
	return r.Git("rev-parse", "HEAD")
}

// Tag creates a lightweight tag at HEAD.
func (r *Repo) Tag(name string) {
	r.t.Helper()
	r.Git("tag", "--", name)
}

// AnnotatedTag creates an annotated tag at HEAD with message msg.
func (r *Repo) AnnotatedTag(name, msg string) {
	r.t.Helper()
	r.Git("tag", "-a", "-m", msg, "--", name)
}

// TagAt creates a lightweight tag at rev.
func (r *Repo) TagAt(name, rev string) {
	r.t.Helper()
	r.Git("tag", "--", name, rev)
}

// MoveTag points the existing tag name at rev (as a lightweight tag).
func (r *Repo) MoveTag(name, rev string) {
	r.t.Helper()
	r.Git("tag", "-f", "--", name, rev)
}

// Branch creates branch name at HEAD and switches to it.
func (r *Repo) Branch(name string) {
	r.t.Helper()
	r.Git("checkout", "-q", "-b", name)
}

// Checkout switches to rev: a branch, or a tag or commit (detached HEAD).
func (r *Repo) Checkout(rev string) {
	r.t.Helper()
	r.Git("checkout", "-q", rev, "--")
}
