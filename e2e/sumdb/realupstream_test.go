package sumdbe2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/modgate/modgate/internal/testenv"
)

// The tests in this file use the real module proxy this machine is
// configured with (the first http(s) entry of `go env GOPROXY`) and the go
// command's default checksum database, which that proxy also serves under
// /sumdb/ (the database's own host is not assumed reachable). They are
// gentle: a few small module versions, each fetched from the proxy once per
// run. Without a reachable proxy they are skipped, or fail when CI=true.

const defaultDB = "sum.golang.org"

// verifiedSet is downloaded and built through a verifying modgate.
var verifiedSet = []module.Version{
	{Path: "github.com/google/uuid", Version: "v1.6.0"},
	{Path: "golang.org/x/xerrors", Version: "v0.0.0-20220907171357-04be3eba64a2"},
	{Path: "gopkg.in/yaml.v2", Version: "v2.4.0"},
	{Path: "github.com/cespare/xxhash/v2", Version: "v2.2.0"},
}

// afterRestart is downloaded by the restarted modgate.
var afterRestart = module.Version{Path: "github.com/davecgh/go-spew", Version: "v1.1.1"}

// Served tampered by the tampering upstream (and by nothing else).
var (
	tamperedZip   = module.Version{Path: "github.com/pkg/errors", Version: "v0.9.1"}
	tamperedGoMod = module.Version{Path: "github.com/pmezard/go-difflib", Version: "v1.0.0"}
)

// checkGoEnv checks that the go command runs with its default checksum
// database and nothing exempt from it.
func checkGoEnv(t *testing.T, dir string, env []string, proxy string) {
	t.Helper()
	for _, kv := range env {
		for _, k := range []string{"GOSUMDB=", "GONOSUMDB=", "GOPRIVATE=", "GOINSECURE="} {
			if strings.HasPrefix(kv, k) {
				t.Fatalf("the client environment sets %s", kv)
			}
		}
	}
	out, _, err := testenv.GoRun(t, dir, env, "env", "GOSUMDB", "GONOSUMDB", "GOPROXY")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Split(strings.TrimSpace(out), "\n"), []string{defaultDB, "", proxy}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("go env GOSUMDB GONOSUMDB GOPROXY = %q, want %q", got, want)
	}
}

type downloaded struct {
	Path, Version, Error, Sum, GoModSum string
}

// goDownload runs go mod download -json and returns the entries by
// path@version.
func goDownload(t *testing.T, dir string, env []string, mods ...module.Version) map[string]downloaded {
	t.Helper()
	args := []string{"mod", "download", "-json"}
	for _, m := range mods {
		args = append(args, m.String())
	}
	stdout, stderr, err := testenv.GoRun(t, dir, env, args...)
	if err != nil {
		t.Fatalf("go mod download: %v\n%s\n%s", err, stdout, stderr)
	}
	got := map[string]downloaded{}
	dec := json.NewDecoder(strings.NewReader(stdout))
	for {
		var d downloaded
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go mod download -json output: %v\n%s", err, stdout)
		}
		got[d.Path+"@"+d.Version] = d
	}
	for _, m := range mods {
		d, ok := got[m.String()]
		if !ok || d.Error != "" || !strings.HasPrefix(d.Sum, "h1:") || !strings.HasPrefix(d.GoModSum, "h1:") {
			t.Errorf("go mod download %s: %+v", m, d)
		}
	}
	return got
}

const appMain = `package main

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/google/uuid"
	"golang.org/x/xerrors"
	"gopkg.in/yaml.v2"
)

func main() {
	out, err := yaml.Marshal(map[string]uint64{"xxhash": xxhash.Sum64String("modgate")})
	if err != nil {
		panic(err)
	}
	fmt.Print(uuid.NewSHA1(uuid.NameSpaceURL, []byte("modgate")), " ", xerrors.New("built through modgate"), " ", string(out))
}
`

