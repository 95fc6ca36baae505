package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"

	"github.com/modgate/modgate/internal/testenv"
)

// Fixture versions used across the tests.
const (
	// pseudoM is a pseudo-version of example.com/m (not in its list).
	pseudoM = "v1.2.1-0.20240102030405-0123456789ab"
	// pseudoOnly is the only version of example.com/pseudo.
	pseudoOnly = "v0.0.0-20240102030405-abcdefabcdef"
	// incompat is a +incompatible version of example.com/inc (no go.mod).
	incompat = "v2.0.0+incompatible"
)

func goFile(pkg, v string) map[string]string {
	return map[string]string{pkg + ".go": "package " + pkg + "\n\n// Version is the fixture version.\nconst Version = \"" + v + "\"\n"}
}

// fixtureModules is the standard set of fixture modules. The
// +incompatible version is added separately (see addIncompatible) because
// it must have no go.mod.
func fixtureModules() []testenv.Module {
	mods := []testenv.Module{
		{Path: "example.com/m", Version: "v1.0.0", Files: goFile("m", "v1.0.0")},
		{Path: "example.com/m", Version: "v1.1.0", Files: goFile("m", "v1.1.0")},
		{Path: "example.com/m", Version: "v1.2.0-beta.1", Files: goFile("m", "v1.2.0-beta.1")},
		{Path: "example.com/m", Version: pseudoM, Files: goFile("m", pseudoM)},
		{Path: "example.com/m/v2", Version: "v2.0.0", Files: goFile("m", "v2.0.0")},
		{Path: "example.com/m/v2", Version: "v2.1.0", Files: goFile("m", "v2.1.0")},
		{Path: "example.com/m/nested/sub", Version: "v0.1.0", Files: goFile("sub", "v0.1.0")},
		{Path: "example.com/Upper/Mod", Version: "v1.0.0", Files: goFile("mod", "v1.0.0")},
		{Path: "example.com/pre", Version: "v0.1.0-alpha", Files: goFile("pre", "v0.1.0-alpha")},
		{Path: "example.com/pre", Version: "v0.2.0-rc.1", Files: goFile("pre", "v0.2.0-rc.1")},
		{Path: "example.com/pseudo", Version: pseudoOnly, Files: goFile("pseudo", pseudoOnly)},
		{Path: "example.com/inc", Version: "v1.0.0", Files: goFile("inc", "v1.0.0")},
	}
	return mods
}

