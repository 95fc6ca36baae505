package ui

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/modgate/modgate/internal/testenv"
)

// The deny rule's reason holds markup: the policy page must show it as
// text, and nothing in it may run.
const (
	deniedReason = `v0.8 is not approved <img src=x onerror="window.pwned=1">`
	policyFile   = "deny:\n  - module: example.com/errs\n    versions: \"<v0.9.0\"\n    reason: '" + deniedReason + "'\n"
)

// gated is a modgate over TLS with tokens, a policy that denies
// example.com/errs below v0.9.0 and an audit log, in front of a fixture
// upstream (which also has example.com/Fix, whose capitals are escaped in
// URLs, for TestUIFixEntries).
type gated struct {
	url        string
	ca         *testenv.CA
	spki       string // base64 SHA-256 of the certificate's public key, for Chromium to trust
	admin, dev string // tokens
	tokens     string // the tokens file
	up         *testenv.Upstream
	proc       *testenv.Proc
}

func startGated(t *testing.T) *gated {
	t.Helper()
	dir := t.TempDir()
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var mods []testenv.Module
	for _, m := range [][2]string{{"example.com/ok", "v1.0.0"}, {"example.com/ok", "v1.1.0"}, {"example.com/errs", "v0.8.0"}, {"example.com/errs", "v0.9.1"},
		{fixModule, "v1.0.0"}, {fixModule, "v1.1.0-RC.1"}} {
		name := m[0][strings.LastIndexByte(m[0], '/')+1:]
		mods = append(mods, testenv.Module{Path: m[0], Version: m[1], Time: old,
			Files: map[string]string{name + ".go": "package " + name + "\n"}})
	}
	tree := filepath.Join(dir, "tree")
	testenv.BuildTree(t, tree, mods)
	up := testenv.NewUpstream(t, tree)

	tokens := filepath.Join(dir, "tokens.json")
	g := &gated{ca: testenv.NewCA(t), tokens: tokens, up: up}
	g.dev = tokenAdd(t, tokens, "dev", "example.com", false)
	g.admin = tokenAdd(t, tokens, "ops", "*", true)
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(policyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	cert, key := g.ca.Issue(t, "127.0.0.1")
	g.spki = spkiHash(t, cert)
	g.proc = testenv.Start(t, "--data-dir", filepath.Join(dir, "data"), "--upstream", up.URL(), "--log-format", "text",
		"--tls-cert", cert, "--tls-key", key, "--tokens", tokens, "--policy", policy, "--audit-log", filepath.Join(dir, "audit.log"))
	g.url = g.proc.URL
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("modgate logs:\n%s", g.proc.Logs())
		}
	})
	return g
}

