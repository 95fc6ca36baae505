package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/auth"
	"github.com/modgate/modgate/internal/policy"
	"github.com/modgate/modgate/internal/scan/scantest"
	"github.com/modgate/modgate/internal/testenv"
)

// scanEnv makes the fixture's go command settings this process's, as
// "modgate scan" runs the go command with the user's environment.
func scanEnv(t *testing.T, f *scantest.Fixture) {
	for _, kv := range f.Env {
		k, v, _ := strings.Cut(kv, "=")
		if os.Getenv(k) != v {
			t.Setenv(k, v)
		}
	}
}

func runScan(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var stdout, stderr bytes.Buffer
	code := scanCmd(args, &stdout, &stderr, getenv)
	return code, stdout.String(), stderr.String()
}

// TestScanPolicy: with a local policy file, every violation is listed with
// its reason and the exit status is 1; a clean module exits 0; the SBOM is
// written beside.
func TestScanPolicy(t *testing.T) {
	f := scantest.New(t)
	scanEnv(t, f)
	sbom := filepath.Join(t.TempDir(), "sbom.json")
	code, out, errOut := runScan(t, nil, f.Dir, "--policy", f.Policy, "--sbom", sbom)
	if code != 1 || errOut != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"example.com/denied@v1.0.0: denied (deny): v1.0 is not approved; use v1.1.0\n",
		"example.com/retracted@v1.1.0: retracted (retracted): retracted by the module's author: loses data on restart\n",
		"example.com/vuln@v1.2.0: vulnerable (vuln): GO-2099-0101 (fixed in v1.2.3)\n",
		"example.com/young@v1.1.0: too young (min-age): published ",
		"example.com/app: 5 modules checked, 4 violations\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "example.com/fine") {
		t.Errorf("an allowed module is reported:\n%s", out)
	}
	data, err := os.ReadFile(sbom)
	if err != nil || !json.Valid(data) || !bytes.Contains(data, []byte(`"pkg:golang/example.com/fine@v1.0.0"`)) {
		t.Errorf("SBOM (%v):\n%s", err, data)
	}

	code, out, errOut = runScan(t, nil, "--json", "--policy", f.Policy, f.Clean)
	var res struct {
		Module     string
		Violations int
		Results    []policy.CheckResult
	}
	if code != 0 || errOut != "" || json.Unmarshal([]byte(out), &res) != nil || res.Violations != 0 || len(res.Results) != 3 {
		t.Fatalf("clean module: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
}

// TestScanServer: against the server's check API, with the token sent as
// a bearer token. The lead mounts the handler at POST /policy/check of
// "modgate serve --policy"; until then the real handler runs here in
// httptest, behind a check of the token.
func TestScanServer(t *testing.T) {
	f := scantest.New(t)
	testenv.Binary(t) // built before scanEnv points GOPROXY at the fixture
	scanEnv(t, f)
	// A real modgate with the fixture's policy and tokens on.
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	token, err := auth.Add(tokens, "ci", []string{"*"}, false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	narrow, err := auth.Add(tokens, "narrow", []string{"nothing.example"}, false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	p := testenv.Start(t, "--data-dir", dataDir, "--upstream", f.Upstream.URL(), "--policy", f.Policy, "--tokens", tokens)
	srv := struct{ URL string }{p.URL}
	zipsBefore := f.Upstream.CountContaining(".zip")

	// A token that may read none of these modules still gets the verdicts
	// that need nothing read (deny, vulnerabilities), and makes modgate
	// fetch nothing for it: the minimum age, which needs a version's
	// .info, is left unchecked rather than fetched.
	narrowEnv := func(k string) string {
		if k == "MODGATE_TOKEN" {
			return narrow
		}
		return ""
	}
	code, out, errOut := runScan(t, narrowEnv, f.Dir, "--server", srv.URL)
	if code != 1 || !strings.Contains(out, "example.com/vuln@v1.2.0: vulnerable (vuln)") || strings.Contains(out, "too young") {
		t.Fatalf("narrow token: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	if stored, _ := filepath.Glob(filepath.Join(dataDir, "mod", "example.com", "*", "@v", "*.info")); len(stored) != 0 {
		t.Errorf("a token that may read nothing made modgate fetch %v", stored)
	}

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runScan(t, nil, f.Dir, "--server", srv.URL, "--token-file", tokenFile)
	if code != 1 || errOut != "" || !strings.Contains(out, "example.com/vuln@v1.2.0: vulnerable (vuln): GO-2099-0101 (fixed in v1.2.3)\n") ||
		!strings.Contains(out, "4 violations") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	env := func(k string) string {
		if k == "MODGATE_TOKEN" {
			return token
		}
		return ""
	}
	if code, out, errOut := runScan(t, env, f.Clean, "--server", srv.URL); code != 0 || errOut != "" {
		t.Fatalf("clean module: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	// No token: the server's refusal is one line, exit 2.
	code, _, errOut = runScan(t, nil, f.Dir, "--server", srv.URL)
	if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "401 Unauthorized") {
		t.Fatalf("without a token: exit %d, stderr %q", code, errOut)
	}
	// The server decided without downloading a single zip.
	if n := f.Upstream.CountContaining(".zip") - zipsBefore; n != 0 {
		t.Errorf("the policy check fetched %d zips from the upstream", n)
	}
}

// TestScanErrors: a server that cannot be reached and bad usage exit 2
// with one line.
func TestScanErrors(t *testing.T) {
	f := scantest.New(t)
	scanEnv(t, f)
	for _, args := range [][]string{
		{f.Clean, "--server", testenv.RefusedURL(t)},
		{f.Clean},
		{f.Clean, "--server", "http://127.0.0.1:1", "--policy", f.Policy},
		{t.TempDir(), "--policy", f.Policy},
	} {
		code, out, errOut := runScan(t, nil, args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "modgate scan: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}