// TestRealUpstreamVerified: the go command, with its default checksum
// database, downloads and builds real modules through a modgate that
// verifies them (and proxies the database to it); restarted on the same
// storage, modgate keeps its tree and verifies a new module.
func TestRealUpstreamVerified(t *testing.T) {
	real := testenv.RealUpstream(t)
	dataDir := t.TempDir()
	args := []string{"--data-dir", dataDir, "--upstream", real, "--sumdb", defaultDB, "--prefetch=false"} // the real upstream: only what is asked
	p := start(t, args...)
	home := t.TempDir()
	env := testenv.GoEnv(home, p.URL)
	checkGoEnv(t, home, env, p.URL)

	sums := goDownload(t, home, env, verifiedSet...)
	if t.Failed() {
		t.FailNow()
	}

	// A module that depends on them: tidy, build, run, verify.
	app := filepath.Join(home, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	gomod := "module example.com/sumdbapp\n\ngo 1.21\n\nrequire (\n"
	for _, m := range verifiedSet {
		gomod += "\t" + m.Path + " " + m.Version + "\n"
	}
	gomod += ")\n"
	for name, data := range map[string]string{"go.mod": gomod, "main.go": appMain} {
		if err := os.WriteFile(filepath.Join(app, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range [][]string{{"mod", "tidy"}, {"build", "-o", "app.bin", "."}, {"mod", "verify"}} {
		stdout, stderr, err := testenv.GoRun(t, app, env, a...)
		if err != nil {
			t.Fatalf("go %s: %v\n%s%s", strings.Join(a, " "), err, stdout, stderr)
		}
		if a[0] == "mod" && a[1] == "verify" && !strings.Contains(stdout+stderr, "all modules verified") {
			t.Errorf("go mod verify: %s%s", stdout, stderr)
		}
	}
	gosum, err := os.ReadFile(filepath.Join(app, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range verifiedSet {
		d := sums[m.String()]
		for _, line := range []string{m.Path + " " + m.Version + " " + d.Sum, m.Path + " " + m.Version + "/go.mod " + d.GoModSum} {
			if !strings.Contains(string(gosum), line+"\n") {
				t.Errorf("go.sum lacks %q:\n%s", line, gosum)
			}
		}
	}
	if out, err := exec.Command(filepath.Join(app, "app.bin")).CombinedOutput(); err != nil || !strings.Contains(string(out), "built through modgate") {
		t.Errorf("the built program: %v\n%s", err, out)
	}

	// modgate verified them and served the database to the go command.
	if n := verifications(t, p, "ok"); n < float64(2*len(verifiedSet)) {
		t.Errorf("verifications{result=ok} = %v, want >= %d (a go.mod and a zip per module)", n, 2*len(verifiedSet))
	}
	for _, res := range []string{"mismatch", "security_error"} {
		if n := verifications(t, p, res); n != 0 {
			t.Errorf("verifications{result=%s} = %v", res, n)
		}
	}
	if r := get(t, p.URL+"/readyz"); r.status != 200 || !strings.Contains(r.body, "verifying against checksum database "+defaultDB) {
		t.Errorf("readyz: %d %q", r.status, r.body)
	}
	// The go command keeps the tiles it checked lookups with; it could get
	// them from modgate only (its sole GOPROXY, which said it proxies the
	// database, and the go command then never goes direct).
	if !exists(filepath.Join(home, "gopath", "pkg", "mod", "cache", "download", "sumdb", defaultDB, "tile")) {
		t.Error("the go command holds no tiles of the checksum database: it did not verify through modgate")
	}
	if n := metric(t, p, "modgate_http_requests_total", `{code="200",endpoint="sumdb"}`); n < 3 {
		t.Errorf("modgate answered %v checksum database requests, want supported, lookups and tiles", n)
	}
	for _, m := range verifiedSet {
		for _, ext := range []string{"mod", "zip"} {
			if !exists(storedFile(t, dataDir, m.Path, m.Version, ext)) {
				t.Errorf("%s .%s was not stored", m, ext)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Restart on the same storage: the tree state is kept and used.
	latestFile := filepath.Join(dataDir, "sumdb", defaultDB, "latest")
	tree1, err := os.ReadFile(latestFile)
	if err != nil {
		t.Fatalf("no stored tree after verifying: %v", err)
	}
	n1 := treeSize(t, tree1)
	p.Stop(t)
	if tree, _ := os.ReadFile(latestFile); !bytes.Equal(tree, tree1) {
		t.Errorf("the stored tree changed at shutdown")
	}
	p2 := start(t, args...)
	env2 := testenv.GoEnv(home, p2.URL)
	goDownload(t, home, env2, afterRestart)
	if n := verifications(t, p2, "ok"); n < 2 {
		t.Errorf("after the restart verifications{result=ok} = %v, want >= 2", n)
	}
	if n := verifications(t, p2, "mismatch") + verifications(t, p2, "security_error") + securityErrors(t, p2); n != 0 {
		t.Errorf("after the restart: %v mismatches or security errors", n)
	}
	tree2, err := os.ReadFile(latestFile)
	if err != nil {
		t.Fatal(err)
	}
	if n2 := treeSize(t, tree2); n2 < n1 {
		t.Errorf("the stored tree went back from %d to %d records", n1, n2)
	}
	if r := get(t, p2.URL+"/readyz"); r.status != 200 {
		t.Errorf("readyz after the restart: %d %q", r.status, r.body)
	}
	for _, ext := range []string{"mod", "zip"} {
		if !exists(storedFile(t, dataDir, afterRestart.Path, afterRestart.Version, ext)) {
			t.Errorf("%s .%s was not stored", afterRestart, ext)
		}
	}
}

// offlineSet is stored by a verifying modgate, then fetched with the
// outside gone.
var offlineSet = []module.Version{
	{Path: "github.com/google/go-cmp", Version: "v0.6.0"},
	{Path: "github.com/kr/text", Version: "v0.2.0"},
}

// TestRealUpstreamOffline is TestOfflineVerificationFromStoredState
// against the real checksum database, whose log has tens of millions of
// records: the tiles a go command needs to check the stored records lie
// on every level of it. modgate verifies and stores modules for a client
// that does not use the database; then, with the upstream gone (and the
// database with it), a go command with its default GOSUMDB and a fresh
// GOPATH downloads and verifies them through modgate alone.
func TestRealUpstreamOffline(t *testing.T) {
	real := testenv.RealUpstream(t)
	dataDir := t.TempDir()
	p1 := start(t, "--data-dir", dataDir, "--upstream", real, "--sumdb", defaultDB, "--prefetch=false")
	warm := t.TempDir()
	sums := goDownload(t, warm, append(testenv.GoEnv(warm, p1.URL), "GOSUMDB=off"), offlineSet...)
	if n := verifications(t, p1, "ok"); n != float64(2*len(offlineSet)) {
		t.Errorf("verifications{result=ok} = %v, want %d", n, 2*len(offlineSet))
	}
	p1.Stop(t)
	if t.Failed() {
		t.FailNow()
	}

	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	p2 := start(t, "--data-dir", dataDir, "--upstream", gone.URL, "--sumdb", defaultDB)
	home := t.TempDir()
	env := testenv.GoEnv(home, p2.URL)
	checkGoEnv(t, home, env, p2.URL)
	got := goDownload(t, home, env, offlineSet...)
	for _, m := range offlineSet {
		if g, w := got[m.String()], sums[m.String()]; g.Sum != w.Sum || g.GoModSum != w.GoModSum {
			t.Errorf("%s offline: %s %s, want %s %s", m, g.Sum, g.GoModSum, w.Sum, w.GoModSum)
		}
		// The go command keeps a lookup only once it has checked it.
		if !exists(filepath.Join(home, "gopath", "pkg", "mod", "cache", "download", "sumdb", defaultDB, "lookup", m.String())) {
			t.Errorf("%s: the go command did not verify it with the checksum database", m)
		}
	}
}

// tamperProxy forwards GETs to the real upstream, fetching each immutable
// file (module files, database lookups and tiles) from it at most once, and
// can serve modified module files in place of the real ones.
type tamperProxy struct {
	real string
	srv  *httptest.Server

	mu      sync.Mutex
	entries map[string]*tamperEntry // by escaped URL path
	reqs    testenv.RequestLog
}

type tamperEntry struct {
	once sync.Once
	resp response
	err  error
}

func newTamperProxy(t *testing.T, real string) *tamperProxy {
	tp := &tamperProxy{real: real, entries: map[string]*tamperEntry{}}
	tp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		tp.reqs.Add(r.URL.Path)
		tp.mu.Unlock()
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		resp, err := tp.fetch(r.URL.EscapedPath())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if resp.ctype != "" {
			w.Header().Set("Content-Type", resp.ctype)
		}
		w.WriteHeader(resp.status)
		io.WriteString(w, resp.body)
	}))
	t.Cleanup(tp.srv.Close)
	return tp
}

func (tp *tamperProxy) URL() string { return tp.srv.URL }

// immutable reports whether the answer at path never changes.
func immutable(path string) bool {
	if strings.HasPrefix(path, "/sumdb/") {
		return strings.Contains(path, "/lookup/") || strings.Contains(path, "/tile/") || strings.HasSuffix(path, "/supported")
	}
	return strings.Contains(path, "/@v/") && (strings.HasSuffix(path, ".info") || strings.HasSuffix(path, ".mod") || strings.HasSuffix(path, ".zip"))
}

func (tp *tamperProxy) fetch(path string) (response, error) {
	if !immutable(path) {
		return tp.fetchReal(path)
	}
	tp.mu.Lock()
	e, ok := tp.entries[path]
	if !ok {
		e = &tamperEntry{}
		tp.entries[path] = e
	}
	tp.mu.Unlock()
	e.once.Do(func() { e.resp, e.err = tp.fetchReal(path) })
	return e.resp, e.err
}

func (tp *tamperProxy) fetchReal(path string) (response, error) {
	resp, err := httpClient.Get(tp.real + path)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return response{}, err
	}
	return response{resp.StatusCode, resp.Header.Get("Content-Type"), string(body)}, nil
}

// replace makes path answer modify(the real content) from now on, and
// returns the real content.
func (tp *tamperProxy) replace(t *testing.T, path string, modify func(real []byte) []byte) []byte {
	t.Helper()
	r, err := tp.fetch(path)
	if err != nil || r.status != 200 {
		t.Fatalf("fetching %s from the real upstream: %v %d %q", path, err, r.status, r.body)
	}
	real := []byte(r.body)
	r.body = string(modify(bytes.Clone(real)))
	tp.mu.Lock()
	tp.entries[path].resp = r
	tp.mu.Unlock()
	return real
}

// count returns how many requests had a path containing substr.
func (tp *tamperProxy) count(substr string) int {
	return tp.reqs.Count(substr)
}

const tamperMark = "\n// tampered with by modgate's e2e test\n"

// tamperZip serves m's zip with one .go file changed; it is still a valid
// module zip. It returns the hashes of the real and the served zip.
func (tp *tamperProxy) tamperZip(t *testing.T, m module.Version) (realH1, servedH1 string) {
	t.Helper()
	var served []byte
	real := tp.replace(t, fileURL(t, "", m.Path, m.Version, "zip"), func(real []byte) []byte {
		zr, err := zip.NewReader(bytes.NewReader(real), int64(len(real)))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		changed := ""
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if changed == "" && strings.HasSuffix(f.Name, ".go") && !strings.HasSuffix(f.Name, "_test.go") {
				data = append(data, tamperMark...)
				changed = f.Name
			}
			w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: f.Modified})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if changed == "" {
			t.Fatalf("%s: no .go file to tamper with", m)
		}
		t.Logf("%s: serving a zip with %s changed", m, changed)
		served = buf.Bytes()
		return served
	})
	dir := t.TempDir()
	hash := func(name string, data []byte, check bool) string {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if check {
			cf, err := modzip.CheckZip(m, file)
			if err == nil {
				err = cf.Err()
			}
			if err != nil {
				t.Fatalf("the tampered zip is not a valid module zip: %v", err)
			}
		}
		h, err := dirhash.HashZip(file, dirhash.Hash1)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	realH1, servedH1 = hash("real.zip", real, false), hash("served.zip", served, true)
	if realH1 == servedH1 {
		t.Fatal("tampering did not change the zip's hash")
	}
	return realH1, servedH1
}

// tamperGoMod serves m's go.mod with an extra comment line. It returns the
// hashes of the real and the served go.mod.
func (tp *tamperProxy) tamperGoMod(t *testing.T, m module.Version) (realH1, servedH1 string) {
	t.Helper()
	var served []byte
	real := tp.replace(t, fileURL(t, "", m.Path, m.Version, "mod"), func(real []byte) []byte {
		served = append(real, tamperMark...)
		return served
	})
	h := func(data []byte) string {
		h, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	return h(real), h(served)
}

// TestTamperingUpstream: an upstream that serves a modified zip or go.mod
// of a real module (its checksum database answers untouched) is caught:
// 403 with the reason, nothing stored, the go command (with its default
// checksum database) fails showing it. Lookups of --nosumdb paths never
// reach the upstream.
func TestTamperingUpstream(t *testing.T) {
	real := testenv.RealUpstream(t)
	runTampering(t, tamperSetup{
		upstream: real,
		sumdb:    defaultDB,
		dbName:   defaultDB,
		goEnv: func(t *testing.T, home, proxy string) []string {
			env := testenv.GoEnv(home, proxy)
			checkGoEnv(t, home, env, proxy)
			return env
		},
		zipMod: tamperedZip,
		modMod: tamperedGoMod,
	})
}

// tamperSetup describes where a tampering test gets its modules from.
type tamperSetup struct {
	upstream string // the honest upstream the tampering proxy forwards to
	sumdb    string // modgate's --sumdb
	dbName   string
	goEnv    func(t *testing.T, home, proxy string) []string
	// zipMod's zip and modMod's go.mod are tampered with.
	zipMod, modMod module.Version
}

func runTampering(t *testing.T, s tamperSetup) {
	tp := newTamperProxy(t, s.upstream)
	zipReal, zipServed := tp.tamperZip(t, s.zipMod)
	modReal, modServed := tp.tamperGoMod(t, s.modMod)
	dataDir := t.TempDir()
	p := start(t, "--data-dir", dataDir, "--upstream", tp.URL(), "--sumdb", s.sumdb, "--nosumdb", "corp.example.com")
	home := t.TempDir()
	env := s.goEnv(t, home, p.URL)

	cases := []struct {
		name             string
		m                module.Version
		ext              string
		realH1, servedH1 string
		notStored        []string // data dir files that must be absent
	}{
		{"zip", s.zipMod, "zip", zipReal, zipServed, []string{"zip", "ziphash"}},
		{"go.mod", s.modMod, "mod", modReal, modServed, []string{"mod", "zip", "ziphash"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := verifications(t, p, "mismatch")
			r := get(t, fileURL(t, p.URL, tc.m.Path, tc.m.Version, tc.ext))
			checkRefusal(t, tc.m.String()+" ."+tc.ext, r, 403, "checksum mismatch", tc.m.Path, tc.servedH1, tc.realH1, s.dbName)
			if n := verifications(t, p, "mismatch") - before; n != 1 {
				t.Errorf("verifications{result=mismatch} went up by %v, want 1", n)
			}
			for _, ext := range tc.notStored {
				if f := storedFile(t, dataDir, tc.m.Path, tc.m.Version, ext); exists(f) {
					t.Errorf("%s is in the data dir although it failed verification", f)
				}
			}

			// The go command, which trusts modgate alone, fails and says why.
			stdout, stderr, err := testenv.GoRun(t, home, env, "mod", "download", tc.m.String())
			out := stdout + stderr
			if err == nil {
				t.Fatalf("go mod download of a tampered %s succeeded:\n%s", tc.name, out)
			}
			t.Logf("the go command refused it:\n%s", out)
			for _, sub := range []string{"403", "checksum mismatch", tc.realH1, tc.servedH1} {
				if !strings.Contains(out, sub) {
					t.Errorf("the go command's error does not show %q:\n%s", sub, out)
				}
			}
			if n := verifications(t, p, "mismatch") - before; n != 2 {
				t.Errorf("verifications{result=mismatch} went up by %v after the go command, want 2", n)
			}
			ep, _ := module.EscapePath(tc.m.Path)
			if f := filepath.Join(home, "gopath", "pkg", "mod", "cache", "download", filepath.FromSlash(ep), "@v", tc.m.Version+"."+tc.ext); exists(f) {
				t.Errorf("the go command stored the tampered file at %s", f)
			}
		})
	}

	t.Run("private lookups", func(t *testing.T) {
		for _, path := range []string{"corp.example.com/secret@v1.0.0", "corp.example.com/x/y@v0.1.0"} {
			r := get(t, p.URL+"/sumdb/"+s.dbName+"/lookup/"+path)
			checkRefusal(t, "lookup "+path, r, 403, "GONOSUMDB")
		}
		if n := tp.count("corp.example.com"); n != 0 {
			t.Errorf("%d requests about corp.example.com reached the upstream", n)
		}
	})

	// Only the two modules' files were fetched (each once: see tamperProxy).
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for path := range tp.entries {
		if strings.Contains(path, "/@v/") && !strings.HasPrefix(path, "/"+s.zipMod.Path+"/") && !strings.HasPrefix(path, "/"+s.modMod.Path+"/") {
			t.Errorf("an unexpected module file was fetched: %s", path)
		}
	}
}
