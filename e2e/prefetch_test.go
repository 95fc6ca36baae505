package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/testenv"
)

// The prefetch fixture: a small real project. example.com/app (not on the
// upstream) imports web, db and cli/v2; web and db both need log and
// text at different versions (diamonds: MVS picks log v1.2.0 and text
// v0.4.0); retry is a go 1.16 module (unpruned), whose requirement clock
// only a walk below it finds.
var prefetchProject = []struct {
	path, version, goVersion string
	requires                 []string // path@version
}{
	{"example.com/web", "v1.3.0", "1.21", []string{"example.com/log@v1.1.0", "example.com/text@v0.3.0"}},
	{"example.com/db", "v0.5.0", "1.21", []string{"example.com/log@v1.2.0", "example.com/retry@v1.0.0"}},
	{"example.com/cli/v2", "v2.1.0", "1.21", []string{"example.com/text@v0.4.0"}},
	{"example.com/log", "v1.1.0", "1.21", []string{"example.com/text@v0.3.0"}},
	{"example.com/log", "v1.2.0", "1.21", []string{"example.com/text@v0.3.0"}},
	{"example.com/retry", "v1.0.0", "1.16", []string{"example.com/clock@v0.1.0"}},
	{"example.com/clock", "v0.1.0", "1.16", nil},
	{"example.com/text", "v0.3.0", "1.21", nil},
	{"example.com/text", "v0.4.0", "1.21", nil},
}

// pkgName is the package name of a fixture module's root package.
func pkgName(modPath string) string {
	p, _, _ := module.SplitPathVersion(modPath)
	return path.Base(p)
}

// projectSource is a module's go.mod and one Go file importing the root
// package of each module it requires, so that building it needs them all.
func projectSource(modPath, goVersion string, requires []string) (gomod, code string) {
	gomod = "module " + modPath + "\n\ngo " + goVersion + "\n"
	var imports, uses []string
	for _, r := range requires {
		p, v, _ := strings.Cut(r, "@")
		gomod += "\nrequire " + p + " " + v + "\n"
		imports = append(imports, fmt.Sprintf("\t%s %q\n", pkgName(p), p))
		uses = append(uses, pkgName(p)+".Name()")
	}
	name := pkgName(modPath)
	uses = append(uses, fmt.Sprintf("%q", name))
	code = "package " + name + "\n\nimport (\n" + strings.Join(imports, "") + ")\n\n" +
		"// Name names the module and what it uses.\nfunc Name() string { return " + strings.Join(uses, " + ") + " }\n"
	if len(imports) == 0 {
		code = "package " + name + "\n\n// Name names the module.\nfunc Name() string { return " + uses[0] + " }\n"
	}
	return gomod, code
}

func prefetchModules() []testenv.Module {
	var mods []testenv.Module
	for _, m := range prefetchProject {
		gomod, code := projectSource(m.path, m.goVersion, m.requires)
		mods = append(mods, testenv.Module{Path: m.path, Version: m.version, Files: map[string]string{"go.mod": gomod, pkgName(m.path) + ".go": code}})
	}
	return mods
}

// writeApp writes the main module into dir: its go.mod (before tidy) and
// a main package using web, db and cli.
func writeApp(t testing.TB, dir string) {
	t.Helper()
	mustWrite(t, filepath.Join(dir, "go.mod"), []byte("module example.com/app\n\ngo 1.22\n\nrequire (\n\texample.com/web v1.3.0\n\texample.com/db v0.5.0\n\texample.com/cli/v2 v2.1.0\n)\n"))
	mustWrite(t, filepath.Join(dir, "main.go"), []byte("package main\n\nimport (\n\t\"fmt\"\n\n\tcli \"example.com/cli/v2\"\n\t\"example.com/db\"\n\t\"example.com/web\"\n)\n\nfunc main() { fmt.Println(web.Name(), db.Name(), cli.Name()) }\n"))
}

