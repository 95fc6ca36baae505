package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/modgate/modgate/internal/testenv"
)

// waitLimit bounds every wait for the page: a hung page fails the test
// instead of hanging it. It measures nothing.
const waitLimit = 30 * time.Second

// viewport is a screen the UI must be usable on.
type viewport struct {
	name          string
	width, height int64
	mobile        bool
}

var (
	phone  = viewport{"phone", 375, 812, true}
	laptop = viewport{"laptop", 1366, 768, false}
)

// newBrowser starts headless Chromium for the test, with extra flags, and
// returns its context; tabs are opened from it.
func newBrowser(t *testing.T, flags map[string]any) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		testenv.SkipOrFatal(t, "no chromium on PATH (Debian's chromium package; .ci/run installs it)")
	}
	home := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.Env("HOME="+home),
		chromedp.Flag("lang", "en-US"),
	)
	for k, v := range flags {
		opts = append(opts, chromedp.Flag(k, v))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// tab is one browser tab at one viewport, whose console errors and
// uncaught exceptions are collected for check.
type tab struct {
	t    *testing.T
	ctx  context.Context
	vp   viewport
	shot int // screenshots taken, for their file names

	mu       sync.Mutex
	problems []string
	seen     map[string]chan struct{} // markers waited for (flush)
}

func openTab(t *testing.T, browser context.Context, vp viewport) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	var emulate []chromedp.EmulateViewportOption
	if vp.mobile {
		emulate = append(emulate, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.width, vp.height, emulate...)); err != nil {
		t.Fatal(err)
	}
	tb := &tab{t: t, ctx: ctx, vp: vp, seen: map[string]chan struct{}{}}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.note(m)
		}
	}()
	return tb
}

// note files a console message: an error or an exception is a problem,
// except the browser's own log line for an admin API answer of 401, 403
// or 404, which the sign-in flow and the pages of things that are off
// cause on purpose (their handling is checked by the tests).
func (tb *tab) note(m chromedp.ConsoleMessage) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if ch, ok := tb.seen[m.Text]; ok {
		close(ch)
		delete(tb.seen, m.Text)
		return
	}
	switch {
	case m.Type == chromedp.ConsoleException:
		tb.problems = append(tb.problems, fmt.Sprintf("uncaught exception at %s:%d: %s", m.URL, m.Line+1, m.Text))
	case m.Type == chromedp.ConsoleError:
		if m.Source == "network" && strings.Contains(m.URL, "/admin/v1/") {
			return
		}
		tb.problems = append(tb.problems, fmt.Sprintf("console error (%s) at %s: %s", m.Source, m.URL, m.Text))
	}
}

// checkConsole fails the test for every console error and exception so
// far. It first writes a marker to the console and waits until the
// collector has read it, so that nothing logged before is still queued.
func (tb *tab) checkConsole() {
	tb.t.Helper()
	marker := fmt.Sprintf("modgate-test-flush-%d", time.Now().UnixNano())
	ch := make(chan struct{})
	tb.mu.Lock()
	tb.seen[marker] = ch
	tb.mu.Unlock()
	tb.do(chromedp.Evaluate[chromedp.Void](`console.debug(` + jsString(marker) + `)`))
	select {
	case <-ch:
	case <-time.After(waitLimit):
		tb.t.Fatal("the console marker never arrived")
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		tb.t.Errorf("%s: %s", tb.vp.name, p)
	}
	tb.problems = nil
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", tb.vp.name, err)
	}
}

// eval evaluates a JavaScript expression in the page and returns its value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("%s: evaluating %s: %v", tb.vp.name, expr, err)
	}
	return v
}

// waitFor waits until expr is true in the page. (chromedp's Poll compiles
// its predicate with new Function, which the UI's Content-Security-Policy
// forbids; an evaluation from DevTools is not subject to it.)
func (tb *tab) waitFor(what, expr string) {
	tb.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: %s: not after %s (last error: %v); the page shows:\n%s", tb.vp.name, what, waitLimit, err, tb.viewText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitView waits until the UI has drawn route (a location hash).
func (tb *tab) waitView(route string) {
	tb.t.Helper()
	tb.waitFor("view "+route+" drawn", `document.getElementById("view").dataset.route === `+jsString(route)+
		` && document.getElementById("view").dataset.state === "ready"`)
}

// viewText is the text the view shows.
func (tb *tab) viewText() string {
	s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// fitsWidth fails the test when the page is wider than the viewport: wide
// tables must scroll in their box, not the page.
func (tb *tab) fitsWidth(what string) {
	tb.t.Helper()
	if w := eval[[]int](tb, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
		tb.t.Errorf("%s: %s is %d pixels wide in a viewport of %d: the page scrolls sideways", tb.vp.name, what, w[0], w[1])
	}
}

// screenshot saves the whole page as <artifacts>/ui/<viewport>-NN-<what>.png.
func (tb *tab) screenshot(what string) {
	tb.t.Helper()
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot: %v", err)
	}
	tb.shot++
	dir := artifactsDir(tb.t)
	name := filepath.Join(dir, fmt.Sprintf("%s-%02d-%s.png", tb.vp.name, tb.shot, what))
	if err := os.WriteFile(name, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// artifactsDir is $TEST_ARTIFACTS_DIR/ui, or test-output/ui in the
// checkout.
func artifactsDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_ARTIFACTS_DIR")
	if base == "" {
		base = filepath.Join(testenv.RepoRoot(), "test-output")
	}
	dir := filepath.Join(base, "ui")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// jsString quotes s as a JavaScript string literal (JSON's is one).
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
