package warmup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/dirhash"

	"github.com/modgate/modgate/internal/jobs"
	"github.com/modgate/modgate/internal/policy"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
	"github.com/modgate/modgate/internal/warmup"
)

// The fixture: a main module requiring a and b, which require c at two
// versions (a diamond: MVS picks c v1.2.0, whose go.mod requires d), and
// example.com/denied, which the policy denies.
func fixture() []testenv.Module {
	mod := func(path, version, gomod string) testenv.Module {
		return testenv.Module{Path: path, Version: version, Files: map[string]string{
			"go.mod": gomod, "x.go": "package x\n",
		}}
	}
	return []testenv.Module{
		mod("example.com/a", "v1.0.0", "module example.com/a\n\ngo 1.21\n\nrequire example.com/c v1.1.0\n"),
		mod("example.com/b", "v1.0.0", "module example.com/b\n\ngo 1.21\n\nrequire example.com/c v1.2.0\n"),
		mod("example.com/c", "v1.1.0", "module example.com/c\n\ngo 1.21\n"),
		mod("example.com/c", "v1.2.0", "module example.com/c\n\ngo 1.21\n\nrequire example.com/d v1.0.0\n"),
		mod("example.com/d", "v1.0.0", "module example.com/d\n\ngo 1.21\n"),
		mod("example.com/denied", "v1.0.0", "module example.com/denied\n\ngo 1.21\n"),
		mod("example.com/old", "v0.9.0", "module example.com/old\n\ngo 1.21\n"),
		mod("example.com/slow", "v1.0.0", "module example.com/slow\n\ngo 1.21\n"),
	}
}

const mainGoMod = `module example.com/main

go 1.22

require (
	example.com/a v1.0.0
	example.com/b v1.0.0
	example.com/denied v1.0.0
)
`

type env struct {
	up   *testenv.Upstream
	disk *store.Disk
	reg  *jobs.Registry
	url  string
}

func newEnv(t *testing.T, maxRunning int) *env { return newEnvWrapped(t, maxRunning, nil) }