// tokenAdd runs modgate token add and returns the token it prints last.
func tokenAdd(t *testing.T, file, name, allow string, admin bool) string {
	t.Helper()
	args := []string{"token", "add", "--tokens", file, "--name", name, "--allow", allow}
	if admin {
		args = append(args, "--admin")
	}
	out, err := exec.Command(testenv.Binary(t), args...).Output()
	if err != nil {
		t.Fatalf("modgate %v: %v", args, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func spkiHash(t *testing.T, certFile string) string {
	t.Helper()
	data, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block in the certificate file")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// goEnv is a directory and an environment to run the go command in as
// the dev token's client, with an empty module cache.
func (g *gated) goEnv(t *testing.T) (home string, env []string) {
	t.Helper()
	home = t.TempDir()
	netrc := filepath.Join(home, ".netrc")
	machine := strings.TrimPrefix(g.url, "https://")
	if err := os.WriteFile(netrc, []byte("machine "+machine+" login dev password "+g.dev+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return home, append(testenv.GoEnv(home, g.url), "SSL_CERT_FILE="+g.ca.CertFile, "GOSUMDB=off", "HOME="+home, "NETRC="+netrc)
}

// download runs the go command as the dev token's client: two allowed
// versions, and one the policy refuses.
func (g *gated) download(t *testing.T) {
	t.Helper()
	home, env := g.goEnv(t)
	if out, err := testenv.Go(t, home, env, "mod", "download", "-json", "example.com/ok@v1.0.0", "example.com/ok@v1.1.0"); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	if out, err := testenv.Go(t, home, env, "mod", "download", "-json", "example.com/errs@v0.8.0"); err == nil || !strings.Contains(out, "not approved") {
		t.Fatalf("go mod download of a denied version: %v\n%s; want the policy's refusal", err, out)
	}
}

// api asks the admin API what the UI shows, to compare.
func (g *gated) api(t *testing.T, path string, v any) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: g.ca.Pool}}}
	req, _ := http.NewRequest("GET", g.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+g.admin)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestUI: with tokens on, the UI asks for an admin token first, refuses a
// wrong one and a non-admin one with the server's message, keeps the
// right one for the tab's session, and then draws each page from what
// the go command's downloads left: the module list and a module's
// versions with their h1, the charts, the audit log and its filters, the
// policy with its refusals (its reason's markup shown as text, never
// run), and health; at a phone's width and a laptop's, with no console
// error, no uncaught exception and no sideways scrolling.
func TestUI(t *testing.T) {
	g := startGated(t)
	g.download(t)
	browser := newBrowser(t, map[string]any{"ignore-certificate-errors-spki-list": g.spki})

	var stored struct {
		Modules []struct {
			Path     string
			Versions []struct{ Version, H1 string }
		}
	}
	// A zip's h1 is recorded in the background once it is served: wait
	// for both before comparing the page with them.
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(50 * time.Millisecond) {
		g.api(t, "/admin/v1/modules?q=example.com/ok", &stored)
		if len(stored.Modules) != 1 || len(stored.Modules[0].Versions) != 2 {
			t.Fatalf("the admin API lists %+v, want example.com/ok with two versions", stored.Modules)
		}
		vs := stored.Modules[0].Versions
		if vs[0].H1 != "" && vs[1].H1 != "" || time.Now().After(deadline) {
			break
		}
	}

	for _, vp := range []viewport{phone, laptop} {
		t.Run(vp.name, func(t *testing.T) {
			tb := openTab(t, browser, vp)
			tb.do(chromedp.Navigate(g.url + "/ui/"))

			// Sign in: the form first, then a wrong token, a token that is
			// not an admin's, and the admin's.
			tb.waitFor("the sign-in form", `!document.getElementById("login").hidden && document.getElementById("view").dataset.state === "login"`)
			tb.screenshot("signin")
			for _, try := range []struct{ token, says string }{
				{"mgt_" + strings.Repeat("A", 43), "not valid"},
				{g.dev, "not an admin token"},
			} {
				tb.do(chromedp.SendKeys(chromedp.ID("token"), try.token), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
				tb.waitFor("the sign-in form saying "+try.says, `!document.getElementById("login").hidden && document.getElementById("login-error").className === "error" && document.getElementById("login-error").textContent.includes(`+jsString(try.says)+`)`)
			}
			tb.screenshot("signin-refused")
			tb.do(chromedp.SendKeys(chromedp.ID("token"), g.admin), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
			tb.waitView("")
			// The token stays for the tab's session: a reload needs no sign-in.
			tb.do(chromedp.Reload())
			tb.waitView("")
			if text := tb.viewText(); !strings.Contains(text, "example.com/ok") {
				t.Errorf("the module list lacks example.com/ok:\n%s", text)
			}
			tb.fitsWidth("the module list")
			tb.screenshot("modules")

			// A module's versions, newest first, each with its h1.
			tb.do(chromedp.Click(chromedp.CSS(`a.module-link[href="#/module/example.com%2Fok"]`)))
			tb.waitView("#/module/example.com%2Fok")
			rows := eval[[]string](tb, `Array.from(document.querySelectorAll("#view tbody tr")).map(r => r.innerText)`)
			if len(rows) != 2 || !strings.HasPrefix(rows[0], "v1.1.0") || !strings.HasPrefix(rows[1], "v1.0.0") {
				t.Errorf("version rows %q, want v1.1.0 then v1.0.0", rows)
			}
			for _, v := range stored.Modules[0].Versions {
				if v.H1 == "" {
					t.Errorf("the admin API gives no h1 for example.com/ok@%s", v.Version)
				}
				if !strings.Contains(strings.Join(rows, "\n"), v.Version) || !strings.Contains(strings.Join(rows, "\n"), v.H1) {
					t.Errorf("the versions table lacks %s with h1 %q:\n%s", v.Version, v.H1, strings.Join(rows, "\n"))
				}
			}
			tb.fitsWidth("the module page")
			tb.screenshot("module")

			// Stats: the time series (hours, then days) and the counters,
			// each chart drawn.
			for _, route := range []string{"#/stats", "#/stats?range=days"} {
				shot := "stats-days"
				if route == "#/stats" {
					shot = "stats-hours"
					tb.do(chromedp.Click(chromedp.CSS(`nav a[data-page="stats"]`)))
				} else {
					tb.do(chromedp.Click(chromedp.CSS(`.tabs a[href="#/stats?range=days"]`)))
				}
				tb.waitView(route)
				lines := eval[int](tb, `Array.from(document.querySelectorAll("#history-charts svg path.line")).filter(p => /^M[\d.]+ [\d.]+(L[\d.]+ [\d.]+)+$/.test(p.getAttribute("d"))).length`)
				if lines < 3 {
					t.Errorf("%s: %d line charts drawn, want at least 3 (requests, hit ratio, upstream fetches):\n%s", route, lines, tb.viewText())
				}
				if bars := eval[int](tb, `document.querySelectorAll("#history-charts svg rect.b0, #since-start-charts svg rect.b0").length`); bars == 0 {
					t.Errorf("%s: no bar drawn", route)
				}
				if n := eval[int](tb, `document.querySelectorAll("#since-start-charts svg").length`); n != 3 {
					t.Errorf("%s: %d charts of the counters since start, want 3", route, n)
				}
				// The series hold the downloads made minutes ago: the
				// charts are live, not waiting for the minute's sample.
				if !eval[bool](tb, `document.querySelector("#history-charts").textContent.includes("example.com/ok")`) {
					t.Errorf("%s: the top modules chart does not show the module downloaded:\n%s", route, tb.viewText())
				}
				tb.fitsWidth("the stats page")
				tb.screenshot(shot)
			}

			// The audit log: the dev token's downloads and its refusal,
			// then filtered to one principal by a click on it.
			tb.do(chromedp.Click(chromedp.CSS(`nav a[data-page="audit"]`)))
			tb.waitView("#/audit")
			text := tb.viewText()
			for _, want := range []string{"example.com/ok", "example.com/errs", "deny", "allow", "dev"} {
				if !strings.Contains(text, want) {
					t.Errorf("the audit page lacks %q:\n%s", want, text)
				}
			}
			tb.fitsWidth("the audit page")
			tb.screenshot("audit")
			tb.do(chromedp.Click(chromedp.CSS(`#view tbody tr:first-child td:nth-child(3) a`)))
			tb.waitView("#/audit?principal=dev&limit=200")
			if who := eval[[]string](tb, `Array.from(document.querySelectorAll("#view tbody tr td:nth-child(3)")).map(td => td.innerText)`); len(who) == 0 || strings.Join(who, "") != strings.Repeat("dev", len(who)) {
				t.Errorf("filtered by principal dev, the rows' principals are %q", who)
			}

			// The policy: its rule, its refusal of example.com/errs@v0.8.0,
			// the reason's markup as text.
			tb.do(chromedp.Click(chromedp.CSS(`nav a[data-page="policy"]`)))
			tb.waitView("#/policy")
			text = tb.viewText()
			for _, want := range []string{"example.com/errs", "<v0.9.0", deniedReason, "v0.8.0", "enforcing"} {
				if !strings.Contains(text, want) {
					t.Errorf("the policy page lacks %q:\n%s", want, text)
				}
			}
			if eval[bool](tb, `document.querySelectorAll("#view img").length > 0 || window.pwned !== undefined`) {
				t.Error("markup in the policy's reason became an element")
			}
			if eval[int](tb, `document.querySelectorAll("#view svg rect.b1").length`) == 0 {
				t.Error("no refusals-by-rule chart")
			}
			tb.fitsWidth("the policy page")
			tb.screenshot("policy")

			tb.do(chromedp.Click(chromedp.CSS(`nav a[data-page="health"]`)))
			tb.waitView("#/health")
			if !eval[bool](tb, `document.getElementById("health-summary").classList.contains("ok")`) {
				t.Errorf("health is not ok:\n%s", tb.viewText())
			}
			tb.fitsWidth("the health page")
			tb.screenshot("health")

			// Signing out forgets the token.
			tb.do(chromedp.Click(chromedp.ID("logout")))
			tb.waitFor("the sign-in form after signing out", `!document.getElementById("login").hidden && sessionStorage.length === 0`)
			tb.checkConsole()
		})
	}
}

// TestUITokensOff: without tokens the UI answers local clients without a
// sign-in, and says what is off.
func TestUITokensOff(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	testenv.BuildTree(t, tree, []testenv.Module{{Path: "example.com/ok", Version: "v1.0.0", Files: map[string]string{"ok.go": "package ok\n"}}})
	up := testenv.NewUpstream(t, tree)
	proc := testenv.Start(t, "--data-dir", filepath.Join(dir, "data"), "--upstream", up.URL(), "--log-format", "text")
	browser := newBrowser(t, nil)
	tb := openTab(t, browser, laptop)

	tb.do(chromedp.Navigate(proc.URL + "/ui/#/health"))
	tb.waitView("#/health")
	if eval[bool](tb, `!document.getElementById("login").hidden || !document.getElementById("logout").hidden`) {
		t.Error("without tokens the UI shows sign-in or sign-out")
	}
	if text := tb.viewText(); !strings.Contains(text, "verification off") {
		t.Errorf("health does not say verification is off (--sumdb off):\n%s", text)
	}
	tb.screenshot("tokens-off-health")
	u, _ := url.Parse(proc.URL)
	for route, want := range map[string]string{
		"#/policy": "no download policy is configured",
		"#/audit":  "the audit log is",
		"#/":       "Nothing is stored yet.",
	} {
		tb.do(chromedp.Navigate(u.String() + "/ui/" + route))
		tb.waitView(route)
		if text := tb.viewText(); !strings.Contains(text, want) {
			t.Errorf("%s lacks %q:\n%s", route, want, text)
		}
	}
	tb.checkConsole()
	if t.Failed() {
		t.Logf("modgate logs:\n%s", proc.Logs())
	}
}
