package ui

import (
	"crypto/tls"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/modgate/modgate/internal/testenv"
)

// The module whose entries TestUIFixEntries fixes, and its page. Its
// capitals, and those of the version purged (fixVersion), are written
// "!" and lower case in the admin API's URLs, as in the GOPROXY protocol.
const (
	fixModule  = "example.com/Fix"
	fixRoute   = "#/module/example.com%2FFix"
	fixVersion = "v1.1.0-RC.1"
)

// TestUIFixEntries: from a module's page an operator purges a version and
// refreshes the module's list, through the admin API. At a phone's width
// and a laptop's: the purge asks first in the row (Cancel and Escape keep
// the version; the keyboard alone can do it), Confirm removes the
// version (the row goes, the API no longer lists it, the page says so),
// and the real go command then fetches it again from the upstream through
// modgate; Refresh asks the upstream for the list, shows its answer and
// the version back. Then the edges: a version purged meanwhile by another
// client; a refresh of a module no source has, which shows the server's
// error line; and a token revoked while the question is open, which
// brings back the sign-in form with the server's line and purges nothing.
func TestUIFixEntries(t *testing.T) {
	g := startGated(t)
	g.goDownload(t, fixModule+"@v1.0.0", fixModule+"@"+fixVersion)
	oncall := tokenAdd(t, g.tokens, "oncall", "*", true) // revoked below
	browser := newBrowser(t, map[string]any{"ignore-certificate-errors-spki-list": g.spki})
	const (
		zipPath  = "/example.com/!fix/@v/v1.1.0-!r!c.1.zip" // as the upstream is asked
		listPath = "/example.com/!fix/@v/list"
	)
	purgeQuestion := `document.querySelector('.purge[data-version="` + fixVersion + `"]')`

	for _, vp := range []viewport{phone, laptop} {
		t.Run(vp.name, func(t *testing.T) {
			tb := openTab(t, browser, vp)
			tb.do(chromedp.Navigate(g.url + "/ui/" + fixRoute))
			tb.signIn(g.admin)
			tb.waitView(fixRoute)
			if rows := tb.versionRows(); !slices.Equal(rows, []string{fixVersion, "v1.0.0"}) {
				t.Fatalf("the page lists %q, want %s and v1.0.0", rows, fixVersion)
			}

			// The question, by mouse: Cancel keeps the version.
			tb.do(chromedp.Click(purgeButton(fixVersion)))
			tb.waitFor("the purge question", purgeQuestion+`.innerText.includes("Purge `+fixVersion+`?")`)
			if f := eval[string](tb, `document.activeElement.textContent`); f != "Cancel" {
				t.Errorf("the question has the focus on %q, want Cancel", f)
			}
			tb.fitsWidth("the purge question")
			tb.screenshot("module-purge-confirm")
			tb.do(chromedp.Click(chromedp.CSS(purgeSelector(fixVersion) + `:last-child`)))
			tb.waitFor("the Purge button back, focused", `document.activeElement === document.querySelector(`+jsString(purgeSelector(fixVersion))+`)`)

			// By keyboard: Enter asks, Escape takes it back.
			tb.do(chromedp.KeyEvent(kb.Enter))
			tb.waitFor("the question by keyboard", `document.activeElement.textContent === "Cancel"`)
			tb.do(chromedp.KeyEvent(kb.Escape))
			tb.waitFor("the Purge button back after Escape", `document.activeElement === document.querySelector(`+jsString(purgeSelector(fixVersion))+`)`)
			if !slices.Contains(g.storedVersions(t), fixVersion) {
				t.Fatalf("%s is gone after Cancel and Escape", fixVersion)
			}

			// Confirm purges: the page says so and redraws without the row.
			zips := g.up.Count(zipPath)
			tb.do(chromedp.Click(purgeButton(fixVersion)), chromedp.Click(chromedp.CSS(purgeSelector(fixVersion)+`.danger`)))
			said := tb.waitStatus("ok")
			if want := "Purged " + fixModule + "@" + fixVersion + " ("; !strings.HasPrefix(said, want) || !strings.Contains(said, "fetched again on its next request") {
				t.Errorf("after the purge the page says %q, want %q... and that it is fetched again", said, want)
			}
			if rows := tb.versionRows(); !slices.Equal(rows, []string{"v1.0.0"}) {
				t.Errorf("after the purge the page lists %q, want v1.0.0 alone", rows)
			}
			if stored := g.storedVersions(t); slices.Contains(stored, fixVersion) {
				t.Errorf("after the purge the admin API still lists %s: %q", fixVersion, stored)
			}
			if !eval[bool](tb, `document.activeElement === document.getElementById("module-status")`) {
				t.Error("after the purge the focus is not on the status line")
			}
			tb.fitsWidth("the module page after a purge")
			tb.screenshot("module-purged")

			// The go command, with an empty module cache, gets it again:
			// modgate fetches it from the upstream and stores it again.
			g.goDownload(t, fixModule+"@"+fixVersion)
			if n := g.up.Count(zipPath); n <= zips {
				t.Errorf("the upstream served %s %d times before the purge and %d after a download: not fetched again", zipPath, zips, n)
			}
			if stored := g.storedVersions(t); !slices.Contains(stored, fixVersion) {
				t.Errorf("after the go command's download the admin API lists %q, want %s again", stored, fixVersion)
			}

			// Refresh asks the upstream for the list, says what it answered,
			// and redraws the versions: the one purged is back. While the
			// upstream holds the list, every button of the page is disabled.
			lists := g.up.Count(listPath)
			release := make(chan struct{})
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			t.Cleanup(free)
			g.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == listPath {
					<-release
				}
				return false
			})
			tb.do(chromedp.Click(chromedp.ID("refresh")))
			tb.waitFor("every button disabled while the upstream holds the list", `document.getElementById("module-status").dataset.result === "busy" && Array.from(document.querySelectorAll("#view button")).every(b => b.disabled)`)
			free()
			g.up.SetHook(nil)
			said = tb.waitStatus("ok")
			if want := "Refreshed " + fixModule + ": the source lists 2 versions, @latest is v1.0.0."; said != want {
				t.Errorf("after Refresh the page says %q, want %q", said, want)
			}
			if rows := tb.versionRows(); !slices.Equal(rows, []string{fixVersion, "v1.0.0"}) {
				t.Errorf("after Refresh the page lists %q, want %s (fetched again) and v1.0.0", rows, fixVersion)
			}
			if n := g.up.Count(listPath); n <= lists {
				t.Errorf("Refresh did not ask the upstream for %s (%d requests before, %d after)", listPath, lists, n)
			}
			tb.fitsWidth("the module page after a refresh")
			tb.screenshot("module-refreshed")
			tb.checkConsole()
		})
	}

	t.Run("edges", func(t *testing.T) {
		tb := openTab(t, browser, laptop)
		tb.do(chromedp.Navigate(g.url + "/ui/" + fixRoute))
		tb.signIn(oncall)
		tb.waitView(fixRoute)

		// Another client purges the version while the question is open:
		// the server finds nothing to remove, and the page says that.
		tb.do(chromedp.Click(purgeButton(fixVersion)))
		if code, body := g.request(t, "DELETE", "/admin/v1/modules/example.com/!fix/@v/v1.1.0-!r!c.1", g.admin); code != http.StatusOK {
			t.Fatalf("purge by another client: %d %s", code, body)
		}
		tb.do(chromedp.Click(chromedp.CSS(purgeSelector(fixVersion) + `.danger`)))
		if said, want := tb.waitStatus("ok"), fixModule+"@"+fixVersion+" was not stored any more: nothing to purge."; said != want {
			t.Errorf("purging a version purged meanwhile, the page says %q, want %q", said, want)
		}
		if rows := tb.versionRows(); !slices.Equal(rows, []string{"v1.0.0"}) {
			t.Errorf("after the purge the page lists %q, want v1.0.0 alone", rows)
		}

		// Refresh of a module no source has: the server's line, as an error.
		tb.do(chromedp.Navigate(g.url + "/ui/#/module/example.com%2FNothere"))
		tb.waitView("#/module/example.com%2FNothere")
		tb.do(chromedp.Click(chromedp.ID("refresh")))
		if said, want := tb.waitStatus("error"), "modgate: refreshing example.com/Nothere: no source has this module"; !strings.HasPrefix(said, want) {
			t.Errorf("refreshing a module no source has, the page says %q, want %q...", said, want)
		}
		tb.screenshot("module-refresh-failed")
		tb.do(chromedp.Navigate(g.url + "/ui/" + fixRoute))
		tb.waitView(fixRoute)

		// The token is revoked while the question is open: Confirm brings
		// back the sign-in form with the server's line, and v1.0.0 stays.
		tb.do(chromedp.Click(purgeButton("v1.0.0")))
		g.revoke(t, "oncall", oncall)
		tb.do(chromedp.Click(chromedp.CSS(purgeSelector("v1.0.0") + `.danger`)))
		tb.waitFor("the sign-in form with the server's refusal", `!document.getElementById("login").hidden && document.getElementById("login-error").className === "error" && document.getElementById("login-error").textContent.includes("not valid (unknown or revoked)")`)
		if eval[int](tb, `sessionStorage.length`) != 0 {
			t.Error("the revoked token is still in the tab's session storage")
		}
		if !slices.Contains(g.storedVersions(t), "v1.0.0") {
			t.Error("a purge with a revoked token removed v1.0.0")
		}
		tb.fitsWidth("the sign-in form after a refused purge")
		tb.screenshot("module-purge-refused")
		tb.checkConsole()
	})
}

