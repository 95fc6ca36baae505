package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// gateModules are the fixture modules of the gate tests: one plain, one
// with a version the policy denies, one with a vulnerable version, one
// with a version younger than the policy's minimum age, and one private.
func gateModules() []testenv.Module {
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	mod := func(path, v string, at time.Time) testenv.Module {
		name := path[strings.LastIndexByte(path, '/')+1:]
		return testenv.Module{Path: path, Version: v, Files: goFile(name, v), Time: at}
	}
	return []testenv.Module{
		mod("example.com/ok", "v1.0.0", old),
		mod("example.com/ok", "v1.1.0", old),
		mod("example.com/errs", "v0.8.0", old),
		mod("example.com/errs", "v0.9.1", old),
		mod("example.com/vuln", "v1.0.0", old),
		mod("example.com/vuln", "v1.0.1", old),
		mod("example.com/young", "v1.0.0", old),
		mod("example.com/young", "v1.1.0", time.Now().UTC()),
		mod("corp.example.com/secret", "v1.0.0", old),
	}
}

// writeVulnDB writes a vulnerability database in the published format
// (index/db.json, index/modules.json, ID/<id>.json) with one advisory:
// example.com/vuln before v1.0.1.
func writeVulnDB(t *testing.T) string {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "index", "db.json"), []byte(`{"modified":"2026-11-01T00:00:00Z"}`))
	mustWrite(t, filepath.Join(dir, "index", "modules.json"), []byte(`[{"path":"example.com/vuln","vulns":[{"id":"GO-2099-0001","modified":"2026-11-01T00:00:00Z","fixed":"1.0.1"}]}]`))
	mustWrite(t, filepath.Join(dir, "ID", "GO-2099-0001.json"), []byte(`{
  "schema_version": "1.3.1",
  "id": "GO-2099-0001",
  "modified": "2026-11-01T00:00:00Z",
  "published": "2026-10-01T00:00:00Z",
  "summary": "Remote code execution in example.com/vuln",
  "affected": [{
    "package": {"name": "example.com/vuln", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.1"}]}]
  }]
}`))
	return dir
}

const gatePolicy = `deny:
  - module: example.com/errs
    versions: "<v0.9.0"
    reason: "v0.8 is not approved; use v0.9.1"
min-age:
  - module: example.com/young
    age: 72h
vulndb: %s
`

