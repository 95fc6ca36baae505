package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinary()
	os.Exit(code)
}

// machine is a made-up client machine: its go env, its environment and an
// empty home directory, nothing read from the machine running the test.
type machine struct {
	goEnv map[string]string
	vars  map[string]string
	home  string
}

func newMachine(t *testing.T, goproxy string) *machine {
	return &machine{
		goEnv: map[string]string{"GOPROXY": goproxy, "GOSUMDB": "sum.golang.org", "GOTOOLCHAIN": "local"},
		vars:  map[string]string{},
		home:  t.TempDir(),
	}
}

func (m *machine) run(t *testing.T, opts Options) *Report {
	t.Helper()
	env := Env{
		Getenv: func(k string) string { return m.vars[k] },
		Go:     m.goEnv,
		Home:   m.home,
		Now:    time.Now,
	}
	r := Run(context.Background(), env, opts)
	var text bytes.Buffer
	r.WriteText(&text)
	t.Logf("doctor report:\n%s", text.String())
	return r
}

// check returns the first check named name (with the given target, or
// any when target is "").
func check(t *testing.T, r *Report, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in the report", name)
	return Check{}
}

// fixtureUpstream is an empty GOPROXY tree: every module answers 404,
// which is what a working proxy says about a module it does not have.
func fixtureUpstream(t *testing.T) string {
	dir := t.TempDir()
	testenv.BuildTree(t, dir, nil)
	return testenv.NewUpstream(t, dir).URL()
}

// startModgate starts a modgate serving the checksum database (its
// "supported" answer needs no network) in front of an empty upstream.
func startModgate(t *testing.T, args ...string) *testenv.Proc {
	return testenv.Start(t, append([]string{"--upstream", fixtureUpstream(t), "--sumdb", "sum.golang.org", "--data-dir", t.TempDir()}, args...)...)
}

func TestRefusedProxy(t *testing.T) {
	url := testenv.RefusedURL(t)
	m := newMachine(t, url+",direct")
	r := m.run(t, Options{})
	c := check(t, r, "tcp")
	if c.Status != Fail || !strings.Contains(c.Detail, "refused") || !strings.Contains(c.Fix, "modgate serve") {
		t.Errorf("tcp check = %+v, want a failure saying refused with a fix", c)
	}
	if !r.Failed() {
		t.Error("report not failed")
	}
	if c := check(t, r, "entry"); c.Status != Skip || c.Target != "direct" {
		t.Errorf("direct entry = %+v, want skipped with an explanation", c)
	}
}

func TestCredentialsInGOPROXYNotShown(t *testing.T) {
	url := strings.Replace(testenv.RefusedURL(t), "http://", "http://alice:s3cr3t-token@", 1)
	m := newMachine(t, url)
	r := m.run(t, Options{})
	var text, js bytes.Buffer
	r.WriteText(&text)
	r.WriteJSON(&js)
	for _, out := range []string{text.String(), js.String()} {
		if strings.Contains(out, "s3cr3t-token") || strings.Contains(out, "alice") {
			t.Errorf("the GOPROXY credentials were printed:\n%s", out)
		}
	}
}

func TestUnresolvableHost(t *testing.T) {
	m := newMachine(t, "http://modgate.invalid")
	r := m.run(t, Options{Timeout: 2 * time.Second})
	if c := check(t, r, "dns"); c.Status != Fail || !strings.Contains(c.Detail, "modgate.invalid") || c.Fix == "" {
		t.Errorf("dns check = %+v, want a failure naming the host, with a fix", c)
	}
	if c := check(t, r, "tcp, tls, http"); c.Status != Skip {
		t.Errorf("later steps = %+v, want skipped", c)
	}
}

func TestProxyFlagReplacesFirstEntry(t *testing.T) {
	refused := testenv.RefusedURL(t)
	p := startModgate(t)
	m := newMachine(t, refused+",direct")
	r := m.run(t, Options{Proxy: p.URL})
	if r.Failed() {
		t.Fatal("with --proxy naming a working modgate, doctor failed")
	}
	if c := check(t, r, "http"); c.Target != p.URL {
		t.Errorf("http check target = %q, want %q", c.Target, p.URL)
	}
}