func purgeSelector(version string) string {
	return `.purge[data-version="` + version + `"] button`
}

func purgeButton(version string) chromedp.CSS {
	return chromedp.CSS(purgeSelector(version))
}

// signIn signs in on the form the UI shows first.
func (tb *tab) signIn(token string) {
	tb.t.Helper()
	tb.waitFor("the sign-in form", `!document.getElementById("login").hidden`)
	tb.do(chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
}

// waitStatus waits until the module page's status line shows an outcome
// and returns its text; the outcome must be want.
func (tb *tab) waitStatus(want string) string {
	tb.t.Helper()
	tb.waitFor("an outcome in the status line", `["ok", "error"].includes(document.getElementById("module-status").dataset.result)`)
	if got := eval[string](tb, `document.getElementById("module-status").dataset.result`); got != want {
		tb.t.Errorf("%s: the status line shows an outcome %q, want %q", tb.vp.name, got, want)
	}
	if n := eval[int](tb, `document.querySelectorAll("#view button:disabled").length`); n != 0 {
		tb.t.Errorf("%s: %d buttons still disabled after the answer", tb.vp.name, n)
	}
	return eval[string](tb, `document.getElementById("module-status").textContent`)
}

// versionRows are the versions the module page's table lists.
func (tb *tab) versionRows() []string {
	tb.t.Helper()
	return eval[[]string](tb, `Array.from(document.querySelectorAll("#view tbody tr td:first-child .mono")).map(e => e.textContent)`)
}

// goDownload runs go mod download of mods as the dev token's client,
// with an empty module cache.
func (g *gated) goDownload(t *testing.T, mods ...string) {
	t.Helper()
	home, env := g.goEnv(t)
	if out, err := testenv.Go(t, home, env, append([]string{"mod", "download", "-json"}, mods...)...); err != nil {
		t.Fatalf("go mod download %s: %v\n%s", strings.Join(mods, " "), err, out)
	}
}

// storedVersions are the versions of fixModule the admin API lists.
func (g *gated) storedVersions(t *testing.T) []string {
	t.Helper()
	var list struct {
		Modules []struct {
			Path     string
			Versions []struct{ Version string }
		}
	}
	g.api(t, "/admin/v1/modules?path="+fixModule, &list)
	var vs []string
	for _, m := range list.Modules {
		for _, v := range m.Versions {
			if m.Path == fixModule {
				vs = append(vs, v.Version)
			}
		}
	}
	return vs
}

// request sends an admin API request with token and returns the status
// and the body.
func (g *gated) request(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: g.ca.Pool}}}
	req, _ := http.NewRequest(method, g.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// revoke revokes the token named name with modgate token revoke, and
// waits until the server has reloaded the file and refuses it.
func (g *gated) revoke(t *testing.T, name, token string) {
	t.Helper()
	if out, err := exec.Command(testenv.Binary(t), "token", "revoke", "--tokens", g.tokens, "--name", name).CombinedOutput(); err != nil {
		t.Fatalf("modgate token revoke: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(50 * time.Millisecond) {
		code, _ := g.request(t, "GET", "/admin/v1/health", token)
		if code == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still answers %d to the revoked token after %s", code, waitLimit)
		}
	}
}
