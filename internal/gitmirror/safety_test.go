package gitmirror

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/gitauth"
)

// assertNothingStored checks that a mirror whose fetches all failed holds
// no ref and says it was never fetched.
func assertNothingStored(t *testing.T, r *Repo) {
	t.Helper()
	if !r.FetchedAt().IsZero() {
		t.Error("FetchedAt set after a failed fetch")
	}
	refs, err := r.Refs(context.Background())
	if err != nil || len(refs) != 0 {
		t.Errorf("refs after a failed fetch: %v, %v", refs, err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), fetchedFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists after a failed fetch: %v", fetchedFile, err)
	}
	tmps, _ := filepath.Glob(filepath.Join(r.Dir(), "objects", "pack", "tmp_*"))
	if len(tmps) > 0 {
		t.Errorf("temporary packs left: %v", tmps)
	}
}

func TestWrongPassword(t *testing.T) {
	f := newFixture(t, Config{Credentials: credsFor("git.corp.test", testUser, "wrong-pw-91c3")})
	r := f.open(t)
	err := r.Fetch(context.Background())
	mirrorError(t, err, KindAuth)
	const want = "git.corp.test: authentication failed (check the credentials for this host)"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if strings.Contains(err.Error(), "wrong-pw-91c3") || strings.Contains(err.Error(), testUser) {
		t.Errorf("error shows a credential: %q", err)
	}
	assertNothingStored(t, r)
}

func TestNoCredentials(t *testing.T) {
	f := newFixture(t, Config{Credentials: credsFor("other.corp.test", testUser, testPassword)})
	r := f.open(t)
	mirrorError(t, r.Fetch(context.Background()), KindAuth)
	assertNothingStored(t, r)
}

func TestRepositoryNotFound(t *testing.T) {
	f := newFixture(t, Config{})
	r, err := f.m.Open(context.Background(), "http://git.corp.test/team/nope.git")
	if err != nil {
		t.Fatal(err)
	}
	err = r.Fetch(context.Background())
	mirrorError(t, err, KindNotFound)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "git.corp.test: repository not found" {
		t.Errorf("error %q", err)
	}
	assertNothingStored(t, r)
}

func TestCannotConnect(t *testing.T) {
	// A port nothing listens on: take one, then close it.
	l := httptest.NewServer(http.NotFoundHandler())
	addr := l.Listener.Addr().String()
	l.Close()
	m := newMirrors(t, nil, Config{})
	r, err := m.Open(context.Background(), "http://"+addr+"/team/repo.git")
	if err != nil {
		t.Fatal(err)
	}
	err = r.Fetch(context.Background())
	mirrorError(t, err, KindConnect)
	if !strings.HasPrefix(err.Error(), addr+": cannot connect: ") {
		t.Errorf("error %q", err)
	}
	assertNothingStored(t, r)
}

func TestHangingServer(t *testing.T) {
	f := newFixture(t, Config{LowSpeedTime: time.Second, Timeout: 2 * time.Minute})
	r := f.open(t)
	f.srv.Hang(true)
	err := r.Fetch(ctxTimeout(t, time.Minute))
	mirrorError(t, err, KindTimeout)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v does not match context.DeadlineExceeded", err)
	}
	const want = "git.corp.test: timed out after 1s without data (less than 1 KiB/s)"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	assertNothingStored(t, r)

	// Recovery: the same mirror fetches once the server answers again.
	// The low-speed limit goes back to its default first: the hang is
	// over, and on a loaded machine the server's CGI chain (http-backend,
	// upload-pack, pack-objects) may take more than a second before its
	// first byte. What a hang could leave behind (the lock, a fetch still
	// running, a partial pack) is in the mirror, which is the same one.
	// The fetch above has returned, so no git command reads cfg now.
	f.srv.Hang(false)
	f.m.cfg.LowSpeedTime = DefaultLowSpeedTime
	if err := r.Fetch(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
}

func TestTimeout(t *testing.T) {
	f := newFixture(t, Config{LowSpeedTime: time.Hour, Timeout: time.Second})
	r := f.open(t)
	f.srv.Hang(true)
	err := r.Fetch(ctxTimeout(t, time.Minute))
	mirrorError(t, err, KindTimeout)
	if want := "git.corp.test: timed out after 1s"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	assertNothingStored(t, r)
}

func TestCallerGivesUp(t *testing.T) {
	f := newFixture(t, Config{})
	r := f.open(t)
	f.srv.Hang(true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch with a cancelled context: %v", err)
	}
	// Close stops the fetch that kept running for others.
	f.m.Close()
	if err := r.Fetch(context.Background()); err == nil {
		t.Error("Fetch after Close succeeded")
	}
}

