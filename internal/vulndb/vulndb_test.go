package vulndb_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/vulndb"
	"github.com/modgate/modgate/internal/vulndb/vulndbtest"
)

// TestAffectingFixture reads the hand-written fixture in the published
// layout (testdata/db) from a directory.
func TestAffectingFixture(t *testing.T) {
	db, err := vulndb.Open(context.Background(), "testdata/db", vulndb.Config{Logger: testenv.Logger(t, "vulndb")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// 0001, 0002, 0004 (withdrawn: kept for its modified time), 0005;
	// 0003 of stdlib and toolchain left out.
	if db.Len() != 4 || db.Modified() != "2099-03-01T00:00:00Z" {
		t.Errorf("Len, Modified = %d, %q; want 4, 2099-03-01T00:00:00Z", db.Len(), db.Modified())
	}
	for _, tt := range []struct {
		module, version string
		want            []vulndb.Advisory
	}{
		{"example.com/vuln", "v0.1.0", []vulndb.Advisory{{"GO-2099-0001", "Remote code execution in example.com/vuln", "v1.1.0"}}},
		{"example.com/vuln", "v1.0.9-pre", []vulndb.Advisory{{"GO-2099-0001", "Remote code execution in example.com/vuln", "v1.1.0"}}},
		{"example.com/vuln", "v1.1.0", nil},
		{"example.com/vuln", "v1.1.5", nil},
		{"example.com/vuln", "v1.2.0", []vulndb.Advisory{{"GO-2099-0001", "Remote code execution in example.com/vuln", "v1.2.3"}}},
		{"example.com/vuln", "v1.2.2", []vulndb.Advisory{{"GO-2099-0001", "Remote code execution in example.com/vuln", "v1.2.3"}}},
		{"example.com/vuln", "v1.2.3", nil},
		{"example.com/vuln", "v1.4.9", nil},
		{"example.com/vuln", "v1.5.0", []vulndb.Advisory{{"GO-2099-0002", "Denial of service in example.com/vuln", ""}}},
		{"example.com/vuln", "v2.0.0+incompatible", []vulndb.Advisory{{"GO-2099-0002", "Denial of service in example.com/vuln", ""}}},
		{"example.com/vuln", "v0.0.0-20200101000000-abcdefabcdef", []vulndb.Advisory{{"GO-2099-0001", "Remote code execution in example.com/vuln", "v1.1.0"}}},
		{"example.com/a", "v0.1.0", []vulndb.Advisory{{"GO-2099-0005", "Path traversal in example.com/a and example.com/b/v2", "v0.2.0"}}},
		{"example.com/a", "v0.2.0", nil},
		{"example.com/b/v2", "v2.0.0-alpha", nil},
		{"example.com/b/v2", "v2.0.0-beta.1", []vulndb.Advisory{{"GO-2099-0005", "Path traversal in example.com/a and example.com/b/v2", "v2.0.1"}}},
		{"example.com/b/v2", "v2.0.0", []vulndb.Advisory{{"GO-2099-0005", "Path traversal in example.com/a and example.com/b/v2", "v2.0.1"}}},
		{"example.com/b/v2", "v2.0.1", nil},
		{"example.com/b", "v2.0.0+incompatible", nil}, // another module
		{"example.com/other", "v1.0.0", nil},          // withdrawn
		{"example.com/c", "v1.0.0", nil},              // PyPI
		{"stdlib", "v1.20.0", nil},
		{"toolchain", "v1.20.0", nil},
		{"example.com/vuln", "not-a-version", nil},
	} {
		if got := db.Affecting(tt.module, tt.version); !slices.Equal(got, tt.want) {
			t.Errorf("Affecting(%s, %s) = %+v, want %+v", tt.module, tt.version, got, tt.want)
		}
	}
}

// writeRaw writes a database of one module's raw OSV entries.
func writeRaw(t *testing.T, dir, modified, modulePath string, entries map[string]string) {
	t.Helper()
	var vulns []string
	for id, body := range entries {
		vulns = append(vulns, fmt.Sprintf(`{"id":%q,"modified":%q}`, id, modified))
		write(t, filepath.Join(dir, "ID", id+".json"), body)
	}
	slices.Sort(vulns)
	write(t, filepath.Join(dir, "index", "modules.json"), fmt.Sprintf(`[{"path":%q,"vulns":[%s]}]`, modulePath, strings.Join(vulns, ",")))
	write(t, filepath.Join(dir, "index", "db.json"), fmt.Sprintf(`{"modified":%q}`, modified))
}

func write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func osv(id, module, events string) string {
	return fmt.Sprintf(`{"id":%q,"summary":"s %s","affected":[{"package":{"name":%q,"ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[%s]}]}]}`, id, id, module, events)
}

// TestAffectingRanges covers what the fixture does not: last_affected,
// events out of order, a version in two advisories, no ranges at all.
func TestAffectingRanges(t *testing.T) {
	dir := t.TempDir()
	writeRaw(t, dir, "2099-01-01T00:00:00Z", "example.com/m", map[string]string{
		"GO-1": osv("GO-1", "example.com/m", `{"introduced":"0"},{"last_affected":"1.3.0"}`),
		"GO-2": osv("GO-2", "example.com/m", `{"fixed":"1.2.0"},{"introduced":"1.1.0"}`),
		"GO-3": `{"id":"GO-3","summary":"all","affected":[{"package":{"name":"example.com/m","ecosystem":"Go"}}]}`,
	})
	db, err := vulndb.Open(context.Background(), dir, vulndb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := func(as []vulndb.Advisory) string {
		var s []string
		for _, a := range as {
			s = append(s, a.ID+"/"+a.Fixed)
		}
		return strings.Join(s, " ")
	}
	for v, want := range map[string]string{
		"v1.0.0": "GO-1/ GO-3/",
		"v1.1.0": "GO-1/ GO-2/v1.2.0 GO-3/",
		"v1.3.0": "GO-1/ GO-3/",
		"v1.3.1": "GO-3/",
	} {
		if got := ids(db.Affecting("example.com/m", v)); got != want {
			t.Errorf("Affecting(%s) = %q, want %q", v, got, want)
		}
	}
}

// TestOpenRejects: what is not a database, or not a safe one, is refused
// with a reason.
func TestOpenRejects(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "f")
	write(t, file, "x")
	for _, tt := range []struct {
		name, src, want string
		setup           func(dir string)
	}{
		{name: "plain http", src: "http://vuln.example.com/", want: "https URL"},
		{name: "ftp", src: "ftp://127.0.0.1/", want: "https URL"},
		{name: "credentials redacted", src: "http://user:secret@vuln.example.com/", want: "https URL"},
		{name: "file", src: file, want: "not a directory"},
		{name: "missing", src: filepath.Join(t.TempDir(), "none"), want: "no such file"},
		{name: "no index", want: "index/db.json: missing", setup: func(dir string) {}},
		{name: "no modified", want: "no modified time", setup: func(dir string) {
			write(t, filepath.Join(dir, "index", "db.json"), `{}`)
		}},
		{name: "huge db.json", want: "larger than", setup: func(dir string) {
			write(t, filepath.Join(dir, "index", "db.json"), `{"modified":"`+strings.Repeat("x", 70<<10)+`"}`)
		}},
		{name: "path in id", want: "invalid advisory id", setup: func(dir string) {
			write(t, filepath.Join(dir, "index", "db.json"), `{"modified":"1"}`)
			write(t, filepath.Join(dir, "index", "modules.json"), `[{"path":"example.com/m","vulns":[{"id":"../../etc/passwd"}]}]`)
		}},
		{name: "missing entry", want: "ID/GO-9.json: missing", setup: func(dir string) {
			write(t, filepath.Join(dir, "index", "db.json"), `{"modified":"1"}`)
			write(t, filepath.Join(dir, "index", "modules.json"), `[{"path":"example.com/m","vulns":[{"id":"GO-9"}]}]`)
		}},
		{name: "entry of another id", want: `holds advisory "GO-2"`, setup: func(dir string) {
			writeRaw(t, dir, "1", "example.com/m", map[string]string{"GO-1": osv("GO-2", "example.com/m", `{"introduced":"0"}`)})
		}},
		{name: "bad version", want: `invalid version "v1.x"`, setup: func(dir string) {
			writeRaw(t, dir, "1", "example.com/m", map[string]string{"GO-1": osv("GO-1", "example.com/m", `{"introduced":"1.x"}`)})
		}},
		{name: "bad module", want: `invalid module path`, setup: func(dir string) {
			writeRaw(t, dir, "1", "example.com/m", map[string]string{"GO-1": osv("GO-1", "../m", `{"introduced":"0"}`)})
		}},
		{name: "not json", want: "ID/GO-1.json", setup: func(dir string) {
			writeRaw(t, dir, "1", "example.com/m", map[string]string{"GO-1": `{"id":`})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if tt.setup != nil {
				src = t.TempDir()
				tt.setup(src)
			}
			db, err := vulndb.Open(ctx, src, vulndb.Config{})
			if err == nil {
				db.Close()
				t.Fatalf("Open(%s) succeeded", src)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("Open(%s) = %v, want an error containing %q and no credential", src, err, tt.want)
			}
		})
	}
}

// served is a database served over HTTP on 127.0.0.1, counting requests.
type served struct {
	dir string
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]int
}

func serve(t *testing.T) *served {
	s := &served{dir: t.TempDir(), got: map[string]int{}}
	files := http.FileServer(http.Dir(s.dir))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.got[r.URL.Path]++
		s.mu.Unlock()
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *served) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.got {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

// TestURLRefresh: a database served over HTTP is read again when its
// db.json changes, fetching only new and changed entries; a broken update
// keeps the data read before.
func TestURLRefresh(t *testing.T) {
	ctx := context.Background()
	s := serve(t)
	old := []vulndbtest.Entry{
		{ID: "GO-2099-0001", Module: "example.com/m", Summary: "first", Ranges: [][2]string{{"", "v1.1.0"}}},
		{ID: "GO-2099-0002", Module: "example.com/n", Summary: "second", Ranges: [][2]string{{"", "v2.0.0"}}},
	}
	vulndbtest.Write(t, s.dir, "2099-01-01T00:00:00Z", old)
	logs := &testenv.SyncBuffer{}
	db, err := vulndb.Open(ctx, s.srv.URL, vulndb.Config{Client: s.srv.Client(), Logger: slogTo(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Affecting("example.com/m", "v1.0.0"); len(got) != 1 || got[0].ID != "GO-2099-0001" {
		t.Fatalf("Affecting(m@v1.0.0) = %+v, want GO-2099-0001", got)
	}

	// Unchanged db.json: nothing else is fetched.
	before := s.count("/")
	if err := db.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.count("/") - before; n != 1 {
		t.Errorf("refresh of an unchanged database made %d requests, want 1 (db.json)", n)
	}

	// A new advisory: picked up, the unchanged entries not fetched again.
	entries := append(slices.Clone(old), vulndbtest.Entry{ID: "GO-2099-0003", Module: "example.com/m", Summary: "third", Ranges: [][2]string{{"v1.1.0", "v1.1.5"}}, Modified: "2099-02-01T00:00:00Z"})
	for i := range old {
		entries[i].Modified = "2099-01-01T00:00:00Z"
	}
	vulndbtest.Write(t, s.dir, "2099-02-01T00:00:00Z", entries)
	idBefore := s.count("/ID/")
	if err := db.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.count("/ID/") - idBefore; n != 1 {
		t.Errorf("refresh fetched %d entries, want 1 (the new one)", n)
	}
	if got := db.Affecting("example.com/m", "v1.1.2"); len(got) != 1 || got[0].ID != "GO-2099-0003" || got[0].Fixed != "v1.1.5" {
		t.Errorf("after refresh Affecting(m@v1.1.2) = %+v, want GO-2099-0003 fixed in v1.1.5", got)
	}

	// A broken update (an entry the index names is missing): the refresh
	// fails and the data stays.
	vulndbtest.Write(t, s.dir, "2099-03-01T00:00:00Z", append(entries, vulndbtest.Entry{ID: "GO-2099-0004", Module: "example.com/o", Ranges: [][2]string{{"", ""}}}))
	if err := os.Remove(filepath.Join(s.dir, "ID", "GO-2099-0004.json")); err != nil {
		t.Fatal(err)
	}
	if err := db.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "GO-2099-0004.json: 404") {
		t.Errorf("broken refresh = %v, want the missing entry named", err)
	}
	if db.Modified() != "2099-02-01T00:00:00Z" || len(db.Affecting("example.com/m", "v1.1.2")) != 1 || len(db.Affecting("example.com/o", "v1.0.0")) != 0 {
		t.Errorf("after a broken refresh: modified %s, want the data of 2099-02-01 kept", db.Modified())
	}
}

// TestBackgroundRefresh: the refresh loop picks up a new database by
// itself and logs a failed refresh.
func TestBackgroundRefresh(t *testing.T) {
	ctx := context.Background()
	s := serve(t)
	vulndbtest.Write(t, s.dir, "1", nil)
	logs := &testenv.SyncBuffer{}
	db, err := vulndb.Open(ctx, s.srv.URL+"/", vulndb.Config{Client: s.srv.Client(), Refresh: 1, Logger: slogTo(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	vulndbtest.Write(t, s.dir, "2", []vulndbtest.Entry{{ID: "GO-1", Module: "example.com/m", Ranges: [][2]string{{"", ""}}}})
	for len(db.Affecting("example.com/m", "v1.0.0")) == 0 {
		runtime.Gosched() // the test's own timeout bounds this wait
	}
	os.Remove(filepath.Join(s.dir, "index", "db.json"))
	// Wait for this failure's line: an earlier refresh may have failed
	// too, reading db.json while the test rewrote it. The test's own
	// timeout bounds the wait, and says the failure was never logged.
	for !strings.Contains(logs.String(), "index/db.json: 404") {
		runtime.Gosched()
	}
	if len(db.Affecting("example.com/m", "v1.0.0")) != 1 {
		t.Error("a failed background refresh dropped the data")
	}
}

// TestMemory loads a database of the real one's size and reports the heap
// it holds.
func TestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	vulndbtest.Write(t, dir, "1", vulndbtest.Generate(5000))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	db, err := vulndb.Open(context.Background(), dir, vulndb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("5000 advisories: %d KB of heap", held>>10)
	if held > 64<<20 {
		t.Errorf("5000 advisories hold %d MB, want far less", held>>20)
	}
	runtime.KeepAlive(db)
}

func slogTo(b *testenv.SyncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }
