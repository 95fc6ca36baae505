package gitmirror

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Everything here reads the mirror only (git plumbing, no network). Stat
// resolves names; the other methods take full commit hashes, as Stat and
// Refs return them, so that nothing from outside reaches git as anything
// but a checked hash or name.

var (
	// revName is a branch, tag or full ref name: ref-name-safe characters
	// only, starting with a letter or digit (never "-": no option
	// injection; never ":" or "^": no revision syntax).
	revName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/+@-]*$`)
	hexRE   = regexp.MustCompile(`^[0-9a-f]+$`)
)

// minHashDigits is the shortest hash prefix Stat accepts.
const minHashDigits = 7

// checkRev checks a revision name given to Stat.
func checkRev(rev string) error {
	if len(rev) > 255 || !revName.MatchString(rev) || rev == "@" ||
		strings.Contains(rev, "..") || strings.Contains(rev, "//") || strings.Contains(rev, "@{") ||
		strings.Contains(rev, "/.") || strings.HasSuffix(rev, "/") || strings.HasSuffix(rev, ".") ||
		strings.HasSuffix(rev, ".lock") {
		return fmt.Errorf("%w %q: not a valid branch, tag or commit name", ErrUnknownRevision, rev)
	}
	return nil
}

// isHash reports whether s is a full sha1 or sha256 hex hash.
func isHash(s string) bool {
	return (len(s) == 40 || len(s) == 64) && hexRE.MatchString(s)
}

func checkHash(hash string) error {
	if !isHash(hash) {
		return fmt.Errorf("%w %q: not a full commit hash", ErrUnknownRevision, hash)
	}
	return nil
}

// Refs lists the mirror's branches and tags, sorted by name; tags that
// do not lead to a commit are left out.
func (r *Repo) Refs(ctx context.Context) ([]Ref, error) {
	return r.peeledRefs(ctx, "refs/heads/", "refs/tags/")
}

// TagsMerged lists the tags (full ref names) whose commits are ancestors
// of commit hash or hash itself.
func (r *Repo) TagsMerged(ctx context.Context, hash string) ([]Ref, error) {
	if err := checkHash(hash); err != nil {
		return nil, err
	}
	if _, err := r.Stat(ctx, hash); err != nil {
		return nil, err
	}
	return r.peeledRefs(ctx, "--merged="+hash, "refs/tags/")
}

// peeledRefs runs for-each-ref with args and peels what it lists to
// commits.
func (r *Repo) peeledRefs(ctx context.Context, args ...string) ([]Ref, error) {
	const format = "--format=%(refname)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)"
	out, err := r.run(ctx, gitRun{args: append([]string{"for-each-ref", format}, args...)})
	if err != nil {
		return nil, fmt.Errorf("gitmirror: %w", err)
	}
	var refs []Ref
	var nested []int // indexes of tags of tags, peeled below
	for _, line := range readLines(out) {
		f := strings.Split(line, "\x00")
		if len(f) != 5 {
			continue
		}
		switch {
		case f[1] == "commit":
			refs = append(refs, Ref{Name: f[0], Hash: f[2]})
		case f[1] == "tag" && f[3] == "commit":
			refs = append(refs, Ref{Name: f[0], Hash: f[4]})
		case f[1] == "tag" && f[3] == "tag":
			nested = append(nested, len(refs))
			refs = append(refs, Ref{Name: f[0], Hash: f[4]})
		}
	}
	if len(nested) > 0 {
		names := make([]string, len(nested))
		for i, j := range nested {
			names[i] = refs[j].Hash + "^{commit}"
		}
		objs, err := r.catFile(ctx, names, -1, false)
		if err != nil {
			return nil, err
		}
		for i, j := range nested {
			refs[j].Hash = objs[i].oid // "" when it does not lead to a commit
		}
		kept := refs[:0]
		for _, ref := range refs {
			if ref.Hash != "" {
				kept = append(kept, ref)
			}
		}
		refs = kept
	}
	return refs, nil
}

// HEAD is the remote's default branch, "refs/heads/main".
func (r *Repo) HEAD(ctx context.Context) (string, error) {
	out, err := r.run(ctx, gitRun{args: []string{"symbolic-ref", "--quiet", "HEAD"}})
	head := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(head, "refs/heads/") {
		return "", fmt.Errorf("%w HEAD: %s has no default branch (or was never fetched)", ErrUnknownRevision, r.rem.url)
	}
	objs, err := r.catFile(ctx, []string{head + "^{commit}"}, -1, false)
	if err != nil {
		return "", err
	}
	if objs[0].oid == "" {
		return "", fmt.Errorf("%w HEAD: %s has no default branch (or was never fetched)", ErrUnknownRevision, r.rem.url)
	}
	return head, nil
}

// Stat resolves rev (a full ref name, a branch or tag name, a full hash or
// a hash prefix of at least 7 hex digits) to a commit. Like the go
// command, it prefers a tag, then a branch, then a hash; a prefix shared
// by several commits is unknown.
func (r *Repo) Stat(ctx context.Context, rev string) (Commit, error) {
	if err := checkRev(rev); err != nil {
		return Commit{}, err
	}
	var names []string
	if strings.HasPrefix(rev, "refs/") || rev == "HEAD" {
		names = []string{rev}
	} else {
		names = []string{"refs/tags/" + rev, "refs/heads/" + rev}
		if len(rev) >= minHashDigits && len(rev) <= 64 && hexRE.MatchString(rev) {
			names = append(names, rev)
		}
	}
	for i := range names {
		names[i] += "^{commit}"
	}
	objs, err := r.catFile(ctx, names, maxSkip, true)
	if err != nil {
		return Commit{}, err
	}
	for _, o := range objs {
		if o.oid == "" {
			continue
		}
		t, err := committerTime(o.content)
		if err != nil {
			return Commit{}, fmt.Errorf("gitmirror: commit %s: %w", o.oid, err)
		}
		return Commit{Hash: o.oid, Time: t}, nil
	}
	return Commit{}, fmt.Errorf("%w %q in %s", ErrUnknownRevision, rev, r.rem.url)
}

// committerTime reads the committer time of a commit object.
func committerTime(commit []byte) (time.Time, error) {
	for _, line := range strings.Split(string(commit), "\n") {
		if line == "" {
			break // end of the header
		}
		if rest, ok := strings.CutPrefix(line, "committer "); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			sec, err := strconv.ParseInt(f[len(f)-2], 10, 64)
			if err != nil {
				break
			}
			return time.Unix(sec, 0).UTC(), nil
		}
	}
	return time.Time{}, errors.New("no committer time")
}

// ReadFile returns the file at path in commit hash, at most max bytes;
// fs.ErrNotExist (wrapped) when there is none, ErrTooLarge (wrapped) when
// it is larger.
func (r *Repo) ReadFile(ctx context.Context, hash, path string, max int64) ([]byte, error) {
	if err := checkHash(hash); err != nil {
		return nil, err
	}
	if err := checkFilePath(path); err != nil {
		return nil, fmt.Errorf("%s: %w", err.Error(), fs.ErrNotExist)
	}
	if max < 0 {
		max = 0
	}
	objs, err := r.catFile(ctx, []string{hash + "^{commit}", hash + ":" + path}, max, false)
	if err != nil {
		return nil, err
	}
	switch c, f := objs[0], objs[1]; {
	case c.oid == "":
		return nil, fmt.Errorf("%w %s in %s", ErrUnknownRevision, hash, r.rem.url)
	case f.oid == "" || f.typ != "blob":
		return nil, fmt.Errorf("%s at %s: %w", path, hash, fs.ErrNotExist)
	case f.tooLarge:
		return nil, fmt.Errorf("%s at %s is larger than %d bytes: %w", path, hash, max, ErrTooLarge)
	default:
		return f.content, nil
	}
}

// checkFilePath checks a slash-separated path inside a tree.
func checkFilePath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\n\r") {
		return fmt.Errorf("bad file path %q", p)
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("bad file path %q", p)
		}
	}
	return nil
}

// subdirRE is a directory of a module inside a repository: module path
// characters only (no pathspec magic ":" or glob characters).
var subdirRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._~+/-]*$`)