func TestRefusedRemotes(t *testing.T) {
	m := newMirrors(t, nil, Config{AllowHTTP: func(u string) bool { return strings.Contains(u, "insecure.corp.test") }})
	for _, raw := range []string{
		"file:///tmp/repo",
		"file://localhost/tmp/repo",
		"/tmp/repo",
		"./repo",
		"ext::sh -c touch% /tmp/pwned",
		"ext::sh",
		"fd::3",
		"git://git.corp.test/team/repo.git",
		"ftp://git.corp.test/team/repo.git",
		"http://git.corp.test/team/repo.git", // http not allowed for this host
		"https://user:pw@git.corp.test/team/repo.git",
		"https://token@git.corp.test/team/repo.git",
		"https://git.corp.test/team/repo.git?private_token=x",
		"https://git.corp.test/team/repo.git#frag",
		"https://git.corp.test/",
		"https://git.corp.test/../etc",
		"https://-oProxyCommand=x/repo",
		"ssh://-oProxyCommand=touch%20x/repo",
		"ssh://git@git.corp.test/-upload-pack=x",
		"-oProxyCommand=x:repo",
		"git.corp.test:-repo",
		"git.corp.test::repo",
		"transport::git.corp.test/repo",
		"https://git.corp.test/team/re po.git",
		"https://git.corp.test/team/repo.git\n",
	} {
		_, err := m.Open(context.Background(), raw)
		var me *Error
		if !errors.As(err, &me) || me.Kind != KindRefused {
			t.Errorf("Open(%q) = %v, want a refusal", raw, err)
			continue
		}
		if strings.Contains(err.Error(), "pw@") || strings.Contains(err.Error(), "token=x") {
			t.Errorf("refusal shows a credential: %q", err)
		}
	}
	entries, _ := os.ReadDir(m.cfg.Dir)
	if len(entries) != 0 {
		t.Errorf("refused remotes left %d entries in the mirror directory", len(entries))
	}
	for _, raw := range []string{"http://insecure.corp.test/x.git", "https://git.corp.test/team/repo.git", "ssh://git@git.corp.test:2222/team/repo.git", "git@git.corp.test:team/repo.git"} {
		if _, err := m.Open(context.Background(), raw); err != nil {
			t.Errorf("Open(%q): %v", raw, err)
		}
	}
}