// newEnvWrapped is newEnv with wrap, if not nil, around the modules the
// jobs fetch through.
func newEnvWrapped(t *testing.T, maxRunning int, wrap func(protocol.Modules) protocol.Modules) *env {
	t.Helper()
	tree := t.TempDir()
	testenv.BuildTree(t, tree, fixture())
	up := testenv.NewUpstream(t, tree)
	c, disk := cachetest.New(t, up.URL(), nil)
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte("deny:\n  - module: example.com/denied\n    reason: not approved\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	engine, err := policy.New(policy.Config{File: file})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	reg := jobs.New(jobs.Config{Store: disk, MaxRunning: maxRunning})
	t.Cleanup(reg.Close) // before the cache's Close: cleanups run last first
	var mods protocol.Modules = engine.Wrap(c)
	if wrap != nil {
		mods = wrap(mods)
	}
	w := warmup.New(warmup.Config{Modules: mods, Jobs: reg, Workers: 4})
	mux := http.NewServeMux()
	mux.Handle("POST /admin/v1/prefetch", w.Handler())
	mux.Handle("GET /admin/v1/jobs/{id}", reg.StatusHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{up: up, disk: disk, reg: reg, url: srv.URL}
}

// form builds a multipart body of the given fields (name → content).
func form(t *testing.T, fields ...string) (contentType string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i < len(fields); i += 2 {
		fw, err := mw.CreateFormFile(fields[i], fields[i])
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(fields[i+1]))
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func (e *env) post(t *testing.T, contentType string, body []byte) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Post(e.url+"/admin/v1/prefetch", contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// start posts a prefetch and returns the job's id.
func (e *env) start(t *testing.T, contentType string, body []byte) string {
	t.Helper()
	status, hdr, answer := e.post(t, contentType, body)
	var a struct{ ID, State, URL string }
	if err := json.Unmarshal([]byte(answer), &a); status != http.StatusAccepted || err != nil || a.State != "running" ||
		a.URL != "/admin/v1/jobs/"+a.ID || hdr.Get("Location") != a.URL {
		t.Fatalf("POST = %d %q, want 202 with the job", status, answer)
	}
	return a.ID
}

// wait polls the job until it ends.
func (e *env) wait(t *testing.T, id string) jobs.Status {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a guard against a hang, not a timing
	for {
		resp, err := http.Get(e.url + "/admin/v1/jobs/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var st jobs.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET job: %d, %v", resp.StatusCode, err)
		}
		if st.State != jobs.Running {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still running: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) stored(t *testing.T, path, version, ext string) bool {
	t.Helper()
	key, err := store.VersionKey(path, version, ext)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.disk.Stat(context.Background(), key)
	return err == nil
}

// TestPrefetchGoMod: the whole graph is fetched and stored (go.mod files
// of every version, zips of the build list), the denied version is not
// fetched at all and is the job's one error; a second run finds it all
// stored and asks the upstream nothing.
func TestPrefetchGoMod(t *testing.T) {
	e := newEnv(t, 0)
	ct, body := form(t, "gomod", mainGoMod)
	st := e.wait(t, e.start(t, ct, body))
	if st.State != jobs.Done || st.Total != 6 || st.Done != 5 || st.Failed != 1 || st.Skipped != 0 {
		t.Errorf("first run: %+v, want done, 6 = 5 done + 1 failed", st)
	}
	t.Logf("errors: %q", st.Errors)
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "example.com/denied@v1.0.0 blocked by policy") {
		t.Errorf("errors = %q, want the denied version's", st.Errors)
	}
	if n := e.up.CountContaining("denied"); n != 0 {
		t.Errorf("the upstream was asked %d times for the denied module", n)
	}
	for _, f := range []struct {
		path, version, ext string
		want               bool
	}{
		{"example.com/a", "v1.0.0", "zip", true},
		{"example.com/b", "v1.0.0", "zip", true},
		{"example.com/c", "v1.2.0", "zip", true},
		{"example.com/d", "v1.0.0", "zip", true},
		{"example.com/c", "v1.1.0", "mod", true},
		{"example.com/c", "v1.1.0", "info", true},
		{"example.com/c", "v1.1.0", "zip", false}, // not selected
		{"example.com/denied", "v1.0.0", "mod", false},
	} {
		if got := e.stored(t, f.path, f.version, f.ext); got != f.want {
			t.Errorf("%s@%s.%s stored: %v, want %v", f.path, f.version, f.ext, got, f.want)
		}
	}

	before := e.up.Total()
	st = e.wait(t, e.start(t, ct, body))
	if st.State != jobs.Done || st.Skipped != 5 || st.Done != 0 || st.Failed != 1 {
		t.Errorf("second run: %+v, want 5 skipped", st)
	}
	if n := e.up.Total() - before; n != 0 {
		t.Errorf("second run asked the upstream %d times", n)
	}
}

// TestPrefetchGoSum: with a go.sum, its entries are fetched too (one the
// go.mod graph does not reach) and its hashes are compared with what
// modgate stores: a wrong one is an error naming the version.
func TestPrefetchGoSum(t *testing.T) {
	e := newEnv(t, 0)
	h1 := func(path, version, ext string) string {
		t.Helper()
		file := e.up.FilePath(path, version, ext)
		var h string
		var err error
		if ext == "zip" {
			h, err = dirhash.HashZip(file, dirhash.Hash1)
		} else {
			h, err = dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return os.Open(file) })
		}
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	gosum := fmt.Sprintf("example.com/a v1.0.0 %s\nexample.com/a v1.0.0/go.mod %s\nexample.com/c v1.1.0/go.mod %s\nexample.com/old v0.9.0/go.mod %s\n",
		h1("example.com/a", "v1.0.0", "zip"), h1("example.com/a", "v1.0.0", "mod"), h1("example.com/c", "v1.1.0", "mod"), h1("example.com/old", "v0.9.0", "mod"))
	wrong := "example.com/b v1.0.0 " + h1("example.com/d", "v1.0.0", "zip") + "\n"

	ct, body := form(t, "gomod", mainGoMod, "gosum", gosum+wrong)
	st := e.wait(t, e.start(t, ct, body))
	if st.State != jobs.Done || st.Total != 7 || st.Done != 5 || st.Failed != 2 {
		t.Errorf("%+v, want 7 = 5 done + denied and b failed", st)
	}
	var found bool
	for _, msg := range st.Errors {
		found = found || strings.HasPrefix(msg, "example.com/b@v1.0.0 .zip: go.sum has "+h1("example.com/d", "v1.0.0", "zip"))
	}
	if !found {
		t.Errorf("errors = %q, want b's zip hash mismatch", st.Errors)
	}
	if !e.stored(t, "example.com/old", "v0.9.0", "mod") || e.stored(t, "example.com/old", "v0.9.0", "zip") {
		t.Error("old@v0.9.0: want its go.mod (listed in go.sum) and no zip")
	}
}

// TestPrefetchList: a JSON list (bare or in an object) prefetches each
// version's zip and its graph; "latest" is resolved; a version that does
// not exist is an item failed, naming it.
func TestPrefetchList(t *testing.T) {
	e := newEnv(t, 0)
	st := e.wait(t, e.start(t, "application/json", []byte(`["example.com/b@v1.0.0", "example.com/d@latest", "example.com/a@v1.9.9"]`)))
	if st.State != jobs.Done || st.Total != 4 || st.Done != 3 || st.Failed != 1 {
		t.Errorf("%+v, want b, c, d done and a@v9.9.9 failed", st)
	}
	t.Logf("errors: %q", st.Errors)
	if len(st.Errors) != 1 || !strings.HasPrefix(st.Errors[0], "example.com/a@v1.9.9 ") {
		t.Errorf("errors = %q", st.Errors)
	}
	for _, m := range [][2]string{{"example.com/b", "v1.0.0"}, {"example.com/c", "v1.2.0"}, {"example.com/d", "v1.0.0"}} {
		if !e.stored(t, m[0], m[1], "zip") {
			t.Errorf("%s@%s.zip not stored", m[0], m[1])
		}
	}

	st = e.wait(t, e.start(t, "application/json; charset=utf-8", []byte(`{"modules": ["example.com/old@v0.9.0", "example.com/old@v0.9.0"]}`)))
	if st.State != jobs.Done || st.Total != 1 || st.Done != 1 || !e.stored(t, "example.com/old", "v0.9.0", "zip") {
		t.Errorf("object form: %+v", st)
	}
	st = e.wait(t, e.start(t, "application/json", []byte(`["example.com/denied@latest"]`)))
	if st.State != jobs.Done || st.Failed != 1 || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "blocked by policy") {
		t.Errorf("denied latest: %+v", st)
	}
}

// TestBadRequest: everything is checked before a job starts, and refused
// with one text/plain line.
func TestBadRequest(t *testing.T) {
	e := newEnv(t, 0)
	big := "module example.com/m\n" + strings.Repeat("// padding\n", warmup.MaxFile/10)
	many, _ := json.Marshal(func() []string {
		l := make([]string, warmup.MaxModules+1)
		for i := range l {
			l[i] = fmt.Sprintf("example.com/m%d@v1.0.0", i)
		}
		return l
	}())
	for _, tc := range []struct {
		name, ct, body string
		form           []string
		status         int
		want           string
	}{
		{name: "no content type", ct: "", body: mainGoMod, status: 415},
		{name: "text", ct: "text/plain", body: mainGoMod, status: 415},
		{name: "no gomod", form: []string{"gosum", ""}, status: 400, want: "no gomod"},
		{name: "unknown field", form: []string{"gomod", mainGoMod, "go.mod", mainGoMod}, status: 400, want: "unknown form field"},
		{name: "gomod twice", form: []string{"gomod", mainGoMod, "gomod", mainGoMod}, status: 400, want: "twice"},
		{name: "malformed gomod", form: []string{"gomod", "module example.com/m\nrequire (\n"}, status: 400, want: "main go.mod"},
		{name: "non-canonical require", form: []string{"gomod", "module example.com/m\nrequire example.com/a v1\n"}, status: 400, want: "not canonical"},
		{name: "traversal in require", form: []string{"gomod", "module example.com/m\nrequire example.com/../../etc v1.0.0\n"}, status: 400, want: "main go.mod"},
		{name: "oversize gomod", form: []string{"gomod", big}, status: 413, want: "larger than"},
		{name: "bad gosum", form: []string{"gomod", mainGoMod, "gosum", "example.com/a v1.0.0 md5:abc\n"}, status: 400, want: "go.sum line 1"},
		{name: "empty list", ct: "application/json", body: `[]`, status: 400, want: "empty"},
		{name: "not a list", ct: "application/json", body: `"example.com/a@v1.0.0"`, status: 400, want: "JSON list"},
		{name: "unknown key", ct: "application/json", body: `{"module": ["example.com/a@v1.0.0"]}`, status: 400, want: "modules"},
		{name: "no version", ct: "application/json", body: `["example.com/a"]`, status: 400, want: "path@version"},
		{name: "query", ct: "application/json", body: `["example.com/a@master"]`, status: 400, want: "master"},
		{name: "non-canonical", ct: "application/json", body: `["example.com/a@v1.2"]`, status: 400, want: "canonical"},
		{name: "wrong major", ct: "application/json", body: `["example.com/a/v2@v1.0.0"]`, status: 400, want: "v2"},
		{name: "traversal", ct: "application/json", body: `["../../etc/passwd@v1.0.0"]`, status: 400, want: "malformed module path"},
		{name: "absolute", ct: "application/json", body: `["/etc/passwd@v1.0.0"]`, status: 400, want: "malformed module path"},
		{name: "too many", ct: "application/json", body: string(many), status: 413, want: "at most"},
		{name: "oversize json", ct: "application/json", body: `["` + strings.Repeat("a", warmup.MaxFile) + `"]`, status: 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := tc.ct, []byte(tc.body)
			if tc.form != nil {
				ct, body = form(t, tc.form...)
			}
			status, hdr, answer := e.post(t, ct, body)
			if status != tc.status || !strings.Contains(answer, tc.want) || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") ||
				strings.Count(answer, "\n") != 1 {
				t.Errorf("= %d %s %q, want %d, one text/plain line containing %q", status, hdr.Get("Content-Type"), answer, tc.status, tc.want)
			}
		})
	}
	if n := e.up.Total(); n != 0 {
		t.Errorf("bad requests made the upstream answer %d requests", n)
	}
}

// TestBusyAndShutdown: while the maximum of jobs run, another is refused
// with 429 and advice; closing the registry interrupts the running job,
// which then reads as failed.
func TestBusyAndShutdown(t *testing.T) {
	e := newEnv(t, 1)
	release := make(chan struct{})
	asked := make(chan struct{}, 1)
	e.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/slow/") {
			return false
		}
		select {
		case asked <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return false
	})
	defer close(release)
	id := e.start(t, "application/json", []byte(`["example.com/slow@v1.0.0"]`))
	<-asked
	status, hdr, answer := e.post(t, "application/json", []byte(`["example.com/a@v1.0.0"]`))
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || !strings.Contains(answer, "wait for one to end") {
		t.Errorf("second job = %d %q (Retry-After %q), want 429 with advice", status, answer, hdr.Get("Retry-After"))
	}
	e.reg.Close()
	st, err := e.reg.Get(context.Background(), id)
	if err != nil || st.State != jobs.Failed || !strings.Contains(st.Error, "interrupted") {
		t.Errorf("after Close: %+v, %v; want failed, interrupted", st, err)
	}
	if status, _, _ := e.post(t, "application/json", []byte(`["example.com/a@v1.0.0"]`)); status != http.StatusServiceUnavailable {
		t.Errorf("after Close: POST = %d, want 503", status)
	}
}

