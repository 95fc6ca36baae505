package catalog

import (
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
)

var (
	alphaTime = time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	fixture   = []testenv.Module{
		{Path: "example.com/Alpha", Version: "v1.0.0", Time: alphaTime, Files: map[string]string{"a.go": "package alpha\n"}},
		{Path: "example.com/Alpha", Version: "v1.1.0", Files: map[string]string{"a.go": "package alpha // 1.1\n"}},
		{Path: "example.com/beta", Version: "v0.1.0"},
		{Path: "other.org/gamma", Version: "v0.2.0-pre"},
		{Path: "other.org/never", Version: "v1.0.0"}, // in the upstream, never fetched
	}
)

// env is a disk store filled through the real cache and GOPROXY handler
// over a fixture upstream.
type env struct {
	disk  *store.Disk
	proxy *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	testenv.BuildTree(t, dir, fixture)
	up := testenv.NewUpstream(t, dir)
	c, disk := cachetest.New(t, up.URL(), nil)
	proxy := httptest.NewServer(goproxy.Instrument(slog.New(slog.DiscardHandler), &goproxy.Handler{Modules: c}))
	t.Cleanup(proxy.Close)
	e := &env{disk: disk, proxy: proxy}
	for _, m := range fixture[:4] {
		e.fetch(t, m.Path, m.Version, "info", "mod", "zip")
	}
	return e
}

// fetch asks the proxy for a version's files, as the go command does.
func (e *env) fetch(t *testing.T, path, version string, exts ...string) {
	t.Helper()
	ep, _ := module.EscapePath(path)
	ev, _ := module.EscapeVersion(version)
	for _, ext := range exts {
		resp, err := http.Get(e.proxy.URL + "/" + ep + "/@v/" + ev + "." + ext)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s@%s .%s: %s", path, version, ext, resp.Status)
		}
	}
}

// get serves one request with h and decodes the JSON answer into v.
func get(t *testing.T, h http.Handler, target string, v any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q", target, ct)
	}
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
}

func paths(list ModuleList) []string {
	var ps []string
	for _, m := range list.Modules {
		ps = append(ps, m.Path)
	}
	return ps
}

func TestModulesFilter(t *testing.T) {
	e := newEnv(t)
	h := Modules(e.disk)
	for _, tc := range []struct {
		q    string
		want string
	}{
		{"", "example.com/Alpha example.com/beta other.org/gamma"},
		{"ALPHA", "example.com/Alpha"},
		{"example.COM/", "example.com/Alpha example.com/beta"},
		{"gAmMa", "other.org/gamma"},
		{"never", ""}, // in the upstream, not in the store
		{"nothing", ""},
	} {
		var list ModuleList
		get(t, h, "/admin/v1/modules?q="+url.QueryEscape(tc.q), &list)
		if got := strings.Join(paths(list), " "); got != tc.want || list.Next != "" {
			t.Errorf("q=%q: modules %q, next %q; want %q and no next", tc.q, got, list.Next, tc.want)
		}
	}
}

// TestModulesPath: path= answers that one module, exactly (case and
// all), never one whose path merely contains or extends it.
func TestModulesPath(t *testing.T) {
	e := newEnv(t)
	h := Modules(e.disk)
	for path, want := range map[string]string{
		"example.com/Alpha": "example.com/Alpha",
		"example.com/alpha": "", // another module: paths are case-sensitive
		"example.com/beta":  "example.com/beta",
		"example.com":       "",
		"other.org/gamma/x": "",
		"example.com/never": "", // in the upstream, not in the store
	} {
		var list ModuleList
		get(t, h, "/admin/v1/modules?path="+url.QueryEscape(path), &list)
		if got := strings.Join(paths(list), " "); got != want || list.Next != "" {
			t.Errorf("path=%q: modules %q, next %q; want %q", path, got, list.Next, want)
		}
		if want != "" && (len(list.Modules) != 1 || len(list.Modules[0].Versions) == 0) {
			t.Errorf("path=%q: %+v, want the module with its versions", path, list.Modules)
		}
	}
}

func TestModulesLimit(t *testing.T) {
	e := newEnv(t)
	h := Modules(e.disk)
	var page1, page2, page3 ModuleList
	get(t, h, "/admin/v1/modules?limit=2", &page1)
	if got := strings.Join(paths(page1), " "); got != "example.com/Alpha example.com/beta" || page1.Next != "example.com/beta" {
		t.Fatalf("limit=2: modules %q, next %q", got, page1.Next)
	}
	get(t, h, "/admin/v1/modules?limit=2&after="+url.QueryEscape(page1.Next), &page2)
	if got := strings.Join(paths(page2), " "); got != "other.org/gamma" || page2.Next != "" {
		t.Fatalf("page 2: modules %q, next %q", got, page2.Next)
	}
	// A limit reached exactly on the last module: the walk looks one module
	// further only if there is one.
	get(t, h, "/admin/v1/modules?q=example&limit=1&after=example.com/Alpha", &page3)
	if got := strings.Join(paths(page3), " "); got != "example.com/beta" || page3.Next != "" {
		t.Fatalf("q=example after Alpha: modules %q, next %q", got, page3.Next)
	}
}