func TestParseRemote(t *testing.T) {
	for raw, want := range map[string]remote{
		"https://Git.Corp.Test/team/repo.git/":    {"https://git.corp.test/team/repo.git", "https", "git.corp.test"},
		"https://git.corp.test:443/team/repo":     {"https://git.corp.test/team/repo", "https", "git.corp.test"},
		"https://git.corp.test:8443/team/repo":    {"https://git.corp.test:8443/team/repo", "https", "git.corp.test:8443"},
		"http://git.corp.test:80/a/b.git":         {"http://git.corp.test/a/b.git", "http", "git.corp.test"},
		"ssh://git@git.corp.test:22/team/repo":    {"ssh://git@git.corp.test/team/repo", "ssh", "git.corp.test"},
		"git+ssh://git.corp.test:2222/team/repo":  {"ssh://git.corp.test:2222/team/repo", "ssh", "git.corp.test:2222"},
		"git@Git.Corp.Test:team/repo.git":         {"git@git.corp.test:team/repo.git", "ssh", "git.corp.test"},
		"https://[::1]:8443/r.git":                {"https://[::1]:8443/r.git", "https", "[::1]:8443"},
		"https://127.0.0.1/team/%7Euser/repo.git": {"https://127.0.0.1/team/~user/repo.git", "https", "127.0.0.1"},
	} {
		got, err := parseRemote(raw)
		if err != nil || got != want {
			t.Errorf("parseRemote(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
}

func TestRevisionInjection(t *testing.T) {
	f := newFixture(t, Config{})
	r := f.fetched(t)
	ctx := context.Background()
	main, err := r.Stat(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "pwned")
	for _, rev := range []string{
		"", "-h", "--output=" + marker, "--all", "-", "main^", "main~1", "main^{tree}", "main:go.mod",
		"HEAD@{1}", "@", "v1.0.0..main", "main...feature", ":/first", "main\nv1.0.0", "main ", "refs/heads/",
		"./main", "/main", "main.lock", "a\x00b",
	} {
		if _, err := r.Stat(ctx, rev); !errors.Is(err, ErrUnknownRevision) {
			t.Errorf("Stat(%q) = %v, want ErrUnknownRevision", rev, err)
		}
	}
	for _, hash := range []string{"--output=" + marker, "main", main.Hash[:12], main.Hash + "^", "-" + main.Hash[1:]} {
		if _, err := r.ReadFile(ctx, hash, "go.mod", 100); !errors.Is(err, ErrUnknownRevision) {
			t.Errorf("ReadFile(%q) = %v, want ErrUnknownRevision", hash, err)
		}
		if err := r.Archive(ctx, hash, "", io.Discard, 1<<20); !errors.Is(err, ErrUnknownRevision) {
			t.Errorf("Archive(%q) = %v, want ErrUnknownRevision", hash, err)
		}
		if _, err := r.TagsMerged(ctx, hash); !errors.Is(err, ErrUnknownRevision) {
			t.Errorf("TagsMerged(%q) = %v, want ErrUnknownRevision", hash, err)
		}
		if _, err := r.IsAncestor(ctx, hash, main.Hash); !errors.Is(err, ErrUnknownRevision) {
			t.Errorf("IsAncestor(%q) = %v, want ErrUnknownRevision", hash, err)
		}
	}
	for _, subdir := range []string{"-x", "--output=" + marker, ":(glob)**", "*", "sub/../..", "/sub", "sub\n"} {
		if err := r.Archive(ctx, main.Hash, subdir, io.Discard, 1<<20); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Archive(subdir %q) = %v, want fs.ErrNotExist", subdir, err)
		}
	}
	for _, p := range []string{"../go.mod", "/go.mod", "", "a\nb"} {
		if _, err := r.ReadFile(ctx, main.Hash, p, 100); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(path %q) = %v, want fs.ErrNotExist", p, err)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("an injected option wrote a file")
	}
}

// TestNoCredentialOnDisk fetches with a password and a header and then
// reads every file of the mirror directory.
func TestNoCredentialOnDisk(t *testing.T) {
	const headerSecret = "hdr-secret-5b2e"
	f := newFixture(t, Config{Credentials: func(h string) (gitauth.Credentials, bool) {
		return gitauth.Credentials{Username: testUser, Password: testPassword, Header: "X-Token: " + headerSecret}, h == "git.corp.test"
	}})
	r := f.fetched(t)
	f.repo.Write("more", "x")
	f.repo.Commit("more")
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(f.m.cfg.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		for _, secret := range []string{testPassword, headerSecret} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s contains a credential", p)
			}
		}
		return nil
	})
	if err != nil || n < 5 {
		t.Fatalf("walked %d files: %v", n, err)
	}
	cfg, _ := os.ReadFile(filepath.Join(r.Dir(), "config"))
	if !strings.Contains(string(cfg), "url = "+f.url+"\n") {
		t.Errorf("mirror config does not hold the plain URL:\n%s", cfg)
	}
}

// TestCredentialsStayOnTheirHost has the credentials' host redirect git
// to another one, which must never see them.
func TestCredentialsStayOnTheirHost(t *testing.T) {
	var leaked, otherHits atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Host {
		case "redir.corp.test":
			if _, _, ok := r.BasicAuth(); !ok && r.Header.Get("X-Token") == "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
				http.Error(w, "auth", http.StatusUnauthorized)
				return
			}
			u := *r.URL
			u.Host = "other.corp.test"
			http.Redirect(w, r, u.String(), http.StatusFound)
		default:
			otherHits.Add(1)
			if r.Header.Get("Authorization") != "" || r.Header.Get("X-Token") != "" {
				leaked.Add(1)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
			http.Error(w, "auth", http.StatusUnauthorized)
		}
	}))
	t.Cleanup(proxy.Close)
	for _, creds := range []gitauth.Credentials{
		{Username: testUser, Password: testPassword},
		{Header: "X-Token: hdr"},
		{Username: testUser, Password: testPassword, Header: "X-Token: hdr"},
	} {
		m := newMirrors(t, nil, Config{Credentials: func(h string) (gitauth.Credentials, bool) { return creds, h == "redir.corp.test" }})
		m.env = append(m.env, "http_proxy="+proxy.URL, "no_proxy=")
		r, err := m.Open(context.Background(), "http://redir.corp.test/team/repo.git")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Fetch(context.Background()); err == nil {
			t.Fatal("fetch through a redirect to a host without credentials succeeded")
		}
	}
	if leaked.Load() != 0 {
		t.Errorf("%d requests to the other host carried credentials (of %d)", leaked.Load(), otherHits.Load())
	}
	if otherHits.Load() == 0 {
		t.Error("git never followed the redirect (with basic auth it does): the test proves nothing")
	}
}

