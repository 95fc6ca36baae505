package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/access"
	"github.com/modgate/modgate/internal/catalog"
	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/history"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// usageServer builds a modgate over a fixture upstream holding
// example.com/<name>@v1.0.0 for each name and, if listen, serves it on
// 127.0.0.1 (the admin API answers loopback clients without tokens) and
// returns its URL.
func usageServer(t *testing.T, listen bool, names ...string) (*Server, *testenv.Upstream, string) {
	t.Helper()
	var mods []testenv.Module
	for _, name := range names {
		mods = append(mods, testenv.Module{Path: "example.com/" + name, Version: "v1.0.0",
			Files: map[string]string{name + ".go": "package " + name + "\n\n// " + strings.Repeat(name, 20000) + "\n"}})
	}
	tree := t.TempDir()
	testenv.BuildTree(t, tree, mods)
	up := testenv.NewUpstream(t, tree)
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Upstream, cfg.SumDB, cfg.UpstreamRate, cfg.Prefetch = up.URL(), "off", 0, false
	s, err := New(t.Context(), cfg, WithLogger(testenv.Logger(t, "modgate")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if !listen {
		return s, up, ""
	}
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	return s, up, "http://" + ln.Addr().String()
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestUsageRecorded: what the go command downloads through modgate is
// recorded (downloads, last access, origin), shown by the admin API's
// module list, and charted by /admin/v1/history.
func TestUsageRecorded(t *testing.T) {
	s, up, base := usageServer(t, true, "used", "unused")
	// Two clients with empty module caches download example.com/used.
	for range 2 {
		dir := t.TempDir()
		env := append(testenv.GoEnv(dir, base), "GOSUMDB=off")
		if out, err := testenv.Go(t, dir, env, "mod", "download", "-json", "example.com/used@v1.0.0"); err != nil {
			t.Fatalf("go mod download: %v\n%s", err, out)
		}
	}
	// The unused module is stored, by a fetch that is no client's.
	if f, err := s.cache.Zip(t.Context(), "example.com/unused", "v1.0.0"); err != nil {
		t.Fatal(err)
	} else {
		f.Content.Close()
	}
	// What Run does every minute.
	if err := s.usage.recorder.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.usage.history.Sample()

	entries, err := access.Read(t.Context(), s.Store(), "example.com/used")
	if err != nil {
		t.Fatal(err)
	}
	e := entries["v1.0.0"]
	if e.Downloads != 2 || e.Origin != up.URL() || time.Since(e.Last) > time.Minute {
		t.Errorf("usage record of example.com/used@v1.0.0: %+v; want 2 downloads from %s, just now", e, up.URL())
	}

	var list catalog.ModuleList
	getJSON(t, base+"/admin/v1/modules?q=example.com/", &list)
	got := map[string]catalog.Version{}
	for _, m := range list.Modules {
		got[m.Path] = m.Versions[0]
	}
	if v := got["example.com/used"]; v.Downloads != 2 || v.LastAccess == nil || v.Origin != up.URL() {
		t.Errorf("/admin/v1/modules, example.com/used: %+v", v)
	}
	if v := got["example.com/unused"]; v.Downloads != 0 || v.LastAccess != nil {
		t.Errorf("/admin/v1/modules, example.com/unused: %+v", v)
	}

	// The two clients' .info, .mod and zip; other tests' servers count
	// in the same metrics: at least those.
	var served int64
	for _, ext := range []string{"info", "mod", "zip"} {
		fi, err := os.Stat(up.FilePath("example.com/used", "v1.0.0", ext))
		if err != nil {
			t.Fatal(err)
		}
		served += 2 * fi.Size()
	}
	// A request is counted once its answer is sent, which may be after
	// the go command has read it and exited: wait for the last ones.
	var h history.Answer
	var sum history.Figures
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		h = history.Answer{}
		getJSON(t, base+"/admin/v1/history?range=hours", &h)
		sum = history.Figures{}
		for _, b := range h.Buckets {
			sum.Downloads += b.Downloads
			sum.Requests += b.Requests
			sum.Bytes += b.Bytes
		}
		if sum.Requests >= 6 && sum.Bytes >= served || time.Now().After(deadline) {
			break
		}
	}
	if sum.Downloads != 2 || sum.Requests < 6 || sum.Bytes < served {
		t.Errorf("history: %d downloads, %d requests, %d bytes; want 2 downloads, at least 6 requests and %d bytes", sum.Downloads, sum.Requests, sum.Bytes, served)
	}
	if len(h.TopModules) != 1 || h.TopModules[0] != (history.ModuleCount{Module: "example.com/used", Downloads: 2}) {
		t.Errorf("top modules %v", h.TopModules)
	}
}

// TestRetentionKeepsServed: a version this replica served moments ago is
// not removed, although its files are the oldest and its use is not yet
// in its usage record.
func TestRetentionKeepsServed(t *testing.T) {
	s, _, _ := usageServer(t, false, "a", "b", "c")
	ctx := t.Context()
	var one int64
	for _, name := range []string{"a", "b", "c"} {
		f, err := s.cache.Zip(ctx, "example.com/"+name, "v1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		f.Content.Close()
		one = f.Size
		// The cache hashes the zip in the background: its .ziphash is
		// to be there before the times are set.
		key, _ := store.VersionKey("example.com/"+name, "v1.0.0", "ziphash")
		for {
			if _, err := s.Store().Stat(ctx, key); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// By their files, a was used three hours ago, b two, c one.
	for name, age := range map[string]time.Duration{"a": 3 * time.Hour, "b": 2 * time.Hour, "c": time.Hour} {
		dir := filepath.Join(s.cfg.DataDir, "mod", "example.com", name, "@v")
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			at := time.Now().Add(-age)
			if err := os.Chtimes(filepath.Join(dir, e.Name()), at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	// a is served now, through the handler's modules.
	f, err := s.Modules().Zip(ctx, "example.com/a", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	f.Content.Close()
	if entries, _ := access.Read(ctx, s.Store(), "example.com/a"); len(entries) != 0 {
		t.Fatalf("a's use is already in its record (%v): the test needs it in memory only", entries)
	}

	s.cfg.MaxStorage = config.ByteSize(one + one/2) // room for one zip and a half
	s.enforceRetention(ctx)
	stored := func(name string) bool {
		key, _ := store.VersionKey("example.com/"+name, "v1.0.0", "zip")
		_, err := s.Store().Stat(ctx, key)
		return err == nil
	}
	if !stored("a") || stored("b") || stored("c") {
		t.Errorf("after retention: a %v, b %v, c %v; want a (served just now) alone", stored("a"), stored("b"), stored("c"))
	}
}

// TestUsageSurvivesRestart: counts are written at Close, and the series
// saved then is read back by the next server over the same data dir.
func TestUsageSurvivesRestart(t *testing.T) {
	s, _, base := usageServer(t, true, "m")
	resp, err := http.Get(base + "/example.com/m/@v/v1.0.0.zip")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.Close()

	entries, err := access.Read(t.Context(), s.Store(), "example.com/m")
	if err != nil || entries["v1.0.0"].Downloads != 1 {
		t.Fatalf("after Close: record %+v, %v; want 1 download", entries, err)
	}
	s2, err := New(t.Context(), s.cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	rec := httptest.NewRecorder()
	s2.usage.history.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/v1/history?range=days", nil))
	var ans history.Answer
	if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
		t.Fatal(err)
	}
	var downloads int64
	for _, b := range ans.Buckets {
		downloads += b.Downloads
	}
	if downloads != 1 || len(ans.TopModules) != 1 || ans.TopModules[0].Module != "example.com/m" {
		t.Errorf("after a restart: %d downloads, top %v; want the download before it", downloads, ans.TopModules)
	}
}
