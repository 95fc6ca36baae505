package explain

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinary()
	os.Exit(code)
}

// fixtures are the modules of the fixture upstream: example.com/a, and
// example.com/renamed whose go.mod declares another path.
func fixtures() []testenv.Module {
	return []testenv.Module{
		{Path: "example.com/a", Version: "v1.0.0", Files: map[string]string{"a.go": "package a\n"}},
		{Path: "example.com/renamed", Version: "v1.0.0", Files: map[string]string{
			"go.mod": "module example.com/newname\n\ngo 1.21\n", "r.go": "package r\n"}},
	}
}

func newUpstream(t *testing.T) *testenv.Upstream {
	dir := t.TempDir()
	testenv.BuildTree(t, dir, fixtures())
	return testenv.NewUpstream(t, dir)
}

// mainModule writes a main module into a fresh directory.
func mainModule(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	if _, ok := files["go.mod"]; !ok {
		files["go.mod"] = "module example.com/main\n\ngo 1.21\n"
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runGo runs the real go command, which must fail, and returns its output.
func runGo(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := testenv.Go(t, dir, env, args...)
	if err == nil {
		t.Fatalf("go %v succeeded:\n%s", args, out)
	}
	return out
}

// expect checks that the output explains as one explanation of rule id,
// whose fix mentions fix.
func expect(t *testing.T, out, id, fix string) Explanation {
	t.Helper()
	exps := explainString(t, out)
	if len(exps) != 1 || exps[0].ID != id || !strings.Contains(exps[0].Fix, fix) {
		t.Fatalf("go command output:\n%s\nexplanations: %+v\nwant one %q whose fix mentions %q", out, exps, id, fix)
	}
	return exps[0]
}

// TestGoCommand captures the real go command's errors and explains them.
func TestGoCommand(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go command is needed:", err)
	}
	up := newUpstream(t)
	home := t.TempDir()

	t.Run("connection refused", func(t *testing.T) {
		url := testenv.RefusedURL(t)
		out := runGo(t, mainModule(t, map[string]string{}), testenv.GoEnv(home, url), "mod", "download", "example.com/a@v1.0.0")
		e := expect(t, out, "unreachable", "GOPROXY")
		if e.Host != strings.TrimPrefix(url, "http://") {
			t.Errorf("host %q, want that of %s", e.Host, url)
		}
	})
	t.Run("unresolvable host", func(t *testing.T) {
		out := runGo(t, mainModule(t, map[string]string{}), testenv.GoEnv(home, "http://modgate.invalid"), "mod", "download", "example.com/a@v1.0.0")
		e := expect(t, out, "dns", "GOPROXY")
		if e.Host != "modgate.invalid" {
			t.Errorf("host %q", e.Host)
		}
	})
	t.Run("GOPROXY=off", func(t *testing.T) {
		out := runGo(t, mainModule(t, map[string]string{}), testenv.GoEnv(home, "off"), "mod", "download", "example.com/a@v1.0.0")
		expect(t, out, "goproxy-off", "GOPROXY")
	})
	t.Run("module not found", func(t *testing.T) {
		dir := mainModule(t, map[string]string{"main.go": "package main\n\nimport _ \"corp.example.com/lib/x\"\n\nfunc main() {}\n"})
		out := runGo(t, dir, testenv.GoEnv(home, up.URL()), "mod", "tidy")
		e := expect(t, out, "not-found", "GONOSUMDB='corp.example.com'")
		if e.Module != "corp.example.com/lib/x" {
			t.Errorf("module %q", e.Module)
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		out := runGo(t, mainModule(t, map[string]string{}), testenv.GoEnv(home, up.URL()), "get", "example.com/a@nosuchbranch")
		e := expect(t, out, "invalid-version", "go list -m -versions example.com/a")
		if e.Version != "nosuchbranch" {
			t.Errorf("version %q", e.Version)
		}
	})
	t.Run("missing go.sum entry", func(t *testing.T) {
		dir := mainModule(t, map[string]string{
			"go.mod":  "module example.com/main\n\ngo 1.21\n\nrequire example.com/a v1.0.0\n",
			"main.go": "package main\n\nimport _ \"example.com/a\"\n\nfunc main() {}\n",
		})
		out := runGo(t, dir, append(testenv.GoEnv(home, up.URL()), "GOSUMDB=off"), "build", "./...")
		expect(t, out, "missing-go-sum", "go get example.com/a")
	})
	t.Run("module declares another path", func(t *testing.T) {
		out := runGo(t, mainModule(t, map[string]string{}), append(testenv.GoEnv(home, up.URL()), "GOSUMDB=off"), "get", "example.com/renamed@v1.0.0")
		e := expect(t, out, "declares-path", "example.com/newname")
		if e.Module != "example.com/renamed" {
			t.Errorf("module %q", e.Module)
		}
	})
}

// TestGoCommandWithModgate captures what the go command prints when modgate
// refuses it: an untrusted TLS certificate, a policy, a missing token.
func TestGoCommandWithModgate(t *testing.T) {
	up := newUpstream(t)
	home := t.TempDir()
	dir := t.TempDir()
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1")
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte("deny:\n  - module: example.com/a\n    versions: \"<=v1.0.0\"\n    reason: \"not approved; use v1.1.0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Two tokens: "ci" reads only example.com/renamed, "all" everything.
	tokens := filepath.Join(dir, "tokens.json")
	addToken := func(name, allow string) string {
		out, err := exec.Command(testenv.Binary(t), "token", "add", "--tokens", tokens, "--name", name, "--allow", allow).Output()
		if err != nil {
			t.Fatalf("modgate token add: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}
	token, all := addToken("ci", "example.com/renamed"), addToken("all", "*")

	gated := testenv.Start(t, "--data-dir", t.TempDir(), "--upstream", up.URL(), "--tls-cert", cert, "--tls-key", key,
		"--policy", policy, "--tokens", tokens, "--prefetch=false")
	hostPort := strings.TrimPrefix(gated.URL, "https://")
	goEnv := func(extra ...string) []string {
		return append(append(testenv.GoEnv(home, gated.URL), "GOSUMDB=off", "HOME="+home), extra...)
	}

	t.Run("untrusted CA", func(t *testing.T) {
		out := runGo(t, mainModule(t, map[string]string{}), goEnv(), "mod", "download", "example.com/a@v1.0.0")
		e := expect(t, out, "x509-unknown-authority", "SSL_CERT_FILE")
		if e.Host != hostPort {
			t.Errorf("host %q, want %q", e.Host, hostPort)
		}
	})
	t.Run("no token", func(t *testing.T) {
		out := runGo(t, mainModule(t, map[string]string{}), goEnv("SSL_CERT_FILE="+ca.CertFile, "NETRC="+filepath.Join(home, "none")), "mod", "download", "example.com/a@v1.0.0")
		e := expect(t, out, "unauthorized", "GOAUTH")
		if !strings.Contains(e.Fix, "machine "+hostPort) {
			t.Errorf("fix does not name the server: %s", e.Fix)
		}
	})

	netrc := filepath.Join(home, ".netrc")
	if err := os.WriteFile(netrc, []byte("machine "+hostPort+" login any password "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withToken := goEnv("SSL_CERT_FILE="+ca.CertFile, "NETRC="+netrc)
	t.Run("token may not read", func(t *testing.T) {
		out := runGo(t, mainModule(t, map[string]string{}), withToken, "mod", "download", "example.com/a@v1.0.0")
		e := expect(t, out, "token-forbidden", "modgate token add")
		if e.Module != "example.com/a" {
			t.Errorf("module %q", e.Module)
		}
		if strings.Contains(out+e.Line+e.Cause+e.Fix, token) {
			t.Error("the token appears in the output")
		}
	})

	// The token that may read everything meets the policy.
	if err := os.WriteFile(netrc, []byte("machine "+hostPort+" login any password "+all+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("policy deny", func(t *testing.T) {
		out := runGo(t, mainModule(t, map[string]string{}), withToken, "mod", "download", "example.com/a@v1.0.0")
		e := expect(t, out, "policy-deny", "go list -m -versions example.com/a")
		if e.Subject != "example.com/a@v1.0.0" || !strings.Contains(e.Cause, "not approved; use v1.1.0") {
			t.Errorf("subject %q cause %q", e.Subject, e.Cause)
		}
	})
}
