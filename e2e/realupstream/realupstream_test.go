// Package realupstream runs the real modgate binary against the real module
// proxy this machine is configured with (the first http(s) entry of
// `go env GOPROXY`), with the real go command as the client.
//
// It is gentle with that proxy: a small fixed set of small modules, each
// version fetched from it once per run (modgate stores it; the checksum
// database record is looked up once), and nothing else but a few lists.
//
// Without a reachable upstream the test is skipped, except when CI=true,
// where it fails: CI must not silently skip it.
package realupstream

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinary()
	os.Exit(code)
}

// modVer is one module version of the fixed set, with what it covers.
type modVer struct {
	Path, Version string
	Covers        string
}

func (m modVer) String() string { return m.Path + "@" + m.Version }

// set is small on purpose: every zip is well under 1 MB.
var set = []modVer{
	{"github.com/BurntSushi/toml", "v1.3.2", "uppercase path"},
	{"github.com/Azure/go-autorest/autorest/date", "v0.3.0", "uppercase path; module in a subdirectory, tag autorest/date/v0.3.0"},
	{"gopkg.in/yaml.v2", "v2.4.0", "gopkg.in"},
	{"github.com/dgrijalva/jwt-go", "v3.2.0+incompatible", "+incompatible"},
	{"github.com/cespare/xxhash/v2", "v2.2.0", "/vN major"},
	{"go.opentelemetry.io/otel/trace", "v1.0.0", "vanity path; module in a subdirectory, tag trace/v1.0.0"},
	{"golang.org/x/xerrors", "v0.0.0-20220907171357-04be3eba64a2", "pseudo-version"},
	{"gopkg.in/check.v1", "v0.0.0-20161208181325-20d25e280405", "gopkg.in pseudo-version, no go.mod in the repository"},
}

// listed are the modules whose lists and @latest are checked.
var listed = []string{
	"github.com/BurntSushi/toml",
	"gopkg.in/yaml.v2",
	"go.opentelemetry.io/otel/trace",
	"golang.org/x/xerrors", // the upstream's list may hold only pseudo-versions
}

// latestChecked are the modules whose @latest modgate must answer: they
// have tagged releases, even if the upstream answers 404 for @latest.
var latestChecked = []string{"github.com/BurntSushi/toml", "gopkg.in/yaml.v2"}

// uncached is never fetched: with the upstream down it must fail clearly.
var uncached = modVer{Path: "github.com/google/uuid", Version: "v1.3.0"}

const httpTimeout = 30 * time.Second

var httpClient = &http.Client{Timeout: httpTimeout}

// clientEnv is a go command environment using only proxy, without checksum
// database, with a fresh module cache.
func clientEnv(t *testing.T, proxy string, extra ...string) []string {
	return append(testenv.GoEnv(t.TempDir(), proxy), append([]string{"GOSUMDB=off", "GOWORK=off"}, extra...)...)
}

// downloaded is one object of `go mod download -json`.
type downloaded struct {
	Path, Version, Error string
	Sum, GoModSum        string
}

// sums is what we learned of a module version: h1 of the zip and of go.mod.
type sums struct{ Zip, GoMod string }

