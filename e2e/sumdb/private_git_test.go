package sumdbe2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/gitserver"
	"github.com/modgate/modgate/internal/testenv/sumdbtest"
)

const (
	gitUser     = "modgate"
	gitPassword = "s3cret-git-pass"
	hookSecret  = "hook-secret-42"
)

// privateApp builds git.corp.test/team/app: v1.0.0, v1.1.0 (annotated),
// one commit on main after it, and a branch "feature" with its own
// commit, which it returns.
func privateApp(t *testing.T) (app *gitserver.Repo, feature string) {
	app = gitserver.NewRepo(t, "team/app")
	app.Write("go.mod", "module git.corp.test/team/app\n\ngo 1.21\n")
	app.Write("app.go", "package app\n\n// V is the version.\nconst V = 1\n")
	app.Commit("first")
	app.Tag("v1.0.0")
	app.Write("app.go", "package app\n\n// V is the version.\nconst V = 2\n")
	app.Commit("second")
	app.AnnotatedTag("v1.1.0", "release v1.1.0")
	app.Write("README", "work in progress\n")
	app.Commit("after v1.1.0")
	app.Branch("feature")
	app.Write("feature.go", "package app\n\n// Feature is new.\nconst Feature = true\n")
	feature = app.Commit("feature work")
	app.Checkout("main")
	return app, feature
}

// writeNetrc writes a netrc for the git server's credentials, mode 0600.
func writeNetrc(t *testing.T, host, user, password string) string {
	path := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("machine %s login %s password %s\n", host, user, password)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startPrivate runs modgate with the fixture upstream and database, the
// git server's host private (over plain http, reached through the server
// as HTTP proxy), credentials from netrc and webhooks on.
func startPrivate(t *testing.T, srv *gitserver.Server, up *testenv.Upstream, vkey, dbURL, netrc string, extra ...string) *testenv.Proc {
	t.Helper()
	env := append(srv.ProxyEnv(), "HOME="+t.TempDir(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	args := append([]string{"--data-dir", t.TempDir(), "--upstream", up.URL(), "--sumdb", vkey + " " + dbURL,
		"--private", srv.Host, "--insecure", srv.Host, "--netrc", netrc, "--webhook-secret", hookSecret,
		"--list-ttl", "1h", "--prefetch=false"}, extra...)
	p := testenv.StartEnv(t, env, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("modgate logs:\n%s", p.Logs())
		}
	})
	return p
}

// clientEnv is a developer's go command with modgate as its only proxy:
// no git on its PATH, no credentials, no GOPRIVATE; GONOSUMDB names the
// private host, as `modgate env` says to.
func clientEnv(t *testing.T, home, proxyURL, vkey, private string) []string {
	env := testenv.GoEnv(home, proxyURL)
	goBin := filepath.Join(runtime.GOROOT(), "bin")
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = "PATH=" + goBin
		}
	}
	return append(env, "GOSUMDB="+vkey, "GONOSUMDB="+private, "HOME="+home, "GIT_TERMINAL_PROMPT=0")
}