// modgateCmd runs the modgate binary with args and returns its stdout.
func modgateCmd(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), args...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("modgate %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// gateEnv is modgate over TLS with tokens, a policy and an audit log, in
// front of the gate fixtures.
type gateEnv struct {
	*env
	ca                   *testenv.CA
	tokens, audit        string
	devToken, adminToken string
}

func newGateEnv(t *testing.T, extra ...string) *gateEnv {
	t.Helper()
	dir := t.TempDir()
	g := &gateEnv{ca: testenv.NewCA(t), tokens: filepath.Join(dir, "tokens.json"), audit: filepath.Join(dir, "audit.log")}
	g.devToken = lastLine(modgateCmd(t, "token", "add", "--tokens", g.tokens, "--name", "dev", "--allow", "example.com"))
	g.adminToken = lastLine(modgateCmd(t, "token", "add", "--tokens", g.tokens, "--name", "ops", "--allow", "*", "--admin"))
	policy := filepath.Join(dir, "policy.yaml")
	mustWrite(t, policy, fmt.Appendf(nil, gatePolicy, writeVulnDB(t)))
	cert, key := g.ca.Issue(t, "127.0.0.1")
	args := append([]string{"--tls-cert", cert, "--tls-key", key, "--tokens", g.tokens, "--policy", policy,
		"--audit-log", g.audit, "--prefetch=false"}, extra...)
	g.env = newEnv(t, gateModules(), args...)
	return g
}

// goEnv is the go command as a client of the gate: over TLS trusting the
// test CA, checksum database off (fixtures are in none), credentials as
// auth says (extra environment).
func (g *gateEnv) goEnv(home string, auth ...string) []string {
	env := append(testenv.GoEnv(home, g.proc.URL), "SSL_CERT_FILE="+g.ca.CertFile, "GOSUMDB=off", "HOME="+home, "NETRC="+filepath.Join(home, ".netrc"))
	return append(env, auth...)
}

// netrc is a .netrc line for the server: the go command matches the
// machine with the port.
func (g *gateEnv) netrc(token string) []byte {
	return []byte("machine " + strings.TrimPrefix(g.proc.URL, "https://") + " login dev password " + token + "\n")
}

// auditEvents reads the audit log.
func (g *gateEnv) auditEvents(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open(g.audit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	return events
}

// TestGateTokens: over TLS, a client without credentials gets 401 and a
// Basic challenge; the go command then succeeds with the token in .netrc
// and with GOAUTH running `modgate goauth`; a token limited to some paths
// gets 403 elsewhere, without learning anything about the module; the
// ops endpoints need an admin token; the audit log holds one event per
// download and never a token.
func TestGateTokens(t *testing.T) {
	g := newGateEnv(t)
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: g.ca.Pool}}}
	get := func(path, token string) (int, http.Header, string) {
		req, _ := http.NewRequest("GET", g.proc.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := tlsClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&b)
		return resp.StatusCode, resp.Header, b.String()
	}
	if status, hdr, body := get("/example.com/ok/@v/list", ""); status != 401 || hdr.Get("WWW-Authenticate") != `Basic realm="modgate"` {
		t.Errorf("no token: %d %q %q, want 401 with a Basic challenge", status, hdr.Get("WWW-Authenticate"), body)
	}
	if status, _, _ := get("/example.com/ok/@v/list", "mgt_not-a-token"); status != 401 {
		t.Errorf("bad token: %d, want 401", status)
	}
	if status, _, body := get("/corp.example.com/secret/@v/list", g.devToken); status != 403 || strings.Contains(body, "v1.0.0") {
		t.Errorf("token limited to example.com asking for corp.example.com: %d %q, want 403 naming no version", status, body)
	}
	if status, _, _ := get("/corp.example.com/nonexistent/@v/list", g.devToken); status != 403 {
		t.Errorf("a module that does not exist answers %d to a token that may not read it, want 403 as for one that does", status)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, _, _ := get(path, ""); status != 200 {
			t.Errorf("%s without a token: %d, want 200", path, status)
		}
	}
	if status, _, _ := get("/metrics", g.devToken); status != 403 {
		t.Errorf("/metrics with a non-admin token: %d, want 403", status)
	}
	if status, _, _ := get("/metrics", g.adminToken); status != 200 {
		t.Errorf("/metrics with an admin token: %d, want 200", status)
	}

	// The go command: without credentials it fails and says 401.
	home := t.TempDir()
	out, err := testenv.Go(t, home, g.goEnv(home, "GOAUTH=off"), "mod", "download", "-json", "example.com/ok@v1.0.0")
	if err == nil || !strings.Contains(out, "401") {
		t.Errorf("go mod download without credentials: err %v, output %s; want a 401 failure", err, out)
	}
	// With the token in .netrc.
	mustWrite(t, filepath.Join(home, ".netrc"), g.netrc(g.devToken))
	if out, err := testenv.Go(t, home, g.goEnv(home), "mod", "download", "-json", "example.com/ok@v1.0.0"); err != nil {
		t.Fatalf("go mod download with .netrc: %v\n%s", err, out)
	}
	// With GOAUTH running modgate goauth, and no .netrc.
	home2 := t.TempDir()
	tokenFile := filepath.Join(home2, "token")
	mustWrite(t, tokenFile, []byte(g.devToken+"\n"))
	goauth := "GOAUTH=" + testenv.Binary(t) + " goauth --url " + g.proc.URL + " --token-file " + tokenFile
	if out, err := testenv.Go(t, home2, g.goEnv(home2, goauth), "mod", "download", "-json", "example.com/ok@v1.1.0"); err != nil {
		t.Fatalf("go mod download with GOAUTH=modgate goauth: %v\n%s", err, out)
	}
	// The limited token and the go command.
	out, err = testenv.Go(t, home2, g.goEnv(home2, goauth), "mod", "download", "-json", "corp.example.com/secret@v1.0.0")
	if err == nil || !strings.Contains(out, "403") {
		t.Errorf("go mod download of a module the token may not read: err %v, output %s", err, out)
	}

	// Exactly one audit event per file downloaded (.info, .mod, .zip of
	// each version), the token's name and never the token.
	events := g.auditEvents(t)
	downloads := map[string]int{}
	for _, e := range events {
		if e["decision"] == "allow" {
			downloads[fmt.Sprintf("%s@%s.%s", e["module"], e["version"], e["file"])]++
			if e["principal"] != "dev" {
				t.Errorf("audit event with principal %v, want dev: %v", e["principal"], e)
			}
		}
	}
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		for _, file := range []string{"info", "mod", "zip"} {
			if n := downloads["example.com/ok@"+v+"."+file]; n != 1 {
				t.Errorf("audit events for example.com/ok@%s.%s: %d, want 1 (all: %v)", v, file, n, downloads)
			}
		}
	}
	raw, _ := os.ReadFile(g.audit)
	if strings.Contains(string(raw), g.devToken) || strings.Contains(string(raw), g.adminToken) || strings.Contains(g.proc.Logs(), g.devToken) {
		t.Errorf("a token shows in the audit log or the server log")
	}
	// Admins query the audit log.
	if status, _, body := get("/admin/v1/audit?module=example.com/ok&decision=allow", g.adminToken); status != 200 || !strings.Contains(body, `"example.com/ok"`) {
		t.Errorf("audit query: %d %q", status, body)
	}
	if status, _, _ := get("/admin/v1/audit", g.devToken); status != 403 {
		t.Errorf("audit query with a non-admin token: %d, want 403", status)
	}
}