func TestUntrustedThenTrustedCA(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1")
	p := startModgate(t, "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(p.URL, "https://") {
		t.Fatalf("modgate serves %s, want https", p.URL)
	}

	// Another CA in SSL_CERT_FILE: doctor must use it in place of the
	// system store, as the go command would.
	other := testenv.NewCA(t)
	m := newMachine(t, p.URL)
	m.vars["SSL_CERT_FILE"] = other.CertFile
	r := m.run(t, Options{})
	c := check(t, r, "tls")
	if c.Status != Fail || !strings.Contains(c.Detail, "does not trust") || !strings.Contains(c.Detail, "modgate test CA") || !strings.Contains(c.Fix, "SSL_CERT_FILE") {
		t.Errorf("tls check with an unknown CA = %+v", c)
	}
	if !r.Failed() {
		t.Error("report not failed")
	}

	// No SSL_CERT_FILE: the system store does not know the test CA either;
	// the fix then names update-ca-certificates too.
	delete(m.vars, "SSL_CERT_FILE")
	r = m.run(t, Options{})
	if c := check(t, r, "tls"); c.Status != Fail || !strings.Contains(c.Fix, "update-ca-certificates") {
		t.Errorf("tls check against the system store = %+v", c)
	}

	m.vars["SSL_CERT_FILE"] = ca.CertFile
	r = m.run(t, Options{})
	if r.Failed() {
		t.Fatal("with the CA in SSL_CERT_FILE, doctor still fails")
	}
	// The test certificate lives a day: ok, or a warning that it expires.
	if c := check(t, r, "tls"); c.Status == Fail || !strings.Contains(c.Detail, "modgate test CA") {
		t.Errorf("tls check = %+v, want it to pass", c)
	}
}

func TestNameMismatch(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "modgate.other.test")
	p := startModgate(t, "--tls-cert", cert, "--tls-key", key)
	m := newMachine(t, p.URL)
	m.vars["SSL_CERT_FILE"] = ca.CertFile
	r := m.run(t, Options{})
	if c := check(t, r, "tls"); c.Status != Fail || !strings.Contains(c.Detail, "modgate.other.test") || !strings.Contains(c.Detail, "mismatch") {
		t.Errorf("tls check = %+v, want a name mismatch", c)
	}
}

func TestHealthy(t *testing.T) {
	p := startModgate(t)
	m := newMachine(t, p.URL+",direct")
	r := m.run(t, Options{})
	if r.Failed() || r.Summary.Warn != 0 {
		t.Fatalf("healthy set-up: %+v", r.Summary)
	}
	for _, name := range []string{"tcp", "http", "checksum database"} {
		if c := check(t, r, name); c.Status != OK {
			t.Errorf("%s = %+v, want ok", name, c)
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Summary != r.Summary || len(back.Checks) != len(r.Checks) {
		t.Errorf("JSON does not round-trip: %v\n%s", err, js.String())
	}
}

func TestSumDBOffIsAWarning(t *testing.T) {
	p := startModgate(t)
	m := newMachine(t, p.URL)
	m.goEnv["GOSUMDB"] = "off"
	r := m.run(t, Options{})
	if c := check(t, r, "GOSUMDB"); c.Status != Warn || c.Fix != "go env -u GOSUMDB" {
		t.Errorf("GOSUMDB check = %+v", c)
	}
	if r.Failed() {
		t.Error("GOSUMDB=off alone made doctor fail; it is a warning")
	}
}

func TestServerWithoutSumDB(t *testing.T) {
	p := testenv.Start(t, "--upstream", fixtureUpstream(t), "--data-dir", t.TempDir()) // --sumdb off
	m := newMachine(t, p.URL)
	r := m.run(t, Options{})
	if c := check(t, r, "checksum database"); c.Status != Fail || !strings.Contains(c.Detail, "directly") {
		t.Errorf("checksum database check = %+v, want a failure", c)
	}
}

func TestPrivatePatternSentToSumDB(t *testing.T) {
	p := startModgate(t, "--private", "example.corp.test", "--insecure", "example.corp.test")
	m := newMachine(t, p.URL)
	r := m.run(t, Options{})
	if c := check(t, r, "modgate"); c.Status != OK {
		testenv.SkipOrFatal(t, "this modgate does not describe itself at /setup.json: %+v", c)
	}
	c := check(t, r, "private patterns")
	if c.Status != Fail || c.Fix != "go env -w GONOSUMDB=example.corp.test" {
		t.Errorf("private patterns check = %+v, want a failure with the GONOSUMDB fix", c)
	}

	m.goEnv["GONOSUMDB"] = "example.corp.test"
	if r := m.run(t, Options{}); r.Failed() {
		t.Error("with GONOSUMDB set, doctor still fails")
	}
}

func TestNetrcReadableByOthers(t *testing.T) {
	m := newMachine(t, testenv.RefusedURL(t))
	path := filepath.Join(m.home, ".netrc")
	if err := os.WriteFile(path, []byte("machine 127.0.0.1 login bob password n3trc-secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	r := m.run(t, Options{})
	c := check(t, r, "netrc")
	if c.Status != Warn || c.Fix != "chmod 600 "+path {
		t.Errorf("netrc check = %+v, want a warning with chmod 600", c)
	}
	var js bytes.Buffer
	r.WriteJSON(&js)
	if strings.Contains(js.String(), "n3trc-secret") {
		t.Error("the netrc password was printed")
	}

	os.Chmod(path, 0o600)
	if c := check(t, m.run(t, Options{}), "netrc"); c.Status != OK {
		t.Errorf("netrc check with mode 600 = %+v", c)
	}
}
