package setup

import (
	"context"
	"html"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSetupPageInChromium renders /setup in headless Chromium (Debian's
// chromium package; .ci/run installs it) and checks the DOM a person sees.
func TestSetupPageInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is required under CI=true (apt-get install chromium)")
		}
		t.Skip("no chromium on PATH")
	}
	srv := httptest.NewServer(Handler(testConfig)) // on 127.0.0.1
	defer srv.Close()

	// A bound on a hung browser, not a measurement.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+t.TempDir(), "--no-first-run", "--dump-dom", srv.URL+"/setup")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	dom := html.UnescapeString(string(out))
	for _, want := range []string{
		`<code id="url">` + srv.URL + `</code>`,
		"go env -w GOPROXY=" + srv.URL + "\n",
		"go env -w 'GONOSUMDB=*.corp.example.com'\n",
		"go env -w 'GOAUTH=modgate goauth --url " + srv.URL + " --token-file ~/.config/modgate/token'",
		"curl -fsSL " + srv.URL + "/setup.sh | sh",
		"machine " + strings.TrimPrefix(srv.URL, "http://") + " login any password",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q:\n%s", want, dom)
		}
	}
	// The page must be readable at a phone's width: the viewport is set.
	if !strings.Contains(dom, `name="viewport"`) {
		t.Error("no viewport meta tag")
	}
}