func goOK(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, errOut, err := testenv.GoRun(t, dir, env, args...)
	if err != nil {
		t.Fatalf("go %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// requireModule reads the version of mod that go.mod in dir requires.
func requireModule(t *testing.T, dir string, env []string, mod string) string {
	t.Helper()
	var m struct{ Version string }
	if err := json.Unmarshal([]byte(goOK(t, dir, env, "list", "-m", "-json", mod)), &m); err != nil {
		t.Fatal(err)
	}
	return m.Version
}

// githubPush posts a GitHub-shaped push event for repoURL, signed with
// secret, and returns the status and body.
func githubPush(t *testing.T, base, repoURL, ref, secret string) (int, string) {
	t.Helper()
	web := strings.TrimSuffix(repoURL, ".git")
	body, _ := json.Marshal(map[string]any{
		"ref": ref, "created": true, "deleted": false,
		"repository": map[string]any{"full_name": "team/app", "clone_url": repoURL, "html_url": web, "ssh_url": "git@git.corp.test:team/app.git"},
	})
	req, _ := http.NewRequest("POST", base+"/webhooks/git", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPrivateGitThroughModgate: a developer's go command, with no git and
// no credentials, gets private modules through modgate from a git server
// behind basic auth, next to a public module; nothing about the private
// paths reaches the upstream or the checksum database; the sums are the
// ones `go mod download` computes straight from git; a pushed tag is seen
// at once after a webhook, whatever the TTL.
func TestPrivateGitThroughModgate(t *testing.T) {
	gitserver.RequireGit(t)
	app, feature := privateApp(t)
	srv := gitserver.Start(t, gitserver.Options{User: gitUser, Password: gitPassword, Repos: []*gitserver.Repo{app}})
	up := fixtureUpstream(t)
	skey, vkey := genKey(t, fixtureDB)
	db := sumdbtest.NewSigned(t, skey, vkey, sumdbtest.FixtureGoSum(up))
	p := startPrivate(t, srv, up, vkey, db.URL, writeNetrc(t, srv.Host, gitUser, gitPassword))

	home := t.TempDir()
	work := filepath.Join(home, "work")
	os.MkdirAll(work, 0o755)
	env := clientEnv(t, home, p.URL, vkey, srv.Host)
	goOK(t, work, env, "mod", "init", "example.com/client")

	const mod = "git.corp.test/team/app"
	goOK(t, work, env, "get", mod+"@latest")
	if v := requireModule(t, work, env, mod); v != "v1.1.0" {
		t.Fatalf("go get %s@latest chose %s, want v1.1.0", mod, v)
	}
	goOK(t, work, env, "get", "example.com/a@v1.0.0") // a public module beside it
	if out := goOK(t, work, env, "list", "-m", "-versions", mod); strings.TrimSpace(out) != mod+" v1.0.0 v1.1.0" {
		t.Errorf("go list -m -versions = %q", out)
	}
	goOK(t, work, env, "get", mod+"@feature")
	branchVersion := requireModule(t, work, env, mod)
	if !strings.HasPrefix(branchVersion, "v1.1.1-0.") || !strings.HasSuffix(branchVersion, feature[:12]) {
		t.Errorf("go get @feature chose %s, want a v1.1.1-0.* pseudo-version of %s", branchVersion, feature[:12])
	}
	goOK(t, work, env, "get", mod+"@"+feature[:8])
	if v := requireModule(t, work, env, mod); v != branchVersion {
		t.Errorf("go get @%s chose %s, want %s", feature[:8], v, branchVersion)
	}

	// The same sums as the go command computes straight from git.
	direct := gitserver.GoDirect(t, srv)
	for _, d := range direct.Download(mod+"@v1.1.0", mod+"@"+branchVersion) {
		if d.Error != "" {
			t.Fatalf("direct download of %s@%s: %s", d.Path, d.Version, d.Error)
		}
		sums, err := os.ReadFile(filepath.Join(work, "go.sum"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{mod + " " + d.Version + " " + d.Sum, mod + " " + d.Version + "/go.mod " + d.GoModSum} {
			if !strings.Contains(string(sums), line+"\n") {
				t.Errorf("go.sum through modgate lacks the direct line %q:\n%s", line, sums)
			}
		}
	}

	// Nothing about the private module left for the upstream or the
	// database; the git server saw only its own host.
	if n := up.CountContaining("git.corp.test/"); n != 0 {
		t.Errorf("the upstream was asked %d times about private paths", n)
	}
	if n := db.Count("git.corp.test"); n != 0 {
		t.Errorf("the checksum database was asked about private paths: %v", db.Requests())
	}
	if n := db.Count("/lookup/example.com/a@v1.0.0"); n != 1 {
		t.Errorf("public module lookups: %d, want 1: %v", n, db.Requests())
	}
	if n := srv.Refused(); n != 0 {
		t.Errorf("the git server refused %d requests for other hosts", n)
	}

	// A new tag is invisible within the TTL, until the git server's
	// webhook says it was pushed; a wrong signature changes nothing.
	app.Checkout("main")
	app.Write("app.go", "package app\n\n// V is the version.\nconst V = 3\n")
	app.Commit("third")
	app.Tag("v1.2.0")
	if out := goOK(t, work, env, "list", "-m", "-versions", mod); strings.Contains(out, "v1.2.0") {
		t.Fatalf("v1.2.0 listed within the TTL without a webhook: %q", out)
	}
	if status, body := githubPush(t, p.URL, srv.RepoURL(app), "refs/tags/v1.2.0", "wrong-secret"); status != http.StatusForbidden {
		t.Errorf("webhook with a wrong secret: %d %q, want 403", status, body)
	}
	if out := goOK(t, work, env, "list", "-m", "-versions", mod); strings.Contains(out, "v1.2.0") {
		t.Fatalf("v1.2.0 listed after a webhook with a wrong secret: %q", out)
	}
	if status, body := githubPush(t, p.URL, srv.RepoURL(app), "refs/tags/v1.2.0", hookSecret); status != http.StatusOK {
		t.Fatalf("webhook: %d %q, want 200", status, body)
	}
	if out := goOK(t, work, env, "list", "-m", "-versions", mod); strings.TrimSpace(out) != mod+" v1.0.0 v1.1.0 v1.2.0" {
		t.Errorf("after the webhook, go list -m -versions = %q", out)
	}
	goOK(t, work, env, "get", mod+"@latest")
	if v := requireModule(t, work, env, mod); v != "v1.2.0" {
		t.Errorf("after the webhook, go get @latest chose %s, want v1.2.0", v)
	}

	// A tag moved after modgate served it changes nothing it serves: the
	// first zip is kept, and the move is logged once it is seen.
	zipURL := p.URL + "/" + mod + "/@v/v1.0.0.zip"
	first := get(t, zipURL)
	app.Write("app.go", "package app\n\n// V is the version.\nconst V = 99\n")
	app.MoveTag("v1.0.0", app.Commit("rewritten history"))
	if status, body := githubPush(t, p.URL, srv.RepoURL(app), "refs/tags/v1.0.0", hookSecret); status != http.StatusOK {
		t.Fatalf("webhook: %d %q", status, body)
	}
	if again := get(t, zipURL); again.status != 200 || again.body != first.body {
		t.Errorf("after the tag moved, the zip changed (status %d)", again.status)
	}
	// main's head now carries the moved tag: asking for it makes modgate
	// see the move.
	if r := get(t, p.URL+"/"+mod+"/@v/main.info"); r.status != 200 || !strings.Contains(r.body, `"v1.0.0"`) {
		t.Errorf("main.info: %d %q, want the moved tag's version", r.status, r.body)
	}
	if !strings.Contains(p.Logs(), "git tag moved") {
		t.Errorf("the moved tag was not logged")
	}
	goOK(t, work, env, "mod", "download", mod+"@v1.0.0") // the sum in go.sum still holds
}

// TestPrivateGitFailures: wrong credentials, an unreachable git server and
// a hanging one each give the go command one line naming the host and the
// cause, store nothing, and leak no credential; a path that merely
// contains the private host's name never reaches the git server.
func TestPrivateGitFailures(t *testing.T) {
	gitserver.RequireGit(t)
	app, _ := privateApp(t)
	srv := gitserver.Start(t, gitserver.Options{User: gitUser, Password: gitPassword, Repos: []*gitserver.Repo{app}})
	up := fixtureUpstream(t)
	skey, vkey := genKey(t, fixtureDB)
	db := sumdbtest.NewSigned(t, skey, vkey, sumdbtest.FixtureGoSum(up))
	const mod = "git.corp.test/team/app"

	t.Run("wrong credentials", func(t *testing.T) {
		p := startPrivate(t, srv, up, vkey, db.URL, writeNetrc(t, srv.Host, gitUser, "not-the-password"))
		r := get(t, p.URL+"/"+mod+"/@v/v1.0.0.info")
		t.Logf("wrong credentials: %s", r.body)
		checkRefusal(t, "wrong credentials", r, http.StatusBadGateway, "git.corp.test", "authentication failed")
		if strings.Contains(r.body, "not-the-password") || strings.Contains(p.Logs(), "not-the-password") {
			t.Errorf("the password shows in the answer or the log")
		}
		if r2 := get(t, p.URL+"/"+mod+"/@v/list"); r2.status == 200 {
			t.Errorf("list with wrong credentials answered 200 %q", r2.body)
		}
	})

	t.Run("hanging server", func(t *testing.T) {
		p := startPrivate(t, srv, up, vkey, db.URL, writeNetrc(t, srv.Host, gitUser, gitPassword), "--upstream-idle-timeout", "2s")
		srv.Hang(true)
		r := get(t, p.URL+"/"+mod+"/@v/v1.0.0.info")
		srv.Hang(false)
		checkRefusal(t, "hanging git server", r, http.StatusGatewayTimeout, "git.corp.test")
		t.Logf("hanging: %s", r.body)
		if r.status == 200 || !strings.Contains(strings.ToLower(r.body), "time") {
			t.Errorf("hanging server: %d %q, want an error saying it timed out", r.status, r.body)
		}
		// Once the server answers again, the version is fetched. The same
		// 2s idle timeout applies, which the git server (CGI http-backend,
		// upload-pack, pack-objects) may exceed before its first byte on a
		// loaded machine: that same timeout, and only it, is tried again,
		// for up to a minute; any other answer fails at once.
		deadline := time.Now().Add(time.Minute)
		for {
			r := get(t, p.URL+"/"+mod+"/@v/v1.0.0.info")
			if r.status == 200 {
				break
			}
			if r.status != http.StatusGatewayTimeout || !strings.Contains(r.body, "without data") || time.Now().After(deadline) {
				t.Errorf("after the hang: %d %q", r.status, r.body)
				break
			}
			t.Logf("after the hang, timed out again (a loaded machine?); trying again: %s", r.body)
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("unreachable server", func(t *testing.T) {
		// The git server's address, as HTTP proxy, with nothing listening.
		dead := testenv.RefusedURL(t)
		env := []string{"http_proxy=" + dead, "HTTP_PROXY=" + dead, "HOME=" + t.TempDir(), "GIT_CONFIG_GLOBAL=/dev/null"}
		p := testenv.StartEnv(t, env, "--data-dir", t.TempDir(), "--upstream", up.URL(), "--sumdb", "off",
			"--private", srv.Host, "--insecure", srv.Host, "--netrc", writeNetrc(t, srv.Host, gitUser, gitPassword))
		r := get(t, p.URL+"/"+mod+"/@v/v1.0.0.info")
		if r.status == 200 || !strings.Contains(r.body, "git.corp.test") {
			t.Errorf("unreachable git server: %d %q, want an error naming the host", r.status, r.body)
		}
	})

	t.Run("lookalike path", func(t *testing.T) {
		p := startPrivate(t, srv, up, vkey, db.URL, writeNetrc(t, srv.Host, gitUser, gitPassword))
		before := srv.Requests()
		for _, path := range []string{"git.corp.test.evil.com/team/app", "evil.com/git.corp.test/team/app", "git.corp.testx/team/app"} {
			get(t, p.URL+"/"+path+"/@v/list")
			get(t, p.URL+"/"+path+"/@v/v1.0.0.info")
		}
		if n := srv.Requests() - before; n != 0 {
			t.Errorf("paths that are not private reached the git server %d times", n)
		}
		if n := up.CountContaining("git.corp.test.evil.com/team/app"); n != 2 {
			t.Errorf("a public path that looks private was asked of the upstream %d times, want 2 (list, info)", n)
		}
	})
}

// TestDirectUpstreamEntry: "direct" in --upstream works as in GOPROXY: a
// module the proxies do not have is fetched from its version control
// server, here with its host in --nosumdb since the fixture database
// cannot know it; the proxy is asked first.
func TestDirectUpstreamEntry(t *testing.T) {
	gitserver.RequireGit(t)
	app, _ := privateApp(t)
	srv := gitserver.Start(t, gitserver.Options{User: gitUser, Password: gitPassword, Repos: []*gitserver.Repo{app}})
	up := fixtureUpstream(t)
	env := append(srv.ProxyEnv(), "HOME="+t.TempDir(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	p := testenv.StartEnv(t, env, "--data-dir", t.TempDir(), "--upstream", up.URL()+",direct", "--sumdb", "off",
		"--insecure", srv.Host, "--netrc", writeNetrc(t, srv.Host, gitUser, gitPassword), "--prefetch=false")
	const mod = "git.corp.test/team/app"
	if r := get(t, p.URL+"/"+mod+"/@v/list"); r.status != 200 || r.body != "v1.0.0\nv1.1.0\n" {
		t.Fatalf("list through direct: %d %q", r.status, r.body)
	}
	if r := get(t, p.URL+"/"+mod+"/@v/v1.1.0.zip"); r.status != 200 {
		t.Fatalf("zip through direct: %d %q", r.status, r.body)
	}
	if n := up.CountContaining(mod + "/@v/list"); n != 1 {
		t.Errorf("the proxy before direct was asked %d times for the list, want 1", n)
	}
	// A public module the proxy has never reaches git.
	before := srv.Requests()
	if r := get(t, p.URL+"/example.com/a/@v/v1.0.0.info"); r.status != 200 {
		t.Errorf("public module: %d %q", r.status, r.body)
	}
	if srv.Requests() != before {
		t.Errorf("a module the proxy has reached the git server")
	}
}