// downloadSet runs `go mod download -json` of the whole set through proxy
// with a fresh module cache and returns the sums of each.
func downloadSet(t *testing.T, proxy string) map[modVer]sums {
	t.Helper()
	args := []string{"mod", "download", "-json"}
	for _, m := range set {
		args = append(args, m.String())
	}
	stdout, stderr, err := testenv.GoRun(t, t.TempDir(), clientEnv(t, proxy), args...)
	got := map[modVer]sums{}
	dec := json.NewDecoder(strings.NewReader(stdout))
	for {
		var d downloaded
		if derr := dec.Decode(&d); derr == io.EOF {
			break
		} else if derr != nil {
			t.Fatalf("cannot decode `go mod download -json` output: %v\nstdout:\n%s\nstderr:\n%s", derr, stdout, stderr)
		}
		if d.Error != "" {
			t.Errorf("go mod download %s@%s: %s", d.Path, d.Version, d.Error)
			continue
		}
		got[modVer{Path: d.Path, Version: d.Version}] = sums{Zip: d.Sum, GoMod: d.GoModSum}
	}
	if err != nil {
		t.Errorf("go mod download failed: %v\nstderr:\n%s", err, stderr)
	}
	out := map[modVer]sums{}
	for _, m := range set {
		s, ok := got[modVer{Path: m.Path, Version: m.Version}]
		switch {
		case !ok:
			t.Errorf("go mod download gave no result for %s", m)
		case !strings.HasPrefix(s.Zip, "h1:") || !strings.HasPrefix(s.GoMod, "h1:"):
			t.Errorf("go mod download %s: sums %q and %q are not h1 hashes", m, s.Zip, s.GoMod)
		default:
			out[m] = s
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// sumdbLookup fetches the checksum database record of m through the
// upstream's /sumdb/ passthrough.
func sumdbLookup(t *testing.T, upstream string, m modVer) sums {
	t.Helper()
	ep, err := module.EscapePath(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := module.EscapeVersion(m.Version)
	if err != nil {
		t.Fatal(err)
	}
	status, body := get(t, upstream+"/sumdb/sum.golang.org/lookup/"+ep+"@"+ev)
	if status != http.StatusOK {
		t.Fatalf("checksum database lookup of %s through the upstream: status %d: %s", m, status, firstLine(body))
	}
	// The record: an ID line, then "path version h1:..." and
	// "path version/go.mod h1:...", a blank line and the signed tree note.
	var s sums
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != m.Path || !strings.HasPrefix(f[2], "h1:") {
			continue
		}
		switch f[1] {
		case m.Version:
			s.Zip = f[2]
		case m.Version + "/go.mod":
			s.GoMod = f[2]
		}
	}
	if s.Zip == "" || s.GoMod == "" {
		t.Fatalf("checksum database record of %s has no h1 lines for it:\n%s", m, body)
	}
	return s
}

// get does a GET with a timeout and returns status and body (at most 1 MB).
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// escaped returns the GOPROXY-protocol path prefix of a module.
func escaped(t *testing.T, path string) string {
	t.Helper()
	ep, err := module.EscapePath(path)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// goListVersions runs `go list -m -json -versions path` through proxy.
func goListVersions(t *testing.T, proxy, path string) []string {
	t.Helper()
	stdout, stderr, err := testenv.GoRun(t, t.TempDir(), clientEnv(t, proxy), "list", "-m", "-json", "-versions", path)
	if err != nil {
		t.Fatalf("go list -m -versions %s: %v\nstderr:\n%s", path, err, stderr)
	}
	var res struct {
		Path     string
		Versions []string
		Error    *struct{ Err string }
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("go list -m -json -versions %s: cannot decode %q: %v", path, stdout, err)
	}
	if res.Error != nil {
		t.Fatalf("go list -m -versions %s: %s", path, res.Error.Err)
	}
	return res.Versions
}

// proxyList fetches path's @v/list from a GOPROXY server directly.
func proxyList(t *testing.T, proxy, path string) []string {
	t.Helper()
	status, body := get(t, proxy+"/"+escaped(t, path)+"/@v/list")
	if status != http.StatusOK {
		t.Fatalf("GET %s @v/list from %s: status %d: %s", path, proxy, status, firstLine(body))
	}
	return strings.Fields(body)
}

func checkNoPseudo(t *testing.T, what string, versions []string) {
	t.Helper()
	for _, v := range versions {
		if module.IsPseudoVersion(v) {
			t.Errorf("%s lists pseudo-version %s: %q", what, v, versions)
			return
		}
	}
}

var metricRE = regexp.MustCompile(`^modgate_upstream_fetches_total\{([^}]*)\} (\S+)$`)
var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// upstreamFetches reads modgate_upstream_fetches_total from /metrics, summed
// by kind over outcomes.
func upstreamFetches(t *testing.T, p *testenv.Proc) map[string]float64 {
	t.Helper()
	status, body := get(t, p.URL+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: status %d: %s", status, firstLine(body))
	}
	byKind := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		m := metricRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("bad metric line %q", line)
		}
		for _, l := range labelRE.FindAllStringSubmatch(m[1], -1) {
			if l[1] == "kind" {
				byKind[l[2]] += v
			}
		}
	}
	return byKind
}

func immutableFetches(f map[string]float64) float64 { return f["info"] + f["mod"] + f["zip"] }

func TestRealUpstream(t *testing.T) {
	if testing.Short() {
		t.Skip("talks to the real upstream proxy; skipped in -short mode")
	}
	start := time.Now()
	upstream := testenv.RealUpstream(t)
	dataDir := t.TempDir()

	// Every modgate started here, so that a failure shows all their logs.
	type started struct {
		name string
		p    *testenv.Proc
	}
	var procs []started
	startModgate := func(name, up string, extra ...string) *testenv.Proc {
		// No speculative prefetch: this test counts upstream fetches per
		// requested module, and the real upstream is asked for each module
		// once per run, never more (prefetch has its own tests).
		args := append([]string{"--upstream", up, "--data-dir", dataDir, "--log-format", "text", "--prefetch=false"}, extra...)
		p := testenv.Start(t, args...)
		procs = append(procs, started{name, p})
		t.Logf("modgate %q serving on %s", name, p.URL)
		return p
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range procs {
				t.Logf("----- logs of modgate %q -----\n%s", s.name, s.p.Logs())
			}
		}
		t.Logf("total runtime %.1fs", time.Since(start).Seconds())
	})

	var (
		p         *testenv.Proc
		want      = map[modVer]sums{} // from the checksum database
		versions  = map[string][]string{}
		modgateLs = map[string][]string{}
	)

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"1_cold_download_matches_sumdb", func(t *testing.T) {
			p = startModgate("cold", upstream)
			got := downloadSet(t, p.URL)
			// Each file of each version came from the upstream exactly once;
			// this also proves the metric that step 4 relies on is there.
			f := upstreamFetches(t, p)
			t.Logf("upstream fetches by kind after the cold download: %v", f)
			for _, kind := range []string{"info", "mod", "zip"} {
				if f[kind] != float64(len(set)) {
					t.Errorf("cold download of %d module versions: %v upstream fetches of kind %s, want %d (all: %v)", len(set), f[kind], kind, len(set), f)
				}
			}
			for _, m := range set {
				w := sumdbLookup(t, upstream, m)
				want[m] = w
				g := got[m]
				if g != w {
					t.Errorf("%s (%s): served content differs from the checksum database:\n go command: %s, go.mod %s\n sumdb:      %s, go.mod %s",
						m, m.Covers, g.Zip, g.GoMod, w.Zip, w.GoMod)
				} else {
					t.Logf("%s: %s, go.mod %s (matches sumdb)", m, g.Zip, g.GoMod)
				}
			}
		}},
		{"2_lists_and_latest", func(t *testing.T) {
			for _, path := range listed {
				vs := goListVersions(t, p.URL, path)
				checkNoPseudo(t, "go list -m -versions "+path, vs)
				raw := proxyList(t, p.URL, path)
				checkNoPseudo(t, "modgate @v/list of "+path, raw)
				for _, m := range set {
					if m.Path == path && !module.IsPseudoVersion(m.Version) && !slices.Contains(raw, m.Version) {
						t.Errorf("modgate @v/list of %s lacks %s: %q", path, m.Version, raw)
					}
				}
				versions[path] = vs
				modgateLs[path] = raw
				t.Logf("%s: go list: %d versions; modgate @v/list: %d versions", path, len(vs), len(raw))
			}
			for _, path := range latestChecked {
				status, body := get(t, p.URL+"/"+escaped(t, path)+"/@latest")
				if status != http.StatusOK {
					t.Errorf("modgate %s/@latest: status %d: %s", path, status, firstLine(body))
					continue
				}
				var info struct{ Version string }
				if err := json.Unmarshal([]byte(body), &info); err != nil {
					t.Errorf("modgate %s/@latest: bad JSON %q: %v", path, body, err)
					continue
				}
				if module.CanonicalVersion(info.Version) != info.Version || module.Check(path, info.Version) != nil || module.IsPseudoVersion(info.Version) {
					t.Errorf("modgate %s/@latest answers %q, not a canonical release", path, info.Version)
				}
				t.Logf("modgate %s/@latest = %s", path, info.Version)
			}
		}},
		{"3_upstream_down", func(t *testing.T) {
			p.Stop(t)
			dead := testenv.RefusedURL(t)
			p = startModgate("upstream-down", dead, "--list-ttl", "1ms")
			got := downloadSet(t, p.URL)
			for _, m := range set {
				if got[m] != want[m] {
					t.Errorf("%s with the upstream down: sums %+v, want %+v", m, got[m], want[m])
				}
			}
			for _, path := range listed {
				vs := goListVersions(t, p.URL, path)
				if !slices.Equal(vs, versions[path]) {
					t.Errorf("go list -m -versions %s with the upstream down:\n got %q\nwant %q (as with the upstream up)", path, vs, versions[path])
				}
				raw := proxyList(t, p.URL, path)
				checkNoPseudo(t, "modgate @v/list of "+path+" with the upstream down", raw)
				if !slices.Equal(raw, modgateLs[path]) {
					t.Errorf("modgate @v/list of %s with the upstream down:\n got %q\nwant %q", path, raw, modgateLs[path])
				}
			}

			// An uncached module: a one-line error naming the upstream.
			ep := escaped(t, uncached.Path)
			for _, suffix := range []string{"@v/" + uncached.Version + ".info", "@v/" + uncached.Version + ".mod", "@v/" + uncached.Version + ".zip", "@v/list", "@latest"} {
				url := p.URL + "/" + ep + "/" + suffix
				status, body := get(t, url)
				if status != http.StatusBadGateway && status != http.StatusGatewayTimeout {
					t.Errorf("GET %s with the upstream down: status %d, want 502 or 504; body: %q", suffix, status, body)
				}
				if strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
					t.Errorf("GET %s with the upstream down: error body is not one line: %q", suffix, body)
				}
				if !strings.Contains(body, dead) {
					t.Errorf("GET %s with the upstream down: error body does not name the upstream %s: %q", suffix, dead, body)
				}
				t.Logf("GET %s -> %d %s", suffix, status, strings.TrimSpace(body))
			}
			// And the go command shows that reason to the developer.
			_, stderr, err := testenv.GoRun(t, t.TempDir(), clientEnv(t, p.URL), "mod", "download", uncached.String())
			if err == nil {
				t.Errorf("go mod download %s succeeded with the upstream down", uncached)
			} else if !strings.Contains(stderr, dead) {
				t.Errorf("go mod download %s with the upstream down: the go command's error does not name the upstream %s:\n%s", uncached, dead, stderr)
			} else {
				t.Logf("go mod download %s with the upstream down:\n%s", uncached, stderr)
			}
		}},
		{"4_restart_serves_from_storage", func(t *testing.T) {
			p.Stop(t)
			p = startModgate("warm", upstream)
			before := upstreamFetches(t, p)
			got := downloadSet(t, p.URL)
			for _, m := range set {
				if got[m] != want[m] {
					t.Errorf("%s after restart: sums %+v, want %+v", m, got[m], want[m])
				}
			}
			after := upstreamFetches(t, p)
			t.Logf("upstream fetches by kind: before %v, after %v", before, after)
			if immutableFetches(after) != immutableFetches(before) {
				t.Errorf("downloading the warm set fetched immutable files from the upstream: info/mod/zip fetches %v -> %v (all: %v -> %v)",
					immutableFetches(before), immutableFetches(after), before, after)
			}
		}},
		{"5_build_a_module_using_the_set", func(t *testing.T) {
			dir := t.TempDir()
			var req strings.Builder
			for _, m := range set {
				switch m.Path {
				case "github.com/BurntSushi/toml", "gopkg.in/yaml.v2", "github.com/cespare/xxhash/v2", "github.com/dgrijalva/jwt-go", "golang.org/x/xerrors":
					fmt.Fprintf(&req, "\t%s %s\n", m.Path, m.Version)
				}
			}
			gomod := "module example.com/realuse\n\ngo 1.21\n\nrequire (\n" + req.String() + ")\n"
			mainGo := `package main

import (
	"fmt"

	"github.com/BurntSushi/toml"
	"github.com/cespare/xxhash/v2"
	jwt "github.com/dgrijalva/jwt-go"
	"golang.org/x/xerrors"
	"gopkg.in/yaml.v2"
)

func main() {
	var v struct{ A int }
	_, err := toml.Decode("A = 42", &v)
	y, _ := yaml.Marshal(map[string]int{"a": v.A})
	tok := jwt.New(jwt.SigningMethodHS256)
	err = xerrors.Errorf("wrapped: %w", err)
	fmt.Printf("%d %s %x %v %v\n", v.A, y, xxhash.Sum64String("modgate"), tok.Valid, err)
}
`
			for name, content := range map[string]string{"go.mod": gomod, "main.go": mainGo} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			gopath := t.TempDir()
			env := append(testenv.GoEnv(gopath, p.URL), "GOSUMDB=off", "GOWORK=off")
			before := upstreamFetches(t, p)
			if _, stderr, err := testenv.GoRun(t, dir, env, "mod", "tidy"); err != nil {
				t.Fatalf("go mod tidy through modgate: %v\n%s", err, stderr)
			}
			after := upstreamFetches(t, p)
			t.Logf("upstream fetches by kind during tidy: before %v, after %v", before, after)

			// go.sum must hold the checksum database's hashes.
			gosum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
			if err != nil {
				t.Fatal(err)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(string(gosum), "\n") {
				lines[strings.TrimSpace(l)] = true
			}
			for _, m := range set {
				if !strings.Contains(gomod, m.Path+" ") && m.Path != "gopkg.in/check.v1" {
					continue
				}
				if l := m.Path + " " + m.Version + "/go.mod " + want[m].GoMod; !lines[l] {
					t.Errorf("go.sum lacks %q:\n%s", l, gosum)
				}
				if m.Path == "gopkg.in/check.v1" {
					continue // needed for the module graph only
				}
				if l := m.Path + " " + m.Version + " " + want[m].Zip; !lines[l] {
					t.Errorf("go.sum lacks %q:\n%s", l, gosum)
				}
			}

			// Offline from now on: the module cache and go.sum are enough.
			offline := append(testenv.GoEnv(gopath, "off"), "GOSUMDB=off", "GOWORK=off", "GOFLAGS=-mod=mod -modcacherw")
			if _, stderr, err := testenv.GoRun(t, dir, offline, "build", "./..."); err != nil {
				t.Fatalf("go build ./... offline: %v\n%s", err, stderr)
			}
			stdout, stderr, err := testenv.GoRun(t, dir, offline, "run", ".")
			if err != nil {
				t.Fatalf("go run . offline: %v\n%s", err, stderr)
			}
			if !strings.HasPrefix(stdout, "42 a: 42") {
				t.Errorf("program output %q, want it to start with %q", stdout, "42 a: 42")
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			return // the later steps build on this one
		}
	}
}
