package sumdbe2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/gitserver"
	"github.com/modgate/modgate/internal/testenv/sshserver"
	"github.com/modgate/modgate/internal/testenv/sumdbtest"
)

// TestPrivateGitOverSSH: a private module mapped to an ssh:// repository
// (git-repos) is fetched with the key and known_hosts of its git-hosts
// entry, from a real sshd; the go command through modgate gets the sums
// the go command computes straight from the same repository. A key the
// server does not accept and a host key the known_hosts file does not
// trust each give one line naming the host and the cause, with no key
// material anywhere.
func TestPrivateGitOverSSH(t *testing.T) {
	gitserver.RequireGit(t)
	app, _ := privateApp(t)
	srv := gitserver.Start(t, gitserver.Options{User: gitUser, Password: gitPassword, Repos: []*gitserver.Repo{app}})
	ssh := sshserver.Start(t)
	up := fixtureUpstream(t)
	skey, vkey := genKey(t, fixtureDB)
	db := sumdbtest.NewSigned(t, skey, vkey, sumdbtest.FixtureGoSum(up))
	const mod = "git.corp.test/team/app"

	// start runs modgate with mod mapped to the ssh repository and the
	// given key and known_hosts for the ssh server's address.
	start := func(t *testing.T, key, knownHosts string) *testenv.Proc {
		cfg := filepath.Join(t.TempDir(), "modgate.yaml")
		yaml := fmt.Sprintf("private: git.corp.test\ngit-repos:\n  - module: %s\n    url: %q\ngit-hosts:\n  - host: %q\n    ssh-key: %q\n    known-hosts: %q\n",
			mod, ssh.URL(app.Dir()), ssh.Addr, key, knownHosts)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		// No ssh configuration of the user's may help: an empty home.
		env := []string{"HOME=" + t.TempDir(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}
		p := testenv.StartEnv(t, env, "--config", cfg, "--data-dir", t.TempDir(), "--upstream", up.URL(),
			"--sumdb", vkey+" "+db.URL, "--prefetch=false")
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("modgate logs:\n%s", p.Logs())
			}
		})
		return p
	}
	keyMaterial := func(t *testing.T, key string) string {
		data, err := os.ReadFile(key)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		return lines[1] // the first line of the key's base64, after the BEGIN line
	}

	t.Run("fetch", func(t *testing.T) {
		p := start(t, ssh.ClientKey, ssh.KnownHosts)
		home := t.TempDir()
		work := filepath.Join(home, "work")
		os.MkdirAll(work, 0o755)
		env := clientEnv(t, home, p.URL, vkey, "git.corp.test")
		goOK(t, work, env, "mod", "init", "example.com/client")
		goOK(t, work, env, "get", mod+"@latest")
		if v := requireModule(t, work, env, mod); v != "v1.1.0" {
			t.Fatalf("go get %s@latest over ssh chose %s, want v1.1.0", mod, v)
		}
		sums, err := os.ReadFile(filepath.Join(work, "go.sum"))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range gitserver.GoDirect(t, srv).Download(mod + "@v1.1.0") {
			if d.Error != "" {
				t.Fatalf("direct download: %s", d.Error)
			}
			for _, line := range []string{mod + " v1.1.0 " + d.Sum, mod + " v1.1.0/go.mod " + d.GoModSum} {
				if !strings.Contains(string(sums), line+"\n") {
					t.Errorf("go.sum through modgate over ssh lacks the direct line %q:\n%s", line, sums)
				}
			}
		}
		if strings.Contains(p.Logs(), keyMaterial(t, ssh.ClientKey)) {
			t.Errorf("the private key shows in the log")
		}
		if n := up.CountContaining("git.corp.test/"); n != 0 {
			t.Errorf("the upstream was asked %d times about the private module", n)
		}
	})

	t.Run("key not authorized", func(t *testing.T) {
		p := start(t, ssh.OtherKey, ssh.KnownHosts)
		r := get(t, p.URL+"/"+mod+"/@v/v1.0.0.info")
		t.Logf("key not authorized: %s", r.body)
		checkRefusal(t, "key not authorized", r, http.StatusBadGateway, "127.0.0.1", "authentication failed")
		if strings.Contains(r.body+p.Logs(), keyMaterial(t, ssh.OtherKey)) {
			t.Errorf("the private key shows in the answer or the log")
		}
	})

	t.Run("host key not trusted", func(t *testing.T) {
		// A known_hosts file with another key for the server's address.
		other := filepath.Join(t.TempDir(), "known_hosts")
		pub, err := os.ReadFile(ssh.OtherKey + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(pub))
		host := strings.Replace(ssh.Addr, "127.0.0.1:", "[127.0.0.1]:", 1)
		if err := os.WriteFile(other, []byte(host+" "+f[0]+" "+f[1]+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := start(t, ssh.ClientKey, other)
		r := get(t, p.URL+"/"+mod+"/@v/v1.0.0.info")
		t.Logf("host key not trusted: %s", r.body)
		checkRefusal(t, "host key not trusted", r, http.StatusBadGateway, "127.0.0.1", "host key")
	})
}