// TestGatePolicy: the policy refuses what it denies with its reason in the
// go command's output, a vulnerable version naming the advisory and the
// fixed version, and a version younger than the minimum age; @latest and
// go get -u pick allowed versions; dry run blocks nothing and audits
// would-deny.
func TestGatePolicy(t *testing.T) {
	g := newGateEnv(t)
	home := t.TempDir()
	mustWrite(t, filepath.Join(home, ".netrc"), g.netrc(g.devToken))
	env := g.goEnv(home)
	work := filepath.Join(home, "work")
	os.MkdirAll(work, 0o755)
	if out, err := testenv.Go(t, work, env, "mod", "init", "example.com/client"); err != nil {
		t.Fatal(err, out)
	}
	out, err := testenv.Go(t, work, env, "get", "example.com/errs@v0.8.0")
	if err == nil || !strings.Contains(out, "example.com/errs@v0.8.0 blocked by policy: deny: v0.8 is not approved; use v0.9.1") {
		t.Errorf("go get of a denied version: err %v, output:\n%s", err, out)
	}
	out, err = testenv.Go(t, work, env, "get", "example.com/vuln@v1.0.0")
	if err == nil || !strings.Contains(out, "GO-2099-0001") || !strings.Contains(out, "v1.0.1") {
		t.Errorf("go get of a vulnerable version: err %v, output:\n%s", err, out)
	}
	for mod, want := range map[string]string{"example.com/vuln": "v1.0.1", "example.com/young": "v1.0.0", "example.com/errs": "v0.9.1"} {
		args := []string{"get", mod + "@latest"}
		if mod == "example.com/vuln" {
			args = []string{"get", "-u", mod} // an upgrade picks the fixed version too
		}
		if out, err := testenv.Go(t, work, env, args...); err != nil {
			t.Errorf("go %v: %v\n%s", args, err, out)
			continue
		}
		out, _ := testenv.Go(t, work, env, "list", "-m", "-f", "{{.Version}}", mod)
		if strings.TrimSpace(out) != want {
			t.Errorf("go get %s@latest chose %q, want %s", mod, strings.TrimSpace(out), want)
		}
	}
	out, _ = testenv.Go(t, work, env, "list", "-m", "-versions", "example.com/young")
	if strings.Contains(out, "v1.1.0") {
		t.Errorf("a version younger than min-age is listed: %s", out)
	}
	deny := 0
	for _, e := range g.auditEvents(t) {
		if e["decision"] == "deny" {
			deny++
		}
	}
	if deny < 2 {
		t.Errorf("audit log has %d deny events, want the refused downloads", deny)
	}

	// Dry run: the same download goes through, and is audited as would-deny.
	d := newGateEnv(t, "--policy-dry-run")
	home2 := t.TempDir()
	mustWrite(t, filepath.Join(home2, ".netrc"), d.netrc(d.devToken))
	if out, err := testenv.Go(t, home2, d.goEnv(home2), "mod", "download", "example.com/errs@v0.8.0"); err != nil {
		t.Fatalf("dry run blocked a download: %v\n%s", err, out)
	}
	would := 0
	for _, e := range d.auditEvents(t) {
		if e["decision"] == "would-deny" && e["module"] == "example.com/errs" && e["rule"] == "deny" {
			would++
		}
	}
	if would == 0 {
		t.Errorf("dry run audited no would-deny event: %v", d.auditEvents(t))
	}
}