// Archive writes `git archive --format=zip` of commit hash, limited to
// subdir when not empty, to w, as the go command runs it
// (core.autocrlf=input, core.eol=lf, every name under "prefix/"), failing
// once more than max bytes were written. It streams: nothing is held in
// memory. export-subst and export-ignore are off in every mirror, as in
// the go command's. A subdir with no files is fs.ErrNotExist.
func (r *Repo) Archive(ctx context.Context, hash, subdir string, w io.Writer, max int64) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	args := []string{"-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=zip", "--prefix=prefix/", "--end-of-options", hash}
	if subdir != "" {
		if !subdirRE.MatchString(subdir) || checkFilePath(subdir) != nil {
			return fmt.Errorf("bad subdirectory %q: %w", subdir, fs.ErrNotExist)
		}
		args = append(args, subdir)
	}
	lw := &limitWriter{w: w, max: max}
	_, err := r.run(ctx, gitRun{args: args, stdout: lw})
	switch {
	case lw.over:
		return fmt.Errorf("archive of %s is larger than %d bytes: %w", hash, max, ErrTooLarge)
	case lw.err != nil:
		return lw.err
	case err == nil:
		return nil
	}
	var re *runError
	if errors.As(err, &re) {
		switch {
		case strings.Contains(re.stderr, "did not match any files"):
			return fmt.Errorf("%s at %s: %w", subdir, hash, fs.ErrNotExist)
		case strings.Contains(re.stderr, "not a valid object name"), strings.Contains(re.stderr, "not a tree object"):
			return fmt.Errorf("%w %s in %s", ErrUnknownRevision, hash, r.rem.url)
		}
	}
	return fmt.Errorf("gitmirror: %w", err)
}

