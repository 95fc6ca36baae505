package gitmirror

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv/gitserver"
)

func TestFetchAndRead(t *testing.T) {
	f := newFixture(t, Config{})
	r := f.open(t)
	if !r.FetchedAt().IsZero() {
		t.Fatal("a new mirror says it was fetched")
	}
	if refs, err := r.Refs(context.Background()); err != nil || len(refs) != 0 {
		t.Fatalf("refs of a new mirror: %v, %v", refs, err)
	}
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.FetchedAt().IsZero() {
		t.Error("FetchedAt is zero after a fetch")
	}
	ctx := context.Background()
	want := map[string]string{
		"refs/heads/main":      f.repo.Git("rev-parse", "main"),
		"refs/heads/feature":   f.repo.Git("rev-parse", "feature"),
		"refs/tags/v1.0.0":     f.repo.Git("rev-parse", "v1.0.0"),
		"refs/tags/v1.1.0":     f.repo.Git("rev-parse", "v1.1.0^{commit}"), // annotated: peeled
		"refs/tags/sub/v0.1.0": f.repo.Git("rev-parse", "sub/v0.1.0"),
	}
	refs, err := r.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ref := range refs {
		got[ref.Name] = ref.Hash
	}
	if !mapsEqual(got, want) {
		t.Errorf("Refs = %v\nwant %v", got, want)
	}
	if head, err := r.HEAD(ctx); err != nil || head != "refs/heads/main" {
		t.Errorf("HEAD = %q, %v", head, err)
	}

	main := want["refs/heads/main"]
	for _, rev := range []string{"main", "refs/heads/main", "v1.1.0", "refs/tags/v1.1.0", "HEAD", main, main[:7], main[:12]} {
		c, err := r.Stat(ctx, rev)
		if err != nil || c.Hash != main {
			t.Errorf("Stat(%q) = %v, %v; want %s", rev, c, err, main)
		}
	}
	c, _ := r.Stat(ctx, "v1.0.0")
	if !c.Time.Equal(gitserver.BaseTime) || c.Time.Location() != time.UTC {
		t.Errorf("v1.0.0 time %v, want %v UTC", c.Time, gitserver.BaseTime)
	}
	for _, rev := range []string{"v9.9.9", main[:6], "0000000", "nosuchbranch", "refs/heads/nope"} {
		if _, err := r.Stat(ctx, rev); !errors.Is(err, ErrUnknownRevision) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%q) error %v, want ErrUnknownRevision", rev, err)
		}
	}

	data, err := r.ReadFile(ctx, main, "go.mod", 1000)
	if err != nil || string(data) != "module git.corp.test/team/repo\n\ngo 1.21\n" {
		t.Errorf("ReadFile(go.mod) = %q, %v", data, err)
	}
	if data, err := r.ReadFile(ctx, main, "crlf.txt", 1000); err != nil || string(data) != "one\r\ntwo\r\n" {
		t.Errorf("ReadFile(crlf.txt) = %q, %v", data, err)
	}
	if data, err := r.ReadFile(ctx, main, "link", 1000); err != nil || string(data) != "a.go" {
		t.Errorf("ReadFile(link) = %q, %v (a symlink reads as its target)", data, err)
	}
	for _, p := range []string{"nope.go", "sub", "sub/nope", "../go.mod"} {
		if _, err := r.ReadFile(ctx, main, p, 1000); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%q) error %v, want fs.ErrNotExist", p, err)
		}
	}
	if _, err := r.ReadFile(ctx, main, "go.mod", 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFile over the limit: %v, want ErrTooLarge", err)
	}
	if _, err := r.ReadFile(ctx, strings.Repeat("0", 40), "go.mod", 1000); !errors.Is(err, ErrUnknownRevision) {
		t.Errorf("ReadFile of an unknown commit: %v, want ErrUnknownRevision", err)
	}

	tags, err := r.TagsMerged(ctx, want["refs/tags/v1.0.0"])
	if err != nil || len(tags) != 1 || tags[0].Name != "refs/tags/v1.0.0" {
		t.Errorf("TagsMerged(v1.0.0) = %v, %v", tags, err)
	}
	tags, err = r.TagsMerged(ctx, want["refs/heads/feature"])
	var names []string
	for _, tg := range tags {
		names = append(names, tg.Name)
	}
	if err != nil || !slices.Equal(names, []string{"refs/tags/sub/v0.1.0", "refs/tags/v1.0.0", "refs/tags/v1.1.0"}) {
		t.Errorf("TagsMerged(feature) = %v, %v", names, err)
	}
	if ok, err := r.IsAncestor(ctx, want["refs/tags/v1.0.0"], want["refs/heads/feature"]); !ok || err != nil {
		t.Errorf("IsAncestor(v1.0.0, feature) = %v, %v", ok, err)
	}
	if ok, err := r.IsAncestor(ctx, want["refs/heads/feature"], main); ok || err != nil {
		t.Errorf("IsAncestor(feature, main) = %v, %v", ok, err)
	}
	if _, err := r.IsAncestor(ctx, strings.Repeat("1", 40), main); !errors.Is(err, ErrUnknownRevision) {
		t.Errorf("IsAncestor of an unknown commit: %v", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestIncrementalFetch(t *testing.T) {
	f := newFixture(t, Config{})
	r := f.fetched(t)
	ctx := context.Background()
	first := r.FetchedAt()

	// Nothing changed: only the refs are asked for.
	before := f.srv.GitRequests("team/repo")
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	noChange := f.srv.GitRequests("team/repo") - before

	f.repo.Write("new.go", "package repo\n")
	c3 := f.repo.Commit("third")
	f.repo.Tag("v1.2.0")
	f.repo.MoveTag("v1.0.0", c3)
	f.repo.Git("tag", "-d", "sub/v0.1.0")
	f.repo.Git("branch", "-D", "feature")
	before = f.srv.GitRequests("team/repo")
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	changed := f.srv.GitRequests("team/repo") - before
	if noChange >= changed {
		t.Errorf("a fetch with nothing new made %d requests, one with changes %d", noChange, changed)
	}
	for _, rev := range []string{"v1.2.0", "v1.0.0", "main"} {
		if c, err := r.Stat(ctx, rev); err != nil || c.Hash != c3 {
			t.Errorf("Stat(%s) = %v, %v; want %s", rev, c, err, c3)
		}
	}
	for _, rev := range []string{"sub/v0.1.0", "feature"} {
		if _, err := r.Stat(ctx, rev); !errors.Is(err, ErrUnknownRevision) {
			t.Errorf("Stat(%s) after it was deleted: %v", rev, err)
		}
	}
	if !r.FetchedAt().After(first) {
		t.Error("FetchedAt did not advance")
	}

	// The remote's default branch moves.
	f.repo.Branch("dev")
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if head, err := r.HEAD(ctx); err != nil || head != "refs/heads/dev" {
		t.Errorf("HEAD = %q, %v; want refs/heads/dev", head, err)
	}

	// A restart reuses the mirror as it is.
	m2 := newMirrors(t, f.srv, Config{Dir: f.m.cfg.Dir, Credentials: f.m.cfg.Credentials})
	before = f.srv.Requests()
	r2, err := m2.Open(ctx, f.url)
	if err != nil {
		t.Fatal(err)
	}
	if !r2.FetchedAt().Equal(r.FetchedAt()) {
		t.Errorf("FetchedAt after reopening %v, want %v", r2.FetchedAt(), r.FetchedAt())
	}
	if c, err := r2.Stat(ctx, "v1.2.0"); err != nil || c.Hash != c3 {
		t.Errorf("Stat after reopening = %v, %v", c, err)
	}
	if f.srv.Requests() != before {
		t.Error("opening an existing mirror reached the server")
	}
	if r2.Dir() != r.Dir() {
		t.Errorf("reopened dir %s, want %s", r2.Dir(), r.Dir())
	}
}

func TestConcurrentFetchShared(t *testing.T) {
	f := newFixture(t, Config{})
	r := f.fetched(t)
	ctx := context.Background()

	f.repo.Write("x", "1")
	f.repo.Commit("x1")
	before := f.srv.GitRequests("team/repo")
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	one := f.srv.GitRequests("team/repo") - before

	f.repo.Write("x", "2")
	want := f.repo.Commit("x2")
	const n = 16
	before = f.srv.GitRequests("team/repo")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.Fetch(ctx)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("one fetch: %d requests, %d concurrent: %d", one, n, f.srv.GitRequests("team/repo")-before)
	// A burst shares at most two fetches (the one running, and the one
	// queued behind it for everyone who came later).
	if got := f.srv.GitRequests("team/repo") - before; got > 2*one {
		t.Errorf("%d concurrent fetches made %d requests; one fetch makes %d", n, got, one)
	}
	if c, err := r.Stat(ctx, "main"); err != nil || c.Hash != want {
		t.Errorf("main = %v, %v; want %s", c, err, want)
	}
}

// zipListing is the names, modes and contents of a zip, in order.
func zipListing(t *testing.T, data []byte) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out = append(out, f.Name+" "+f.Mode().String()+" "+string(b))
	}
	return out
}