// TestModulesFields checks each version's fields against the files the
// cache wrote to disk.
func TestModulesFields(t *testing.T) {
	e := newEnv(t)
	var list ModuleList
	get(t, Modules(e.disk), "/admin/v1/modules?q=alpha", &list)
	if len(list.Modules) != 1 || len(list.Modules[0].Versions) != 2 {
		t.Fatalf("got %+v, want example.com/Alpha with 2 versions", list)
	}
	for i, v := range list.Modules[0].Versions {
		want := fixture[i]
		if v.Version != want.Version {
			t.Fatalf("version %d is %s, want %s", i, v.Version, want.Version)
		}
		var size int64
		var files []string
		for _, ext := range []string{"info", "mod", "zip"} {
			key, _ := store.VersionKey(want.Path, want.Version, ext)
			fi, err := os.Stat(filepath.Join(e.disk.Root(), filepath.FromSlash(key)))
			if err != nil {
				continue
			}
			files = append(files, ext)
			size += fi.Size()
			if ext == "zip" {
				if v.Fetched == nil || !v.Fetched.Equal(fi.ModTime()) {
					t.Errorf("%s: fetched %v, want the zip's mtime %v", v.Version, v.Fetched, fi.ModTime())
				}
			}
		}
		if strings.Join(v.Files, ",") != "info,mod,zip" || strings.Join(files, ",") != "info,mod,zip" {
			t.Errorf("%s: files %q, on disk %q", v.Version, v.Files, files)
		}
		if v.Size != size {
			t.Errorf("%s: size %d, want %d", v.Version, v.Size, size)
		}
		wantTime := want.Time
		if wantTime.IsZero() {
			wantTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC) // BuildTree's default
		}
		if v.Time == nil || !v.Time.Equal(wantTime) {
			t.Errorf("%s: time %v, want %v", v.Version, v.Time, wantTime)
		}
	}

	// A version with only its .info stored (what `go list -m` fetches) has
	// no zip, so no fetched time.
	e.fetch(t, "other.org/never", "v1.0.0", "info")
	var never ModuleList
	get(t, Modules(e.disk), "/admin/v1/modules?q=never", &never)
	if len(never.Modules) != 1 || len(never.Modules[0].Versions) != 1 {
		t.Fatalf("got %+v, want other.org/never with 1 version", never)
	}
	if v := never.Modules[0].Versions[0]; strings.Join(v.Files, ",") != "info" || v.Fetched != nil || v.Time == nil {
		t.Errorf("info-only version: %+v", v)
	}
}

func TestBadParameters(t *testing.T) {
	e := newEnv(t)
	mods, stats := Modules(e.disk), Stats(e.disk, metrics.Registry)
	for _, tc := range []struct {
		h      http.Handler
		target string
	}{
		{mods, "/admin/v1/modules?limit=0"},
		{mods, "/admin/v1/modules?limit=1001"},
		{mods, "/admin/v1/modules?limit=ten"},
		{mods, "/admin/v1/modules?limit=-1"},
		{mods, "/admin/v1/modules?query=alpha"},
		{mods, "/admin/v1/modules?after=..%2Fetc"},
		{mods, "/admin/v1/modules?path=..%2Fetc"},
		{mods, "/admin/v1/modules?path=-bad"},
		{mods, "/admin/v1/modules?q=" + strings.Repeat("a", store.MaxKeyLen+1)},
		{stats, "/admin/v1/stats?q=x"},
	} {
		rec := httptest.NewRecorder()
		tc.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.target, nil))
		body := rec.Body.String()
		if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") ||
			strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
			t.Errorf("GET %.60s: %d %q %q; want 400 and one text/plain line", tc.target, rec.Code, rec.Header().Get("Content-Type"), body)
		}
	}
	rec := httptest.NewRecorder()
	mods.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/admin/v1/modules", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}

// diskTotals counts the module files under the disk store's root directly,
// as Stats should count them through the store.
func diskTotals(t *testing.T, root string) StoreTotals {
	t.Helper()
	var tot StoreTotals
	modules, versions := map[string]bool{}, map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root, "mod"), func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, name)
		path, version, ext, err := store.ParseVersionKey(filepath.ToSlash(rel))
		if err != nil {
			t.Fatalf("unexpected file %s: %v", rel, err)
		}
		if ext == "ziphash" {
			return nil // written in the background; not counted
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		modules[path], versions[path+"@"+version] = true, true
		tot.Bytes += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tot.Modules, tot.Versions = len(modules), len(versions)
	return tot
}

