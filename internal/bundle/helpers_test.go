package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	xsumdb "golang.org/x/mod/sumdb"

	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/sumdbtest"
)

// The fixture: a small build graph served by a fixture upstream, and a
// test checksum database whose records are its modules' real hashes.
//
//	example.com/app (the main module, tidy) → a v1.0.0
//	a v1.0.0 → b v1.0.0, c v1.0.0
//	b v1.0.0 → c v1.1.0
//
// so the build list is a, b, c v1.1.0, and c v1.0.0's go.mod is read too.

const testDBName = "sumdb.bundle.example"

var (
	modA   = module.Version{Path: "example.com/a", Version: "v1.0.0"}
	modB   = module.Version{Path: "example.com/b", Version: "v1.0.0"}
	modC10 = module.Version{Path: "example.com/c", Version: "v1.0.0"}
	modC11 = module.Version{Path: "example.com/c", Version: "v1.1.0"}
	// modUpper has a path that needs case-escaping.
	modUpper = module.Version{Path: "example.com/Upper", Version: "v0.1.0"}
)

const appGoMod = "module example.com/app\n\ngo 1.21\n\nrequire example.com/a v1.0.0\n\nrequire (\n\texample.com/b v1.0.0 // indirect\n\texample.com/c v1.1.0 // indirect\n)\n"

func fixtureModules() []testenv.Module {
	src := func(name string) map[string]string {
		return map[string]string{name + ".go": "package " + name + "\n\n// Name names the fixture.\nconst Name = \"" + name + "\"\n"}
	}
	with := func(files map[string]string, gomod string) map[string]string {
		files["go.mod"] = gomod
		return files
	}
	return []testenv.Module{
		{Path: modA.Path, Version: modA.Version, Files: with(src("a"), "module example.com/a\n\ngo 1.21\n\nrequire (\n\texample.com/b v1.0.0\n\texample.com/c v1.0.0\n)\n")},
		{Path: modB.Path, Version: modB.Version, Files: with(src("b"), "module example.com/b\n\ngo 1.21\n\nrequire example.com/c v1.1.0\n")},
		{Path: modC10.Path, Version: modC10.Version, Files: src("c")},
		{Path: modC11.Path, Version: modC11.Version, Files: src("c")},
		{Path: modUpper.Path, Version: modUpper.Version, Files: src("upper")},
		// Known to the database, never in a bundle: lookups of it grow
		// the log.
		{Path: "example.com/other", Version: "v1.0.0", Files: src("other")},
		{Path: "example.com/other", Version: "v1.1.0", Files: src("other")},
	}
}

type fixture struct {
	up  *testenv.Upstream
	db  *sumdbtest.DB
	sdb sumdb.DB
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOf(t, fixtureModules())
}

func newFixtureOf(t testing.TB, mods []testenv.Module) *fixture {
	t.Helper()
	dir := t.TempDir()
	testenv.BuildTree(t, dir, mods)
	f := &fixture{up: testenv.NewUpstream(t, dir)}
	f.db = sumdbtest.New(t, testDBName, sumdbtest.FixtureGoSum(f.up))
	var err error
	if f.sdb, err = sumdb.ParseDB(f.db.Spec()); err != nil {
		t.Fatal(err)
	}
	return f
}

// options are the export options for the fixture, covering app's go.mod.
func (f *fixture) options() ExportOptions {
	return ExportOptions{Proxy: f.up.URL(), DB: f.sdb, GoMod: []byte(appGoMod), Now: func() time.Time {
		return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	}}
}

func (f *fixture) export(t testing.TB, opt ExportOptions) ([]byte, *ExportSummary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := Export(context.Background(), &buf, opt)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return buf.Bytes(), sum
}

// grow makes the database's log longer by looking up versions no bundle
// holds.
func (f *fixture) grow(t testing.TB, versions ...string) {
	t.Helper()
	for _, v := range versions {
		f.lookup(t, module.Version{Path: "example.com/other", Version: v})
	}
}

// lookup asks the database for m's record, which enters the log then.
func (f *fixture) lookup(t testing.TB, m module.Version) {
	t.Helper()
	ep, _ := module.EscapePath(m.Path)
	resp, err := http.Get(f.db.URL + "/lookup/" + ep + "@" + m.Version)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("lookup of %s: %d", m, resp.StatusCode)
	}
}

// fakeH1 is a well-formed h1: hash derived from s.
func fakeH1(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
}

