package gitsource

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modgate/modgate/internal/discover"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/testenv/gitserver"
)

// oneRepo serves a repository "team/repo" with go.mod, v1.0.0 on the first
// commit and a second commit on main.
func oneRepo(t *testing.T) (*gitserver.Repo, *gitserver.Server, *env, [2]string) {
	t.Helper()
	r := gitserver.NewRepo(t, "team/repo")
	r.Write("go.mod", "module git.corp.test/team/repo\n")
	r.Write("a.go", "package repo\n")
	c1 := r.Commit("one")
	r.Tag("v1.0.0")
	r.Write("b.go", "package repo\n")
	c2 := r.Commit("two")
	srv := gitserver.Start(t, gitserver.Options{Repos: []*gitserver.Repo{r}, User: fixtureUser, Password: fixturePassword})
	lookup := staticLookup{}
	lookup.add(srv, r)
	return r, srv, newEnv(t, srv, lookup), [2]string{c1, c2}
}

const repoPath = host + "/team/repo"

func info(t *testing.T, e *env, path, query string) (infoDoc, error) {
	t.Helper()
	data, err := e.src.Info(context.Background(), path, query)
	if err != nil {
		return infoDoc{}, err
	}
	return parseInfo(t, data), nil
}

// TestFetchInterval: a revision the mirror does not know makes it fetch,
// but at most once per FetchInterval however often it is asked, and a
// list is as fresh as that too.
func TestFetchInterval(t *testing.T) {
	r, srv, e, _ := oneRepo(t)
	ctx := context.Background()
	if _, err := info(t, e, repoPath, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	requests := func() int64 { return srv.GitRequests(r.Name()) }
	n0 := requests()
	if n0 == 0 {
		t.Fatal("no git request for the first use of the repository")
	}

	// Within the interval of the first fetch: nothing is fetched.
	for range 3 {
		if _, err := info(t, e, repoPath, "v9.9.9"); !isNotFound(err) {
			t.Fatalf("Info(v9.9.9) = %v, want not found", err)
		}
	}
	if _, err := e.src.List(ctx, repoPath); err != nil {
		t.Fatal(err)
	}
	if n := requests(); n != n0 {
		t.Fatalf("%d git requests within the fetch interval", n-n0)
	}

	// A tag pushed now is seen once the interval has passed...
	r.Write("c.go", "package repo\n")
	r.Commit("three")
	r.Tag("v1.1.0")
	if _, err := info(t, e, repoPath, "v1.1.0"); !isNotFound(err) {
		t.Fatalf("Info(v1.1.0) within the interval = %v, want not found", err)
	}
	e.clock.Advance(DefaultFetchInterval)
	got, err := info(t, e, repoPath, "v1.1.0")
	if err != nil || got.Version != "v1.1.0" {
		t.Fatalf("Info(v1.1.0) after the interval = %+v, %v", got, err)
	}
	n1 := requests()
	if n1 == n0 {
		t.Fatal("no fetch for a missing revision after the interval")
	}
	// ... and the next misses wait for the next interval again.
	for range 3 {
		if _, err := info(t, e, repoPath, "v9.9.9"); !isNotFound(err) {
			t.Fatalf("Info(v9.9.9) = %v, want not found", err)
		}
	}
	if n := requests(); n != n1 {
		t.Fatalf("%d git requests for repeated misses within one interval", n-n1)
	}
	e.clock.Advance(DefaultFetchInterval)
	list, err := e.src.List(ctx, repoPath)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(list, []string{"v1.0.0", "v1.1.0"}) {
		t.Errorf("List = %q", list)
	}
	if requests() == n1 {
		t.Error("List after the interval did not fetch")
	}

	// A branch query is as fresh as the interval allows.
	before, err := info(t, e, repoPath, "main")
	if err != nil {
		t.Fatal(err)
	}
	head := r.Commit("four")
	if got, err := info(t, e, repoPath, "main"); err != nil || got.Origin.Hash != before.Origin.Hash {
		t.Errorf("Info(main) within the interval = %+v, %v; want still %s", got, err, before.Origin.Hash)
	}
	e.clock.Advance(DefaultFetchInterval)
	if got, err := info(t, e, repoPath, "main"); err != nil || got.Origin.Hash != head {
		t.Errorf("Info(main) after the interval = %+v, %v; want %s", got, err, head)
	}
}

// TestRefresh: a push event fetches at once and names the modules served
// from the repository, whatever the spelling of its URL; the names
// survive a restart; an unknown repository is no error.
func TestRefresh(t *testing.T) {
	r, srv, e, _ := oneRepo(t)
	ctx := context.Background()
	e.lookup[repoPath+"/sub"] = discover.Repo{Root: repoPath, URL: srv.RepoURL(r)}
	for _, p := range []string{repoPath, repoPath + "/sub"} {
		e.src.List(ctx, p)
	}

	r.Write("c.go", "package repo\n")
	r.Commit("three")
	r.Tag("v1.1.0")
	want := []string{repoPath, repoPath + "/sub"}
	for _, u := range []string{
		srv.RepoURL(r),
		"https://GIT.corp.test/team/repo",
		"http://someone:secret@git.corp.test/team/repo.git/",
		"ssh://git@git.corp.test/team/repo.git",
		"git@git.corp.test:team/repo.git",
	} {
		mods, err := e.src.Refresh(ctx, u)
		if err != nil {
			t.Fatalf("Refresh(%s): %v", u, err)
		}
		slices.Sort(mods)
		if !slices.Equal(mods, want) {
			t.Errorf("Refresh(%s) = %q, want %q", u, mods, want)
		}
	}
	// Seen without waiting for the fetch interval.
	if got, err := info(t, e, repoPath, "v1.1.0"); err != nil || got.Version != "v1.1.0" {
		t.Fatalf("Info(v1.1.0) after Refresh = %+v, %v", got, err)
	}

	for _, u := range []string{"http://git.corp.test/team/other.git", "http://other.test/team/repo.git", "", "::"} {
		if mods, err := e.src.Refresh(ctx, u); mods != nil || err != nil {
			t.Errorf("Refresh(%q) = %q, %v; want nothing", u, mods, err)
		}
	}

	// After a restart, before any request, a push event finds the mirror
	// on disk by another of its names and what was served from it.
	e.src = e.newSource(t)
	r.Write("d.go", "package repo\n")
	r.Commit("four")
	r.Tag("v1.2.0")
	mods, err := e.src.Refresh(ctx, "git@git.corp.test:team/repo.git")
	slices.Sort(mods)
	if err != nil || !slices.Equal(mods, want) {
		t.Errorf("Refresh after a restart = %q, %v; want %q", mods, err, want)
	}
	if got, err := info(t, e, repoPath, "v1.2.0"); err != nil || got.Version != "v1.2.0" {
		t.Fatalf("Info(v1.2.0) after Refresh after a restart = %+v, %v", got, err)
	}
	// A repository never mirrored is not mirrored because of an event.
	before, _ := os.ReadDir(e.mirrors)
	if mods, err := e.src.Refresh(ctx, "https://git.corp.test/team/never.git"); mods != nil || err != nil {
		t.Errorf("Refresh of an unknown repository = %q, %v", mods, err)
	}
	if after, _ := os.ReadDir(e.mirrors); len(after) != len(before) {
		t.Errorf("an event for an unknown repository created a mirror: %d entries, then %d", len(before), len(after))
	}
}

// TestTagMoved: a tag moved after it was answered is answered with its
// new commit (the store in front keeps the first), with a warning.
func TestTagMoved(t *testing.T) {
	r, srv, e, c := oneRepo(t)
	ctx := context.Background()
	got, err := info(t, e, repoPath, "v1.0.0")
	if err != nil || got.Origin.Hash != c[0] {
		t.Fatalf("Info(v1.0.0) = %+v, %v; want commit %s", got, err, c[0])
	}
	if w := e.logs.warnings(); len(w) != 0 {
		t.Fatalf("warnings before the tag moved: %q", w)
	}

	r.MoveTag("v1.0.0", c[1])
	if _, err := e.src.Refresh(ctx, srv.RepoURL(r)); err != nil {
		t.Fatal(err)
	}
	got, err = info(t, e, repoPath, "v1.0.0")
	if err != nil || got.Origin.Hash != c[1] {
		t.Fatalf("Info(v1.0.0) after the move = %+v, %v; want commit %s", got, err, c[1])
	}
	w := e.logs.warnings()
	if len(w) != 1 || !strings.Contains(w[0], "tag moved") || !strings.Contains(w[0], c[0]) || !strings.Contains(w[0], c[1]) {
		t.Fatalf("warnings = %q, want one naming the move from %s to %s", w, c[0], c[1])
	}
	// Warned once, and remembered across a restart.
	e.src = e.newSource(t)
	if _, err := e.src.GoMod(ctx, repoPath, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if w := e.logs.warnings(); len(w) != 1 {
		t.Errorf("warnings = %q, want still one", w)
	}
}

// TestRefusedInput: queries and versions that are no revision, and
// modules the repository cannot hold, are not found; nothing reaches git
// as an option or a revision expression, and nothing panics.
func TestRefusedInput(t *testing.T) {
	_, _, e, c := oneRepo(t)
	ctx := context.Background()
	for _, q := range []string{
		"-x", "--upload-pack=touch", "HEAD~1", "main^", "v1.0.0:go.mod", "main..v1.0.0", "@{upstream}",
		"v1.0.0\n", "ma in", strings.Repeat("a", 5000), c[0][:6], c[0] + "0", "ffffffffffff", "refs/heads/../../x",
	} {
		if got, err := info(t, e, repoPath, q); !isNotFound(err) {
			t.Errorf("Info(%q) = %+v, %v; want not found", q, got, err)
		}
	}
	for _, v := range []string{"v1.0", "main", "v1.0.0+meta", "", c[0]} {
		if _, err := e.src.GoMod(ctx, repoPath, v); !isNotFound(err) {
			t.Errorf("GoMod(%q) = %v, want not found", v, err)
		}
		if rc, err := e.src.Zip(ctx, repoPath, v); !isNotFound(err) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("Zip(%q) = %v, want not found", v, err)
		}
	}
	for _, p := range []string{"git.corp.test/team/repo/v0", "git.corp.test/team/other", "git.corp.test/team/repo/../x", "Git.corp.test/team/repo"} {
		if _, err := e.src.List(ctx, p); !isNotFound(err) {
			t.Errorf("List(%q) = %v, want not found", p, err)
		}
	}
	// A subdirectory from discovery that would leave the repository.
	e.lookup[host+"/team/escape"] = discover.Repo{Root: host + "/team/escape", URL: "http://git.corp.test/team/repo.git", Subdir: "../x"}
	if _, err := e.src.List(ctx, host+"/team/escape"); err == nil {
		t.Error("List of a module with subdirectory ../x succeeded")
	}
}

// TestCredentialErrors: wrong credentials and an unreachable host are
// fetch errors (not "not found": the module may well exist) that name
// the host and never the secret.
func TestCredentialErrors(t *testing.T) {
	r := gitserver.NewRepo(t, "team/repo")
	r.Write("go.mod", "module git.corp.test/team/repo\n")
	r.Commit("one")
	r.Tag("v1.0.0")
	srv := gitserver.Start(t, gitserver.Options{Repos: []*gitserver.Repo{r}, User: fixtureUser, Password: "another-password"})
	lookup := staticLookup{}
	lookup.add(srv, r)
	lookup[host+"/team/down"] = discover.Repo{Root: host + "/team/down", URL: "http://127.0.0.1:1/team/down.git"}
	lookup[host+"/team/missing"] = discover.Repo{Root: host + "/team/missing", URL: "http://git.corp.test/team/missing.git"}
	e := newEnv(t, srv, lookup)
	if _, err := info(t, e, host+"/team/missing", "v1.0.0"); !isNotFound(err) {
		t.Errorf("Info of a module whose repository the host does not have = %v, want not found", err)
	}
	for _, p := range []string{repoPath, host + "/team/down"} {
		_, err := info(t, e, p, "v1.0.0")
		var fe *source.FetchError
		if !errors.As(err, &fe) || errors.Is(err, source.ErrNotFound) {
			t.Fatalf("Info(%s) = %v (%T), want a fetch error", p, err, err)
		}
		if msg := err.Error() + fe.Advice; strings.Contains(msg, fixturePassword) || strings.Contains(msg, "another-password") {
			t.Errorf("error shows a password: %s", msg)
		}
		if !strings.Contains(fe.Advice, "127.0.0.1:1") && !strings.Contains(fe.Advice, host) {
			t.Errorf("advice %q does not name the host", fe.Advice)
		}
		t.Logf("%s: %v; %s", p, err, fe.Advice)
	}
	_, err := info(t, e, repoPath, "v1.0.0")
	if !strings.Contains(err.Error(), "authentication") {
		t.Errorf("error for wrong credentials does not say so: %v", err)
	}

	// A failure is not remembered: the next request asks the host again.
	n := srv.GitRequests(r.Name())
	info(t, e, repoPath, "main")
	if m := srv.GitRequests(r.Name()); m == n {
		t.Error("no new attempt after a failure")
	}
}

// TestZipScratchFiles: a zip is built in ScratchDir and gone once closed,
// and nothing is left behind by a failed one.
func TestZipScratchFiles(t *testing.T) {
	_, _, e, _ := oneRepo(t)
	ctx := context.Background()
	rc, err := e.src.Zip(ctx, repoPath, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, e.scratch); n != 1 {
		t.Errorf("%d files in the scratch directory while the zip is open, want 1", n)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.src.Zip(ctx, repoPath, "v1.9.0"); !isNotFound(err) {
		t.Fatalf("Zip(v1.9.0) = %v, want not found", err)
	}
	if n := countFiles(t, e.scratch); n != 0 {
		t.Errorf("%d files left in the scratch directory", n)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestConcurrentRequests: many requests for one repository at once, the
// first of them opening and cloning its mirror, agree (run with -race).
func TestConcurrentRequests(t *testing.T) {
	_, _, e, c := oneRepo(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := range 8 {
		wg.Add(3)
		go func() {
			defer wg.Done()
			d, err := e.src.Info(ctx, repoPath, []string{"v1.0.0", "main", c[1][:8]}[i%3])
			if err == nil && !strings.Contains(string(d), `"Version":"v1.0.`) {
				err = errors.New("unexpected .info " + string(d))
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := e.src.List(ctx, repoPath)
			errs <- err
		}()
		go func() {
			defer wg.Done()
			rc, err := e.src.Zip(ctx, repoPath, "v1.0.0")
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := countFiles(t, e.scratch); n != 0 {
		t.Errorf("%d files left in the scratch directory", n)
	}
}

// TestLocalMirrorProblem: a mirror this machine cannot use (here, one
// whose directory holds another remote) is an internal error, not a
// FetchError: the client is told to ask the operator, and the paths of
// the data dir go to the log only.
func TestLocalMirrorProblem(t *testing.T) {
	_, _, e, _ := oneRepo(t)
	ctx := context.Background()
	if _, err := e.src.List(ctx, repoPath); err != nil {
		t.Fatal(err)
	}
	dirs, _ := filepath.Glob(filepath.Join(e.mirrors, "*", "config"))
	if len(dirs) != 1 {
		t.Fatalf("mirror configs: %v", dirs)
	}
	cmd := exec.Command("git", "config", "--file", dirs[0], "remote.origin.url", "https://elsewhere.test/x.git")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	e.src = e.newSource(t) // a restart: the mirror is opened again
	_, err := e.src.List(ctx, repoPath)
	var fe *source.FetchError
	if err == nil || errors.As(err, &fe) || errors.Is(err, source.ErrNotFound) {
		t.Fatalf("List over an unusable mirror = %v (%T), want an internal error", err, err)
	}
}