func TestStatsTotals(t *testing.T) {
	e := newEnv(t)
	clock := testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	h := newStats(e.disk, metrics.Registry, clock.Now)
	var ans StatsAnswer
	get(t, h, "/admin/v1/stats", &ans)
	want := diskTotals(t, e.disk.Root())
	if want.Modules != 3 || want.Versions != 4 {
		t.Fatalf("fixture stored %+v, want 3 modules and 4 versions", want)
	}
	got := ans.Store
	if got.Modules != want.Modules || got.Versions != want.Versions || got.Bytes != want.Bytes || !got.Counted.Equal(clock.Now()) {
		t.Fatalf("store totals %+v, want %+v counted at %v", got, want, clock.Now())
	}

	// Within the TTL the count is reused, even though the store grew.
	e.fetch(t, "other.org/never", "v1.0.0", "info", "mod", "zip")
	clock.Advance(StoreTotalsTTL - time.Second)
	get(t, h, "/admin/v1/stats", &ans)
	if ans.Store != got {
		t.Fatalf("within the TTL: totals %+v, want the cached %+v", ans.Store, got)
	}
	clock.Advance(time.Second)
	get(t, h, "/admin/v1/stats", &ans)
	want = diskTotals(t, e.disk.Root())
	if ans.Store.Modules != 4 || ans.Store.Versions != 5 || ans.Store.Bytes != want.Bytes || !ans.Store.Counted.Equal(clock.Now()) {
		t.Fatalf("after the TTL: totals %+v, want %+v counted at %v", ans.Store, want, clock.Now())
	}
}

func TestStatsMetrics(t *testing.T) {
	e := newEnv(t) // fetched every file once: misses, upstream fetches
	h := Stats(e.disk, metrics.Registry)
	var before, after StatsAnswer
	get(t, h, "/admin/v1/stats", &before)
	if before.Upstream["ok"] < 1 || before.Cache.ByResult["miss"] < 1 || before.Cache.HitRatio == nil {
		t.Fatalf("after filling the cache: upstream %v, cache %+v", before.Upstream, before.Cache)
	}

	// Three zips again: hits, 2xx answers and bytes, no upstream fetch.
	var zipBytes float64
	for _, m := range fixture[:3] {
		e.fetch(t, m.Path, m.Version, "zip")
		key, _ := store.VersionKey(m.Path, m.Version, "zip")
		fi, err := os.Stat(filepath.Join(e.disk.Root(), filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		zipBytes += float64(fi.Size())
	}
	get(t, h, "/admin/v1/stats", &after)
	if d := after.Requests.ByEndpoint["zip"]["2xx"] - before.Requests.ByEndpoint["zip"]["2xx"]; d != 3 {
		t.Errorf("zip 2xx requests grew by %v, want 3", d)
	}
	if d := after.Requests.Total - before.Requests.Total; d != 3 {
		t.Errorf("requests grew by %v, want 3", d)
	}
	if d := after.Requests.BytesByEndpoint["zip"] - before.Requests.BytesByEndpoint["zip"]; d != zipBytes {
		t.Errorf("zip bytes grew by %v, want %v", d, zipBytes)
	}
	if d := after.Requests.Bytes - before.Requests.Bytes; d != zipBytes {
		t.Errorf("bytes served grew by %v, want %v", d, zipBytes)
	}
	if d := after.Cache.ByResult["hit"] - before.Cache.ByResult["hit"]; d != 3 {
		t.Errorf("cache hits grew by %v, want 3", d)
	}
	if after.Upstream["ok"] != before.Upstream["ok"] {
		t.Errorf("upstream fetches grew from %v to %v on cache hits", before.Upstream["ok"], after.Upstream["ok"])
	}
	if *after.Cache.HitRatio <= *before.Cache.HitRatio || *after.Cache.HitRatio > 1 {
		t.Errorf("hit ratio went from %v to %v after hits", *before.Cache.HitRatio, *after.Cache.HitRatio)
	}
}

func TestCodeClass(t *testing.T) {
	for code, want := range map[string]string{"200": "2xx", "304": "3xx", "404": "4xx", "503": "5xx", "": "other", "99": "other", "600": "other"} {
		if got := codeClass(code); got != want {
			t.Errorf("codeClass(%q) = %q, want %q", code, got, want)
		}
	}
}

// TestCountInterleavedVersions: the files of one version need not be
// next to each other in key order (v1.0.0-pre.mod is a version too); each
// version counts once.
func TestCountInterleavedVersions(t *testing.T) {
	st, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range [][2]string{
		{"v1.0.0-pre", "info"}, {"v1.0.0-pre", "mod"}, {"v1.0.0-pre", "zip"},
		{"v1.0.0-pre.mod", "info"}, {"v1.0.0-pre.mod", "mod"},
		{"v1.0.0", "info"},
	} {
		key, err := store.VersionKey("example.com/p", f[0], f[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(t.Context(), key, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	tot, err := countStore(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	if tot.Modules != 1 || tot.Versions != 3 || tot.Bytes != 6 {
		t.Errorf("totals %+v, want 1 module, 3 versions, 6 bytes", tot)
	}
}