func TestArchive(t *testing.T) {
	f := newFixture(t, Config{})
	f.repo.Write(".gitattributes", "ignored.txt export-ignore\n*.txt text eol=crlf\n")
	f.repo.Write("ignored.txt", "still there\n")
	f.repo.Write("sub/x.go", "package sub\r\n")
	hash := f.repo.Commit("attributes")
	r := f.fetched(t)
	ctx := context.Background()

	var got bytes.Buffer
	if err := r.Archive(ctx, hash, "", &got, 1<<20); err != nil {
		t.Fatal(err)
	}
	// What git archive makes of the same commit, run as the go command
	// runs it in its own mirrors (export-ignore and export-subst off).
	attrs := filepath.Join(f.repo.Dir(), ".git", "info", "attributes")
	os.MkdirAll(filepath.Dir(attrs), 0o755)
	if err := os.WriteFile(attrs, []byte(exportAttributes), 0o644); err != nil {
		t.Fatal(err)
	}
	wantBytes := gitBytes(t, f.repo.Dir(), "-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=zip", "--prefix=prefix/", hash)
	if !bytes.Equal(got.Bytes(), wantBytes) {
		t.Errorf("archive differs from git archive:\n%q\nwant\n%q", zipListing(t, got.Bytes()), zipListing(t, wantBytes))
	}
	listing := strings.Join(zipListing(t, got.Bytes()), "\n")
	if !strings.Contains(listing, "prefix/ignored.txt") {
		t.Errorf("export-ignore was applied:\n%s", listing)
	}

	got.Reset()
	if err := r.Archive(ctx, hash, "sub", &got, 1<<20); err != nil {
		t.Fatal(err)
	}
	wantBytes = gitBytes(t, f.repo.Dir(), "-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=zip", "--prefix=prefix/", hash, "sub")
	if !bytes.Equal(got.Bytes(), wantBytes) {
		t.Errorf("archive of sub differs:\n%q\nwant\n%q", zipListing(t, got.Bytes()), zipListing(t, wantBytes))
	}

	if err := r.Archive(ctx, hash, "nosuchdir", io.Discard, 1<<20); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("archive of a missing subdir: %v, want fs.ErrNotExist", err)
	}
	if err := r.Archive(ctx, hash, "", io.Discard, 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("archive over the limit: %v, want ErrTooLarge", err)
	}
	if err := r.Archive(ctx, strings.Repeat("e", 40), "", io.Discard, 1<<20); !errors.Is(err, ErrUnknownRevision) {
		t.Errorf("archive of an unknown commit: %v, want ErrUnknownRevision", err)
	}
}

// gitBytes runs git in dir with no configuration and returns its output.
func gitBytes(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitserver.CleanEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return out
}

// TestOddTags: a tag of a tag is peeled to its commit; a tag of a blob is
// no version of anything and is left out.
func TestOddTags(t *testing.T) {
	f := newFixture(t, Config{})
	f.repo.Git("tag", "-a", "-m", "tag of a tag", "v2.0.0", "v1.1.0")
	f.repo.Git("tag", "blobtag", "HEAD:go.mod")
	r := f.fetched(t)
	refs, err := r.Refs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ref := range refs {
		got[ref.Name] = ref.Hash
	}
	if want := f.repo.Git("rev-parse", "v1.1.0^{commit}"); got["refs/tags/v2.0.0"] != want {
		t.Errorf("v2.0.0 = %q, want %s", got["refs/tags/v2.0.0"], want)
	}
	if _, ok := got["refs/tags/blobtag"]; ok {
		t.Error("a tag of a blob is listed")
	}
	if _, err := r.Stat(context.Background(), "blobtag"); !errors.Is(err, ErrUnknownRevision) {
		t.Errorf("Stat(blobtag) = %v", err)
	}
}