// tidyApp makes the app's go.mod and go.sum the way a developer would:
// go mod tidy, here straight against the fixture upstream (so that
// modgate's store stays cold), checksum database off (fixtures are in
// none).
func tidyApp(t testing.TB, upstream string) (gomod, gosum []byte) {
	t.Helper()
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	writeApp(t, app)
	mustGo(t, app, goEnv(dir, upstream), "mod", "tidy")
	gomod, err := os.ReadFile(filepath.Join(app, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	gosum, err = os.ReadFile(filepath.Join(app, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	return gomod, gosum
}

// jobStatus is what GET /admin/v1/jobs/ID answers.
type jobStatus struct {
	ID, State, Error             string
	Total, Done, Failed, Skipped int
	Errors                       []string
	Started, Finished            time.Time
}

// postPrefetch sends a prefetch request; hdr is "Key", "Value" pairs.
func postPrefetch(t testing.TB, base, contentType string, body []byte, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/admin/v1/prefetch", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: buf.Bytes()}
}

// prefetchForm is a multipart body with the gomod and gosum files.
func prefetchForm(t testing.TB, gomod, gosum []byte) (contentType string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"gomod", gomod}, {"gosum", gosum}} {
		w, err := mw.CreateFormFile(f.name, f.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f.data)
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// startedJob returns the id of the job a 202 answer names.
func startedJob(t testing.TB, r response) string {
	t.Helper()
	var a struct{ ID, State, URL string }
	if err := json.Unmarshal(r.Body, &a); r.Status != http.StatusAccepted || err != nil || a.State != "running" || a.URL != "/admin/v1/jobs/"+a.ID {
		t.Fatalf("POST /admin/v1/prefetch = %v, want 202 naming a running job", r)
	}
	return a.ID
}

// waitJob polls the job until it has ended; hdr as for get.
func waitJob(t testing.TB, base, id string, hdr ...string) jobStatus {
	t.Helper()
	var st jobStatus
	waitFor(t, 2*time.Minute, "job "+id+" to end", func() bool {
		r := get(t, base+"/admin/v1/jobs/"+id, hdr...)
		if r.Status != http.StatusOK {
			t.Fatalf("GET job: %v", r)
		}
		st = jobStatus{}
		if err := json.Unmarshal(r.Body, &st); err != nil {
			t.Fatalf("job status %q: %v", r.Body, err)
		}
		return st.State != "running"
	})
	return st
}

// sumVersions counts the module versions a go.sum names.
func sumVersions(gosum []byte) int {
	seen := map[string]bool{}
	for _, line := range strings.Split(string(gosum), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			seen[f[0]+"@"+strings.TrimSuffix(f[1], "/go.mod")] = true
		}
	}
	return len(seen)
}

// TestPrefetchThenOffline: a project's go.mod and go.sum posted to
// modgate make it fetch the whole graph; then, with the upstream down, the
// go command downloads and builds the project in an empty module cache,
// and the upstream sees not one more request.
func TestPrefetchThenOffline(t *testing.T) {
	e := newEnv(t, prefetchModules())
	gomod, gosum := tidyApp(t, e.up.URL())
	if n := e.up.Total(); n == 0 {
		t.Fatal("go mod tidy did not reach the upstream")
	}
	if files := e.storedUnder("mod"); len(files) != 0 {
		t.Fatalf("modgate stored %d files before the prefetch", len(files))
	}

	ct, body := prefetchForm(t, gomod, gosum)
	st := waitJob(t, e.url(""), startedJob(t, postPrefetch(t, e.url(""), ct, body)))
	// 9 module versions: 7 in the build list (their zips), and the go.mod
	// files of log v1.1.0 and text v0.3.0, which MVS passed over.
	if st.State != "done" || st.Total != 9 || st.Done != 9 || st.Failed != 0 || st.Skipped != 0 || len(st.Errors) != 0 {
		t.Errorf("job = %+v, want done, 9 module versions fetched", st)
	}
	if n := sumVersions(gosum); st.Total < n {
		t.Errorf("job total %d < %d versions in go.sum", st.Total, n)
	}
	var zips []string
	for _, f := range e.storedUnder("mod") {
		if strings.HasSuffix(f, ".zip") {
			zips = append(zips, f)
		}
	}
	sort.Strings(zips)
	if len(zips) != 7 {
		t.Errorf("stored zips: %q, want the 7 of the build list", zips)
	}

	e.up.SetDown(true)
	before := e.up.Total()
	work := t.TempDir()
	app := filepath.Join(work, "app")
	writeApp(t, app)
	mustWrite(t, filepath.Join(app, "go.mod"), gomod)
	mustWrite(t, filepath.Join(app, "go.sum"), gosum)
	env := goEnv(work, e.url(""))
	mustGo(t, app, env, "mod", "download")
	mustGo(t, app, env, "build", "-o", filepath.Join(work, "app.bin"), ".")
	if n := e.up.Total() - before; n != 0 {
		t.Errorf("with the upstream down, the go command's download and build made modgate ask it %d times", n)
	}
}

// TestPrefetchListAndAdminToken: with tokens on, the prefetch and its
// job need an admin token; a JSON list prefetches each module's graph,
// and a version that does not exist is the job's error.
func TestPrefetchListAndAdminToken(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.json")
	dev := lastLine(modgateCmd(t, "token", "add", "--tokens", tokens, "--name", "dev", "--allow", "example.com"))
	admin := lastLine(modgateCmd(t, "token", "add", "--tokens", tokens, "--name", "ops", "--allow", "*", "--admin"))
	e := newEnv(t, prefetchModules(), "--tokens", tokens)
	list := []byte(`["example.com/db@v0.5.0", "example.com/nope@v1.0.0"]`)

	if r := postPrefetch(t, e.url(""), "application/json", list); r.Status != http.StatusUnauthorized {
		t.Errorf("no token: %v, want 401", r)
	}
	if r := postPrefetch(t, e.url(""), "application/json", list, "Authorization", "Bearer "+dev); r.Status != http.StatusForbidden {
		t.Errorf("a token without admin: %v, want 403", r)
	}
	if e.up.Total() != 0 {
		t.Fatalf("refused requests reached the upstream %d times", e.up.Total())
	}
	id := startedJob(t, postPrefetch(t, e.url(""), "application/json", list, "Authorization", "Bearer "+admin))
	if r := get(t, e.url("/admin/v1/jobs/"+id)); r.Status != http.StatusUnauthorized {
		t.Errorf("job status without a token: %v, want 401", r)
	}
	st := waitJob(t, e.url(""), id, "Authorization", "Bearer "+admin)
	// db, its graph (log v1.2.0, text v0.3.0, retry, clock), and nope.
	if st.State != "done" || st.Total != 6 || st.Done != 5 || st.Failed != 1 || len(st.Errors) != 1 ||
		!strings.HasPrefix(st.Errors[0], "example.com/nope@v1.0.0 ") {
		t.Errorf("job = %+v, want done with 5 fetched and nope failed", st)
	}
	for _, m := range [][2]string{{"example.com/db", "v0.5.0"}, {"example.com/log", "v1.2.0"}, {"example.com/clock", "v0.1.0"}} {
		if _, err := os.Stat(e.storedFile(m[0], m[1], "zip")); err != nil {
			t.Errorf("%s@%s zip not stored: %v", m[0], m[1], err)
		}
	}
	if strings.Contains(e.proc.Logs(), admin) {
		t.Error("the admin token shows in modgate's log")
	}
}

// benchLatency is added to every answer of the fixture upstream in the
// benchmarks, as a distant upstream has.
const benchLatency = 20 * time.Millisecond

// benchUpstream serves the prefetch fixture with benchLatency, and
// returns the app's tidy go.mod and go.sum.
func benchUpstream(b *testing.B) (up *testenv.Upstream, gomod, gosum []byte) {
	b.Helper()
	tree := filepath.Join(b.TempDir(), "tree")
	testenv.BuildTree(b, tree, prefetchModules())
	up = testenv.NewUpstream(b, tree)
	gomod, gosum = tidyApp(b, up.URL())
	up.SetHook(func(http.ResponseWriter, *http.Request) bool {
		time.Sleep(benchLatency)
		return false
	})
	return up, gomod, gosum
}

// BenchmarkPrefetchCold: a prefetch job of the app's go.mod and go.sum,
// by a modgate with an empty store, until it has ended. Compare with
// BenchmarkGoModDownloadCold.
func BenchmarkPrefetchCold(b *testing.B) {
	up, gomod, gosum := benchUpstream(b)
	ct, body := prefetchForm(b, gomod, gosum)
	requests := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		proc := testenv.Start(b, "--data-dir", filepath.Join(b.TempDir(), "data"), "--upstream", up.URL())
		before := up.Total()
		b.StartTimer()
		st := waitJob(b, proc.URL, startedJob(b, postPrefetch(b, proc.URL, ct, body)))
		b.StopTimer()
		if st.State != "done" || st.Failed != 0 {
			b.Fatalf("job = %+v", st)
		}
		requests += up.Total() - before
		client.CloseIdleConnections()
		proc.Stop(b)
	}
	b.ReportMetric(float64(requests)/float64(b.N), "upstream-requests/op")
}

// BenchmarkGoModDownloadCold: go mod download of the app through a
// modgate with an empty store, in an empty module cache.
func BenchmarkGoModDownloadCold(b *testing.B) {
	up, gomod, gosum := benchUpstream(b)
	requests := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		proc := testenv.Start(b, "--data-dir", filepath.Join(b.TempDir(), "data"), "--upstream", up.URL())
		work := b.TempDir()
		app := filepath.Join(work, "app")
		writeApp(b, app)
		mustWrite(b, filepath.Join(app, "go.mod"), gomod)
		mustWrite(b, filepath.Join(app, "go.sum"), gosum)
		before := up.Total()
		b.StartTimer()
		mustGo(b, app, goEnv(work, proc.URL), "mod", "download")
		b.StopTimer()
		requests += up.Total() - before
		client.CloseIdleConnections()
		proc.Stop(b)
	}
	b.ReportMetric(float64(requests)/float64(b.N), "upstream-requests/op")
}