func newStore(t testing.TB) *store.Disk {
	t.Helper()
	d, err := store.NewDisk(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// importInto imports b into st, and checks that the import left nothing
// in its scratch dir, whatever the outcome.
func importInto(t testing.TB, st store.Store, db sumdb.DB, b []byte) (*ImportSummary, error) {
	t.Helper()
	scratch := t.TempDir()
	sum, err := Import(context.Background(), bytes.NewReader(b), int64(len(b)), ImportOptions{DB: db, Store: st, ScratchDir: scratch})
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("import left %d files in its scratch dir", len(left))
	}
	return sum, err
}

// storedFiles lists every file under a data dir, staging included, as
// slash paths.
func storedFiles(t testing.TB, d *store.Disk) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(d.Root(), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(d.Root(), p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func readStored(t testing.TB, st store.Store, key string) []byte {
	t.Helper()
	rc, _, err := st.Open(context.Background(), key)
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// tarEntry is one entry of a bundle, for tests that take one apart.
type tarEntry struct {
	hdr  tar.Header
	data []byte
}

func readTar(t testing.TB, b []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{*hdr, data})
	}
}

func writeTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rewrite returns b with its entries changed by fn.
func rewrite(t testing.TB, b []byte, fn func([]tarEntry) []tarEntry) []byte {
	t.Helper()
	return writeTar(t, fn(readTar(t, b)))
}

// entryNamed returns the index of the entry whose name satisfies match.
func entryNamed(t testing.TB, entries []tarEntry, match func(string) bool) int {
	t.Helper()
	for i, e := range entries {
		if match(e.hdr.Name) {
			return i
		}
	}
	t.Fatal("no such entry")
	return -1
}

func manifestOf(t testing.TB, entries []tarEntry) *Manifest {
	t.Helper()
	var m Manifest
	if err := json.Unmarshal(entries[0].data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func setManifest(t testing.TB, entries []tarEntry, m *Manifest) {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	entries[0].data = data
}

// goCommand verifies path@version's go.mod (and zip, when zipH1 is set)
// the way a go command with an empty cache does, through modgate's
// /sumdb/ proxy over st, whose verifier cannot reach any database.
func goCommand(t testing.TB, db sumdb.DB, st store.Store, m module.Version, modH1, zipH1 string) error {
	t.Helper()
	offline := db
	offline.URL = testenv.RefusedURL(t)
	v := sumdb.NewVerifier(sumdb.Config{DB: offline, Store: st, Remote: sumdb.NewRemote(offline, nil, &http.Client{Timeout: 5 * time.Second})})
	defer v.Close()
	p := sumdb.NewProxy(v, nil, time.Hour, nil)
	srv := httptest.NewServer(p.Handler(func(w http.ResponseWriter, _ *http.Request, status int, msg string) { http.Error(w, msg, status) }))
	defer srv.Close()
	ops := &httpClientOps{t: t, base: srv.URL + "/sumdb/" + db.Name, key: db.Key}
	c := xsumdb.NewClient(ops)
	check := func(vers, want string) error {
		lines, err := c.Lookup(m.Path, vers)
		if err != nil {
			return err
		}
		if len(lines) != 1 || lines[0] != m.Path+" "+vers+" "+want {
			return errors.New("lookup gave " + strings.Join(lines, "|"))
		}
		return nil
	}
	if err := check(m.Version+"/go.mod", modH1); err != nil {
		return err
	}
	if zipH1 != "" {
		return check(m.Version, zipH1)
	}
	return nil
}

// httpClientOps are a go command's client operations over HTTP, with an
// empty cache.
type httpClientOps struct {
	t         testing.TB
	base, key string
	latest    []byte
}

func (o *httpClientOps) ReadRemote(path string) ([]byte, error) {
	resp, err := http.Get(o.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, errors.New(resp.Status + ": " + string(body))
	}
	return body, err
}

func (o *httpClientOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.key), nil
	}
	return o.latest, nil
}

func (o *httpClientOps) WriteConfig(file string, old, new []byte) error {
	if !bytes.Equal(old, o.latest) {
		return xsumdb.ErrWriteConflict
	}
	o.latest = new
	return nil
}

func (o *httpClientOps) ReadCache(string) ([]byte, error) { return nil, os.ErrNotExist }
func (o *httpClientOps) WriteCache(string, []byte)        {}
func (o *httpClientOps) Log(string)                       {}
func (o *httpClientOps) SecurityError(msg string)         { o.t.Logf("security error: %s", msg) }

func modVersion(path, version string) module.Version {
	return module.Version{Path: path, Version: version}
}