// addIncompatible adds example.com/inc@v2.0.0+incompatible to the tree at
// dir: a zip without go.mod, and the .mod the go command synthesizes for
// such versions ("module <path>").
func addIncompatible(t testing.TB, dir string) {
	t.Helper()
	const path = "example.com/inc"
	vdir := filepath.Join(dir, "example.com", "inc", "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	ev, err := module.EscapeVersion(incompat)
	if err != nil {
		t.Fatal(err)
	}
	zip := testenv.MakeZip(t, path, incompat, map[string]string{"inc.go": "package inc\n\n// Version is the fixture version.\nconst Version = \"" + incompat + "\"\n"})
	info := fmt.Sprintf(`{"Version":%q,"Time":"2024-01-02T03:04:05Z"}`, incompat)
	mustWrite(t, filepath.Join(vdir, ev+".info"), []byte(info))
	mustWrite(t, filepath.Join(vdir, ev+".mod"), []byte("module "+path+"\n"))
	mustWrite(t, filepath.Join(vdir, ev+".zip"), zip)
	list, _ := os.ReadFile(filepath.Join(vdir, "list"))
	versions := append(strings.Fields(string(list)), incompat)
	semver.Sort(versions)
	mustWrite(t, filepath.Join(vdir, "list"), []byte(strings.Join(versions, "\n")+"\n"))
}

// mustWrite writes a file, and the directories it needs.
func mustWrite(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// env is one fixture upstream and one modgate process in front of it.
type env struct {
	t       *testing.T
	tree    string
	up      *testenv.Upstream
	dataDir string
	args    []string
	proc    *testenv.Proc
}

// newEnv builds the tree of mods, serves it and starts modgate with extra
// args.
func newEnv(t *testing.T, mods []testenv.Module, args ...string) *env {
	t.Helper()
	return newEnvWith(t, func(tree string) { testenv.BuildTree(t, tree, mods) }, args...)
}

// newStdEnv is newEnv with the standard fixture, including the
// +incompatible version.
func newStdEnv(t *testing.T, args ...string) *env {
	t.Helper()
	return newEnvWith(t, func(tree string) {
		testenv.BuildTree(t, tree, fixtureModules())
		addIncompatible(t, tree)
	}, args...)
}

func newEnvWith(t *testing.T, build func(tree string), args ...string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, tree: filepath.Join(dir, "tree"), dataDir: filepath.Join(dir, "data"), args: args}
	build(e.tree)
	e.up = testenv.NewUpstream(t, e.tree)
	e.start()
	t.Cleanup(func() {
		// Connections the client dialed but never used would hold up
		// modgate's graceful shutdown for 5s (net/http counts them as
		// active until then).
		client.CloseIdleConnections()
		if t.Failed() && e.proc != nil {
			t.Logf("modgate logs:\n%s", e.proc.Logs())
		}
	})
	return e
}

func (e *env) start() {
	e.t.Helper()
	args := append([]string{"--data-dir", e.dataDir, "--upstream", e.up.URL(), "--log-format", "text"}, e.args...)
	e.proc = testenv.Start(e.t, args...)
}

// restart stops modgate gracefully (if it still runs) and starts a new
// process on the same data directory.
func (e *env) restart() {
	e.t.Helper()
	client.CloseIdleConnections()
	e.proc.Stop(e.t)
	e.start()
}

func (e *env) url(p string) string { return e.proc.URL + p }

// fixture returns the bytes of a tree file (ext "info", "mod" or "zip").
func (e *env) fixture(path, version, ext string) []byte {
	e.t.Helper()
	b, err := os.ReadFile(e.up.FilePath(path, version, ext))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// storedFile is where modgate's disk store keeps a module version's file.
func (e *env) storedFile(path, version, ext string) string {
	ep, err := module.EscapePath(path)
	if err != nil {
		e.t.Fatal(err)
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		e.t.Fatal(err)
	}
	return filepath.Join(e.dataDir, "mod", filepath.FromSlash(ep), "@v", ev+"."+ext)
}

// waitZipHashed waits for the .ziphash of a zip served unverified, which
// modgate stores in the background after serving the zip.
func (e *env) waitZipHashed(t testing.TB, path, version string) {
	t.Helper()
	name := e.storedFile(path, version, "ziphash")
	waitFor(t, 30*time.Second, path+"@"+version+" .ziphash", func() bool {
		_, err := os.Stat(name)
		return err == nil
	})
}

// storedUnder lists the regular files below dataDir/rel (relative slash
// paths), excluding nothing.
func (e *env) storedUnder(rel string) []string {
	e.t.Helper()
	root := filepath.Join(e.dataDir, filepath.FromSlash(rel))
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			r, _ := filepath.Rel(e.dataDir, p)
			out = append(out, filepath.ToSlash(r))
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// assertNothingStored fails if any file of path@version is stored.
func (e *env) assertNothingStored(path, version string) {
	e.t.Helper()
	for _, ext := range []string{"info", "mod", "zip", "ziphash"} {
		if _, err := os.Stat(e.storedFile(path, version, ext)); err == nil {
			e.t.Errorf("%s@%s .%s was stored, want nothing stored", path, version, ext)
		}
	}
}

// modPath returns the escaped URL path of a module file.
func modPath(path, file string) string {
	ep, err := module.EscapePath(path)
	if err != nil {
		panic(err)
	}
	return "/" + ep + "/" + file
}

// vPath returns the URL path of /<path>/@v/<version>.<ext>.
func vPath(path, version, ext string) string {
	ev, err := module.EscapeVersion(version)
	if err != nil {
		panic(err)
	}
	return modPath(path, "@v/"+ev+"."+ext)
}

// upPath is the decoded URL path the upstream sees (its counters key).
func upPath(path, version, ext string) string {
	p := vPath(path, version, ext)
	u, err := url.PathUnescape(p)
	if err != nil {
		panic(err)
	}
	return u
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) String() string {
	b := r.Body
	if len(b) > 300 {
		b = append(b[:300:300], "..."...)
	}
	return fmt.Sprintf("%d %q", r.Status, b)
}

var client = &http.Client{
	Timeout: 45 * time.Second,
	Transport: &http.Transport{
		MaxIdleConnsPerHost: 128,
		DisableCompression:  true,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// do sends one request; hdr is "Key", "Value" pairs.
func do(t testing.TB, method, u string, hdr ...string) response {
	t.Helper()
	r, err := tryDo(method, u, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

func tryDo(method, u string, hdr ...string) (response, error) {
	return tryDoContext(context.Background(), method, u, hdr...)
}

// tryDoContext is tryDo bounded by ctx.
func tryDoContext(ctx context.Context, method, u string, hdr ...string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

func get(t testing.TB, u string, hdr ...string) response {
	t.Helper()
	return do(t, http.MethodGet, u, hdr...)
}

// mustGet fetches u and fails unless the answer is 200.
func mustGet(t testing.TB, u string) []byte {
	t.Helper()
	r := get(t, u)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: %v, want 200", u, r)
	}
	return r.Body
}

// rawGet sends the request line exactly as given (no client-side path
// cleaning or escaping) and returns the response.
func rawRequest(t testing.TB, base, method, rawPath string) response {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", method, rawPath, u.Host)
	req := &http.Request{Method: method}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, rawPath, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// checkErrorBody checks that r is an error answer with one of the statuses
// and a one-line text/plain body starting with "modgate:".
func checkErrorBody(t testing.TB, what string, r response, statuses ...int) {
	t.Helper()
	if !slices.Contains(statuses, r.Status) {
		t.Errorf("%s: status %d, want one of %v (body %q)", what, r.Status, statuses, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("%s: Content-Type %q, want text/plain", what, ct)
	}
	body := string(r.Body)
	if !strings.HasPrefix(body, "modgate: ") {
		t.Errorf("%s: body %q does not start with \"modgate: \"", what, body)
	}
	if !strings.HasSuffix(body, "\n") || strings.Count(body, "\n") != 1 || strings.Contains(body, "\r") {
		t.Errorf("%s: body %q is not exactly one line", what, body)
	}
}

type infoJSON struct {
	Version string
	Time    time.Time
}

func parseInfo(t testing.TB, data []byte) infoJSON {
	t.Helper()
	var info infoJSON
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatalf("bad .info %q: %v", data, err)
	}
	return info
}

// h1Zip is the go.sum hash of a module zip.
func h1Zip(t testing.TB, zipData []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.zip")
	mustWrite(t, f, zipData)
	h, err := dirhash.HashZip(f, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// h1Mod is the go.sum hash of a go.mod.
func h1Mod(t testing.TB, gomod []byte) string {
	t.Helper()
	h, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gomod)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// goEnv is the environment for the go command as a client of proxy, with
// a fresh module cache under dir and no checksum database.
func goEnv(dir, proxy string) []string {
	return append(testenv.GoEnv(dir, proxy), "GOSUMDB=off")
}

// runGo runs the go command in dir, bounded by a timeout, and returns its
// stdout and stderr separately.
func runGo(t testing.TB, dir string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("go %s timed out: %w", strings.Join(args, " "), ctx.Err())
	}
	return o.String(), e.String(), err
}

func mustGo(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	out, errOut, err := runGo(t, dir, env, args...)
	if err != nil {
		t.Fatalf("go %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// waitFor polls cond every 20ms until it is true or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
