package sumdbe2e

import (
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"

	"github.com/modgate/modgate/internal/testenv"
)

const httpTimeout = 2 * time.Minute // a cold fetch through a real upstream

var httpClient = &http.Client{Timeout: httpTimeout}

// start runs modgate and prints its logs if the test fails.
func start(t *testing.T, args ...string) *testenv.Proc {
	t.Helper()
	p := testenv.Start(t, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("modgate %v logs:\n%s", args, p.Logs())
		}
	})
	return p
}

// response is an HTTP answer read whole.
type response struct {
	status int
	ctype  string
	body   string
}

func get(t *testing.T, url string) response {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return response{resp.StatusCode, resp.Header.Get("Content-Type"), string(body)}
}

// fileURL is the GOPROXY URL of a module version's file.
func fileURL(t *testing.T, base, path, version, ext string) string {
	t.Helper()
	ep, err := module.EscapePath(path)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	return base + "/" + ep + "/@v/" + ev + "." + ext
}

// storedFile is where modgate's disk store keeps a module version's file.
func storedFile(t *testing.T, dataDir, path, version, ext string) string {
	t.Helper()
	ep, _ := module.EscapePath(path)
	ev, _ := module.EscapeVersion(version)
	return filepath.Join(dataDir, "mod", filepath.FromSlash(ep), "@v", ev+"."+ext)
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// checkRefusal checks a one-line text/plain refusal with the given status
// that mentions every one of subs.
func checkRefusal(t *testing.T, what string, r response, status int, subs ...string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d; body %q", what, r.status, status, r.body)
	}
	if !strings.HasPrefix(r.ctype, "text/plain") {
		t.Errorf("%s: Content-Type %q, want text/plain (the go command shows only text/plain reasons)", what, r.ctype)
	}
	if body := strings.TrimSuffix(r.body, "\n"); strings.Contains(body, "\n") {
		t.Errorf("%s: body is not one line: %q", what, r.body)
	}
	for _, s := range subs {
		if !strings.Contains(r.body, s) {
			t.Errorf("%s: body %q does not mention %q", what, r.body, s)
		}
	}
}

var metricRE = regexp.MustCompile(`(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+|NaN|[+-]Inf)$`)

// metric returns the value of a counter from modgate's /metrics, for the
// series with exactly the label set labels ("" for none), or 0.
func metric(t *testing.T, p *testenv.Proc, name, labels string) float64 {
	t.Helper()
	r := get(t, p.URL+"/metrics")
	if r.status != 200 {
		t.Fatalf("GET /metrics: %d %s", r.status, r.body)
	}
	for _, m := range metricRE.FindAllStringSubmatch(r.body, -1) {
		if m[1] == name && m[2] == labels {
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				t.Fatalf("metric %s%s: %v", name, labels, err)
			}
			return v
		}
	}
	return 0
}

func verifications(t *testing.T, p *testenv.Proc, result string) float64 {
	return metric(t, p, "modgate_sumdb_verifications_total", `{result="`+result+`"}`)
}

func securityErrors(t *testing.T, p *testenv.Proc) float64 {
	return metric(t, p, "modgate_sumdb_security_errors_total", "")
}

// treeSize returns the record count of a stored signed tree head, without
// checking the signature (the verifier did).
func treeSize(t *testing.T, signed []byte) int64 {
	t.Helper()
	lines := strings.Split(string(signed), "\n")
	if len(lines) < 3 || lines[0] != "go.sum database tree" {
		t.Fatalf("not a signed tree head: %q", signed)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("not a signed tree head: %q", signed)
	}
	return n
}

// genKey returns a signer and verifier key for a database named name.
func genKey(t *testing.T, name string) (skey, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}