func TestMaxRepoSize(t *testing.T) {
	big := make([]byte, 3<<20) // incompressible
	rand.Read(big)
	f := newFixture(t, Config{MaxRepoSize: 1 << 20})
	r := f.fetched(t) // the small repository fits
	before, _ := r.Refs(context.Background())
	f.repo.Write("big.bin", string(big))
	f.repo.Commit("big")
	err := r.Fetch(context.Background())
	mirrorError(t, err, KindTooLarge)
	if !errors.Is(err, ErrTooLarge) || !strings.HasPrefix(err.Error(), "git.corp.test: repository too large: ") || !strings.Contains(err.Error(), "1.0 MiB") {
		t.Errorf("error %q", err)
	}
	after, _ := r.Refs(context.Background())
	if len(after) != len(before) || after[0] != before[0] {
		t.Errorf("refs changed by a refused fetch: %v -> %v", before, after)
	}
	// Stopped (or undone) in time: the mirror holds at most the limit and
	// what arrived in one poll, far less than the 3 MiB offered.
	if size, _ := r.Size(); size > 2<<20 {
		t.Errorf("mirror grew to %d bytes", size)
	}

	// A new mirror whose first fetch is too large is left empty.
	m2 := newMirrors(t, f.srv, Config{MaxRepoSize: 1 << 20, Credentials: f.m.cfg.Credentials})
	r2, err := m2.Open(context.Background(), f.url)
	if err != nil {
		t.Fatal(err)
	}
	mirrorError(t, r2.Fetch(context.Background()), KindTooLarge)
	assertNothingStored(t, r2)
	if size, _ := r2.Size(); size > 2<<20 {
		filepath.WalkDir(r2.Dir(), func(p string, d fs.DirEntry, err error) error {
			if fi, err := d.Info(); err == nil && !d.IsDir() {
				t.Logf("%s %d", p, fi.Size())
			}
			return nil
		})
		t.Errorf("new mirror grew to %d bytes", size)
	}
}

func TestGitEnv(t *testing.T) {
	env := gitEnv([]string{
		"HOME=/home/op", "PATH=/usr/bin", "HTTP_PROXY=http://proxy.corp:3128", "NO_PROXY=.corp",
		"GIT_DIR=/elsewhere", "GIT_TRACE_CURL=1", "GIT_CURL_VERBOSE=1", "GIT_ALLOW_PROTOCOL=file:ext",
		"GIT_CONFIG_PARAMETERS='core.hooksPath'='/x'", "GIT_CONFIG_COUNT=1", "GIT_SSH_COMMAND=evil",
		"GIT_ASKPASS=/usr/bin/ask", "SSH_ASKPASS=/usr/bin/ask", "GIT_CONFIG_GLOBAL=/etc/modgate/gitconfig",
		"GIT_SSL_CAINFO=/etc/ca.pem", "LC_ALL=de_DE.UTF-8",
	})
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v // the last one wins, as for exec.Cmd
	}
	for k, v := range map[string]string{
		"HOME": "/home/op", "http_proxy": "http://proxy.corp:3128", "HTTP_PROXY": "http://proxy.corp:3128",
		"NO_PROXY": ".corp", "GIT_CONFIG_GLOBAL": "/etc/modgate/gitconfig", "GIT_SSL_CAINFO": "/etc/ca.pem",
		"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "LC_ALL": "C",
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %q (set %v), want %q", k, g, ok, v)
		}
	}
	for _, k := range []string{"GIT_DIR", "GIT_TRACE_CURL", "GIT_CURL_VERBOSE", "GIT_ALLOW_PROTOCOL", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_SSH_COMMAND", "SSH_ASKPASS"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s kept", k)
		}
	}
	// An explicit lower-case http_proxy is left alone.
	env = gitEnv([]string{"HTTP_PROXY=http://a:1", "http_proxy=http://b:2"})
	if slicesCount(env, "http_proxy=http://b:2") != 1 || slicesCount(env, "http_proxy=http://a:1") != 0 {
		t.Errorf("env %v", env)
	}
}