// TestStorageErrorNamesNoServerPath: a version modgate cannot store is an
// item failed naming the version, but the job's status, which admin
// clients read, does not carry the data dir's paths (they go to the log).
func TestStorageErrorNamesNoServerPath(t *testing.T) {
	e := newEnv(t, 0)
	// A file where the store needs example.com/d's directory.
	dir := filepath.Join(e.disk.Root(), "mod", "example.com")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d"), []byte("in the way\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ct, body := form(t, "gomod", mainGoMod)
	st := e.wait(t, e.start(t, ct, body))
	var found bool
	for _, msg := range st.Errors {
		if strings.Contains(msg, e.disk.Root()) {
			t.Errorf("job error %q names a path of the server", msg)
		}
		found = found || strings.HasPrefix(msg, "example.com/d@v1.0.0:") && strings.Contains(msg, "modgate's log")
	}
	if !found || st.Failed != 2 {
		t.Errorf("errors = %q, want example.com/d's, pointing to the log, and the denied version's", st.Errors)
	}
}

// panicky panics when asked for the zip of one module: a bug that module
// meets somewhere below the job.
type panicky struct {
	protocol.Modules
	path string
}

func (p panicky) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
	if path == p.path {
		panic("a bug met by " + path)
	}
	return p.Modules.Zip(ctx, path, version)
}

// TestPanicIsTheVersionsError: a panic while fetching one version fails
// that version, with a line pointing to the log; the job and the process
// go on.
func TestPanicIsTheVersionsError(t *testing.T) {
	e := newEnvWrapped(t, 0, func(m protocol.Modules) protocol.Modules { return panicky{m, "example.com/d"} })
	ct, body := form(t, "gomod", mainGoMod)
	st := e.wait(t, e.start(t, ct, body))
	var found bool
	for _, msg := range st.Errors {
		found = found || strings.HasPrefix(msg, "example.com/d@v1.0.0:") && strings.Contains(msg, "internal error in modgate; see modgate's log")
	}
	if st.State != jobs.Done || !found || st.Done == 0 {
		t.Errorf("state %s, done %d, errors %q; want done, with example.com/d's internal error among them", st.State, st.Done, st.Errors)
	}
}