// limitWriter passes at most max bytes to w and then fails, which makes
// git die of a broken pipe.
type limitWriter struct {
	w    io.Writer
	max  int64
	n    int64
	over bool
	err  error // w's own error
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.max {
		l.over = true
		return 0, ErrTooLarge
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	if err != nil {
		l.err = err
	}
	return n, err
}

// IsAncestor reports whether commit a is an ancestor of (or equal to) b.
func (r *Repo) IsAncestor(ctx context.Context, a, b string) (bool, error) {
	if err := checkHash(a); err != nil {
		return false, err
	}
	if err := checkHash(b); err != nil {
		return false, err
	}
	_, err := r.run(ctx, gitRun{args: []string{"merge-base", "--is-ancestor", a, b}})
	if err == nil {
		return true, nil
	}
	var re *runError
	if errors.As(err, &re) && re.exitCode() == 1 {
		return false, nil
	}
	if errors.As(err, &re) && re.exitCode() == 128 {
		return false, fmt.Errorf("%w: %s", ErrUnknownRevision, gitMessage(re.stderr))
	}
	return false, fmt.Errorf("gitmirror: %w", err)
}

// object is one answer of `git cat-file --batch`.
type object struct {
	oid, typ string // oid "" when missing or ambiguous
	size     int64
	content  []byte // when wanted and not tooLarge
	tooLarge bool
}

// catFile looks up names with one `git cat-file --batch` (or
// --batch-check when contents are not wanted, max < 0): one object per
// name, in order. Contents larger than max are not kept (tooLarge); with
// first, reading stops at the first object found. Names go to git's
// standard input, never its arguments.
func (r *Repo) catFile(ctx context.Context, names []string, max int64, first bool) ([]object, error) {
	mode := "--batch-check"
	if max >= 0 {
		mode = "--batch"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := r.run(ctx, gitRun{args: []string{"cat-file", mode}, stdin: strings.NewReader(strings.Join(names, "\n") + "\n"), stdout: pw})
		pw.CloseWithError(io.ErrUnexpectedEOF) // after a complete answer nothing more is read
		done <- err
	}()
	objs, stopped, perr := parseBatch(bufio.NewReader(pr), len(names), max, first)
	pr.CloseWithError(errors.New("stopped reading"))
	if stopped {
		cancel() // git may still be writing what we do not want
	}
	err := <-done
	switch {
	case perr != nil && err != nil:
		return nil, fmt.Errorf("gitmirror: %w", err)
	case perr != nil:
		return nil, fmt.Errorf("gitmirror: reading git cat-file: %w", perr)
	case err != nil && !stopped:
		return nil, fmt.Errorf("gitmirror: %w", err)
	case len(objs) < len(names) && !first:
		return nil, fmt.Errorf("gitmirror: object larger than %d bytes", maxSkip)
	}
	for len(objs) < len(names) {
		objs = append(objs, object{})
	}
	return objs, nil
}

// maxSkip is the largest object catFile reads past (and discards) to
// answer the names after it.
const maxSkip = 16 << 20

// parseBatch reads n answers of cat-file --batch(-check). It stops early
// (stopped) after the first object found (first), or at an object too
// large to skip.
func parseBatch(br *bufio.Reader, n int, max int64, first bool) (objs []object, stopped bool, err error) {
	for len(objs) < n {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, false, err
		}
		f := strings.Fields(line)
		if len(f) == 2 && (f[1] == "missing" || f[1] == "ambiguous") {
			objs = append(objs, object{})
			continue
		}
		if len(f) != 3 {
			return nil, false, fmt.Errorf("unexpected line %q", lineOf(line))
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || size < 0 {
			return nil, false, fmt.Errorf("unexpected line %q", lineOf(line))
		}
		o := object{oid: f[0], typ: f[1], size: size}
		if max >= 0 {
			if size > max {
				o.tooLarge = true
				if size > maxSkip {
					return append(objs, o), true, nil
				}
				if _, err := io.CopyN(io.Discard, br, size+1); err != nil {
					return nil, false, err
				}
			} else {
				buf := make([]byte, size+1)
				if _, err := io.ReadFull(br, buf); err != nil {
					return nil, false, err
				}
				if buf[size] != '\n' {
					return nil, false, errors.New("object not followed by a newline")
				}
				o.content = buf[:size]
			}
		}
		objs = append(objs, o)
		if first && len(objs) < n {
			return objs, true, nil
		}
	}
	return objs, false, nil
}
