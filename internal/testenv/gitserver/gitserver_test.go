package gitserver

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cloneEnv is the environment of a client git that reaches srv as a proxy.
func cloneEnv(srv *Server) []string {
	return append(CleanEnv(), srv.ProxyEnv()...)
}

// runGit runs git in dir with env, returning combined output.
func runGit(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCloneThroughProxyWithAuth(t *testing.T) {
	repo := NewRepo(t, "team/repo")
	repo.Write("go.mod", "module git.corp.test/team/repo\n")
	repo.Write("dir/a.txt", "a\n")
	repo.Symlink("link", "dir/a.txt")
	first := repo.Commit("first")
	repo.Tag("v1.0.0")
	srv := Start(t, Options{Repos: []*Repo{repo}, User: "alice", Password: "s3cret"})

	u := &url.URL{Scheme: "http", Host: srv.Host, Path: "/team/repo.git", User: url.UserPassword("alice", "s3cret")}
	dst := t.TempDir()
	if out, err := runGit(t, dst, cloneEnv(srv), "clone", "-q", u.String(), "c"); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	clone := filepath.Join(dst, "c")
	if out, _ := runGit(t, clone, CleanEnv(), "rev-parse", "v1.0.0^{commit}"); strings.TrimSpace(out) != first {
		t.Errorf("clone's v1.0.0 = %q, want %s", out, first)
	}
	if n := srv.GitRequests("team/repo"); n < 2 {
		t.Errorf("GitRequests = %d, want at least 2 (refs and pack)", n)
	}

	// A change after Start is served without any sync.
	repo.Write("dir/b.txt", "b\n")
	second := repo.Commit("second")
	repo.MoveTag("v1.0.0", second)
	if out, err := runGit(t, clone, cloneEnv(srv), "fetch", "-q", "--force", "origin", "+refs/tags/*:refs/tags/*"); err != nil {
		t.Fatalf("fetch: %v\n%s", err, out)
	}
	if out, _ := runGit(t, clone, CleanEnv(), "rev-parse", "v1.0.0^{commit}"); strings.TrimSpace(out) != second {
		t.Errorf("moved v1.0.0 = %q, want %s", out, second)
	}

	// A wrong password fails, and git does not prompt.
	bad := &url.URL{Scheme: "http", Host: srv.Host, Path: "/team/repo.git", User: url.UserPassword("alice", "wrong")}
	out, err := runGit(t, dst, cloneEnv(srv), "clone", "-q", bad.String(), "bad")
	if err == nil || !strings.Contains(out, "Authentication failed") {
		t.Errorf("clone with a wrong password: err=%v\n%s", err, out)
	}
	// No credentials at all fails too.
	out, err = runGit(t, dst, cloneEnv(srv), "clone", "-q", srv.RepoURL(repo), "none")
	if err == nil {
		t.Errorf("clone without credentials succeeded\n%s", out)
	}
	if srv.Refused() != 0 {
		t.Errorf("Refused = %d, want 0", srv.Refused())
	}
}

func TestDeterministicHashes(t *testing.T) {
	build := func() (string, string) {
		r := NewRepo(t, "a/b")
		r.Write("f", "x\n")
		c1 := r.Commit("one")
		r.AnnotatedTag("v1.0.0", "release")
		r.Write("f", "y\n")
		return c1, r.Commit("two")
	}
	a1, a2 := build()
	b1, b2 := build()
	if a1 != b1 || a2 != b2 {
		t.Errorf("same steps gave %s,%s then %s,%s", a1, a2, b1, b2)
	}
	r := NewRepo(t, "a/c")
	r.Commit("one")
	r.Commit("two")
	got, err := time.Parse(time.RFC3339, r.Git("log", "-1", "--format=%cI"))
	if err != nil || !got.Equal(BaseTime.Add(time.Hour)) {
		t.Errorf("second commit date %v (%v), want BaseTime+1h", got, err)
	}
}

func get(t *testing.T, client *http.Client, rawURL string) (int, string) {
	t.Helper()
	resp, err := client.Get(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func proxyClient(srv *Server) *http.Client {
	pu, _ := url.Parse(srv.URL)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
}

func TestMetaAndHosts(t *testing.T) {
	repo := NewRepo(t, "team/mono")
	repo.Commit("empty")
	srv := Start(t, Options{Repos: []*Repo{repo}, User: "u", Password: "p", Scheme: "https"})
	client := proxyClient(srv)

	code, body := get(t, client, "http://git.corp.test/team/mono/pkg/x?go-get=1")
	want := `<meta name="go-import" content="git.corp.test/team/mono git https://git.corp.test/team/mono.git">`
	if code != 200 || !strings.Contains(body, want) {
		t.Errorf("meta page: %d\n%s\nwant %s", code, body, want)
	}
	srv.SetMeta("team/mono/sub", "git.corp.test/team/mono/sub git https://git.corp.test/team/mono.git sub")
	_, body = get(t, client, "http://git.corp.test/team/mono/sub/pkg?go-get=1")
	if !strings.Contains(body, `content="git.corp.test/team/mono/sub git https://git.corp.test/team/mono.git sub"`) {
		t.Errorf("overridden meta page:\n%s", body)
	}
	_, body = get(t, client, "http://git.corp.test/team/mono/subway?go-get=1")
	if !strings.Contains(body, want) {
		t.Errorf("a sibling of an override got:\n%s", body)
	}
	if code, _ := get(t, client, "http://git.corp.test/other/x?go-get=1"); code != http.StatusNotFound {
		t.Errorf("meta for an unknown path: %d, want 404", code)
	}

	before := srv.Refused()
	if code, _ := get(t, client, "http://evil.test/team/mono.git/info/refs?service=git-upload-pack"); code != http.StatusBadGateway {
		t.Errorf("other host: %d, want 502", code)
	}
	if srv.Refused() != before+1 {
		t.Errorf("Refused = %d, want %d", srv.Refused(), before+1)
	}
	// Git requests need auth; meta pages only with AuthMeta.
	if code, _ := get(t, client, "http://git.corp.test/team/mono.git/info/refs?service=git-upload-pack"); code != http.StatusUnauthorized {
		t.Errorf("git request without auth: %d, want 401", code)
	}
	if n := srv.GitRequests("team/mono"); n != 1 {
		t.Errorf("GitRequests = %d, want 1", n)
	}
	if srv.Requests() != 6 {
		t.Errorf("Requests = %d, want 6", srv.Requests())
	}
}

func TestAuthMeta(t *testing.T) {
	repo := NewRepo(t, "team/r")
	srv := Start(t, Options{Repos: []*Repo{repo}, User: "u", Password: "p", AuthMeta: true})
	client := proxyClient(srv)
	if code, _ := get(t, client, "http://git.corp.test/team/r?go-get=1"); code != http.StatusUnauthorized {
		t.Errorf("meta without auth: %d, want 401", code)
	}
	if code, body := get(t, client, "http://u:p@git.corp.test/team/r?go-get=1"); code != 200 || !strings.Contains(body, "go-import") {
		t.Errorf("meta with auth: %d\n%s", code, body)
	}
}

func TestHang(t *testing.T) {
	repo := NewRepo(t, "team/slow")
	repo.Commit("c")
	srv := Start(t, Options{Repos: []*Repo{repo}})
	srv.Hang(true)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/team/slow.git/info/refs?service=git-upload-pack", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// The request is stalled: it cannot have answered before we cancel it,
	// and it answers (with an error) once we do.
	for srv.GitRequests("team/slow") == 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("hanging request answered: %v", err)
	default:
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled request succeeded")
	}
	srv.Hang(false)
	out, err := runGit(t, t.TempDir(), CleanEnv(), "ls-remote", srv.URL+"/team/slow.git")
	if err != nil || !bytes.Contains([]byte(out), []byte("refs/heads/main")) {
		t.Errorf("after Hang(false): %v\n%s", err, out)
	}
}