func slicesCount(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestSSHCommand(t *testing.T) {
	got := sshCommand(gitauth.Credentials{SSHKeyFile: "/keys/it's key", KnownHostsFile: "/etc/known hosts"}, 30*time.Second)
	want := `ssh -o BatchMode=yes -o ConnectTimeout=30 -i '/keys/it'\''s key' -o IdentitiesOnly=yes -o UserKnownHostsFile='/etc/known hosts' -o StrictHostKeyChecking=yes`
	if got != want {
		t.Errorf("sshCommand =\n%s\nwant\n%s", got, want)
	}
}

func TestCredentialConfigScope(t *testing.T) {
	rem, _ := parseRemote("https://git.corp.test:8443/team/repo.git")
	config, env, err := credentialConfig(rem, gitauth.Credentials{Username: "u", Password: "p", Header: "PRIVATE-TOKEN: t"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range config {
		if strings.Contains(kv[0], ".") && !strings.HasPrefix(kv[0], "credential.https://git.corp.test:8443.") &&
			!strings.HasPrefix(kv[0], "http.https://git.corp.test:8443/.") && kv[0] != "http.followRedirects" {
			t.Errorf("setting %q is not scoped to the host", kv[0])
		}
		if strings.Contains(kv[1], "p\n") || kv[1] == "p" {
			t.Errorf("password in a config value %q", kv)
		}
	}
	if slicesCount(env, "MODGATE_GIT_PASSWORD=p") != 1 {
		t.Errorf("env %v", env)
	}
	for _, bad := range []gitauth.Credentials{{Password: "a\nhost=evil"}, {Header: "X: a\r\nY: b"}, {Header: "no colon"}} {
		if _, _, err := credentialConfig(rem, bad, time.Second); err == nil {
			t.Errorf("credentials %q accepted", bad)
		}
	}
}

// TestOperatorCredentialHelper: for a host modgate has no credentials
// for, the credential helper in the git configuration of the user modgate
// runs as answers, as the operator's own git would use it.
func TestOperatorCredentialHelper(t *testing.T) {
	f := newFixture(t, Config{Credentials: credsFor("other.corp.test", testUser, testPassword)})
	global := filepath.Join(t.TempDir(), "gitconfig")
	helper := fmt.Sprintf("[credential \"%s\"]\n\thelper = \"!f() { test \\\"$1\\\" = get && echo username=%s && echo password=%s; }; f\"\n",
		"http://"+f.srv.Host, testUser, testPassword)
	if err := os.WriteFile(global, []byte(helper), 0o600); err != nil {
		t.Fatal(err)
	}
	f.m.env = append(f.m.env, "GIT_CONFIG_GLOBAL="+global) // the last one wins
	r := f.open(t)
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatalf("Fetch with the operator's credential helper: %v", err)
	}
	if _, err := r.Stat(context.Background(), "v1.1.0"); err != nil {
		t.Fatal(err)
	}
}

// TestTooLargeStoppedAfterRefs: a fetch stopped for its size after git
// had already updated the refs (its last step, before it exits) is undone
// whole, refs included, as one stopped earlier is. The git here lingers
// after each fetch, and the size is checked late, so that the stop lands
// there; the git leaves a mark when its fetch has completed, which proves
// it did (a machine too slow for one poll gets a longer one).
func TestTooLargeStoppedAfterRefs(t *testing.T) {
	big := make([]byte, 3<<20) // incompressible
	rand.Read(big)
	f := newFixture(t, Config{})
	f.repo.Write("big.bin", string(big))
	f.repo.Commit("big")
	defer func(d time.Duration) { sizePoll = d }(sizePoll)

	for _, poll := range []time.Duration{time.Second, 4 * time.Second, 15 * time.Second} {
		sizePoll = poll
		m := newMirrors(t, f.srv, Config{MaxRepoSize: 1 << 20, Credentials: f.m.cfg.Credentials})
		dir := t.TempDir()
		lingering, mark := filepath.Join(dir, "git"), filepath.Join(dir, "fetched")
		script := "#!/bin/sh\n\"$REAL_GIT\" \"$@\"\nrc=$?\n" +
			"for a in \"$@\"; do [ \"$a\" = fetch ] && touch \"$FETCHED_MARK\" && sleep " + fmt.Sprint(int(3*poll/time.Second)) + "; done\nexit $rc\n"
		if err := os.WriteFile(lingering, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		m.env = append(m.env, "REAL_GIT="+m.gitPath, "FETCHED_MARK="+mark)
		m.gitPath = lingering

		r, err := m.Open(context.Background(), f.url)
		if err != nil {
			t.Fatal(err)
		}
		mirrorError(t, r.Fetch(context.Background()), KindTooLarge)
		if _, err := os.Stat(mark); err != nil {
			t.Logf("the fetch was stopped before it completed (poll %v): again with a longer poll", poll)
			continue
		}
		assertNothingStored(t, r)
		if size, _ := r.Size(); size > 2<<20 {
			t.Errorf("the mirror kept %d bytes of a fetch stopped for its size", size)
		}
		return
	}
	t.Fatal("no fetch completed before the size check stopped it, even with a 15 s poll")
}
