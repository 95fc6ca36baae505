package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
	"github.com/modgate/modgate/internal/testenv"
)

// TestRoundTrip: a bundle of app's build graph, imported into an empty
// data dir, holds exactly the files modgate's cache stores when it fetches
// and verifies the same versions, and the checksum database state that
// lets a go command verify them with the database out of reach.
func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	opt := f.options()
	opt.ScratchDir = t.TempDir()
	b, sum := f.export(t, opt)
	if left, _ := os.ReadDir(opt.ScratchDir); len(left) != 0 {
		t.Errorf("export left %d files in its scratch dir", len(left))
	}
	if sum.Modules != 4 || sum.Zips != 3 || sum.Tree != 4 || sum.Bytes != int64(len(b)) || sum.Proofs == 0 {
		t.Errorf("export summary %+v (bundle %d bytes), want 4 modules, 3 zips, a tree of 4 records", sum, len(b))
	}
	entries := readTar(t, b)
	man := manifestOf(t, entries)
	var got []string
	for _, m := range man.Modules {
		got = append(got, fmt.Sprintf("%s zip=%v", m, m.Zip != ""))
	}
	want := []string{"example.com/a@v1.0.0 zip=true", "example.com/b@v1.0.0 zip=true", "example.com/c@v1.0.0 zip=false", "example.com/c@v1.1.0 zip=true"}
	if !slices.Equal(got, want) {
		t.Errorf("bundled modules %q, want %q", got, want)
	}
	if entries[0].hdr.Name != ManifestName {
		t.Errorf("first entry %q", entries[0].hdr.Name)
	}
	dbRequests := f.db.Total()

	st := newStore(t)
	isum, err := importInto(t, st, f.sdb, b)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if isum.Modules != 4 || isum.Zips != 3 || isum.Stored != 4*2+3 || isum.Present != 0 || isum.Tree != 4 {
		t.Errorf("import summary %+v", isum)
	}
	if n := f.db.Total(); n != dbRequests {
		t.Errorf("import asked the checksum database %d times: %v", n-dbRequests, f.db.Requests()[dbRequests:])
	}

	// The cache, fetching and verifying the same files, stores the same.
	ref := newStore(t)
	cacheFetch(t, f, ref, man.Modules)
	refKeys, gotKeys := listKeys(t, ref, "mod/"), listKeys(t, st, "mod/")
	if !slices.Equal(refKeys, gotKeys) {
		t.Errorf("imported keys\n%q\nthe cache stores\n%q", gotKeys, refKeys)
	}
	for _, k := range refKeys {
		if !bytes.Equal(readStored(t, ref, k), readStored(t, st, k)) {
			t.Errorf("%s differs from what the cache stores", k)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Offline, the data dir answers a go command's verification.
	for _, m := range man.Modules {
		if err := goCommand(t, f.sdb, st, module.Version{Path: m.Path, Version: m.Version}, m.Mod, m.Zip); err != nil {
			t.Errorf("a go command verifying %s offline: %v", m, err)
		}
	}

	// Importing again changes nothing and stores nothing.
	before := storedFiles(t, st)
	again, err := importInto(t, st, f.sdb, b)
	if err != nil {
		t.Fatalf("second import: %v", err)
	}
	if again.Stored != 0 || again.Present != 11 {
		t.Errorf("second import summary %+v, want everything present", again)
	}
	if after := storedFiles(t, st); !slices.Equal(before, after) {
		t.Errorf("the second import changed the data dir:\n%q\n%q", before, after)
	}
}

// cacheFetch has modgate's cache, verifying against f's database, fetch
// the files of mods into st.
func cacheFetch(t *testing.T, f *fixture, st *store.Disk, mods []Module) {
	t.Helper()
	v := sumdb.NewVerifier(sumdb.Config{DB: f.sdb, Store: st, Remote: sumdb.NewRemote(f.sdb, nil, source.NewHTTPClient())})
	defer v.Close()
	chain, err := source.ParseList(f.up.URL(), func(base string) source.Source { return source.NewUpstream(base, source.NewHTTPClient()) })
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(cache.Config{Store: st, Source: chain, ScratchDir: st.StagingDir(), ListTTL: time.Hour, FetchTimeout: time.Minute,
		Logger: slog.New(slog.DiscardHandler), Verifier: v})
	defer c.Close()
	ctx := context.Background()
	for _, m := range mods {
		info, err := c.Info(ctx, m.Path, m.Version)
		if err == nil {
			info.Content.Close()
			var mod interface{ Close() error }
			if f, e := c.GoMod(ctx, m.Path, m.Version); e == nil {
				mod = f.Content
			} else {
				err = e
			}
			if mod != nil {
				mod.Close()
			}
		}
		if err == nil && m.Zip != "" {
			var z interface{ Close() error }
			if f, e := c.Zip(ctx, m.Path, m.Version); e == nil {
				z = f.Content
			} else {
				err = e
			}
			if z != nil {
				z.Close()
			}
		}
		if err != nil {
			t.Fatalf("cache fetching %s: %v", m, err)
		}
	}
}

func listKeys(t testing.TB, st store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := st.List(context.Background(), prefix, func(k string) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestExportSelections: --modules and --go-sum select what a bundle
// covers; a go.sum hash that differs from the proxy's file fails the
// export naming the module; a version the database does not know, or a
// proxy that serves a tampered file, fail it too.
func TestExportSelections(t *testing.T) {
	f := newFixture(t)
	modules := func(b []byte) []string {
		var out []string
		for _, m := range manifestOf(t, readTar(t, b)).Modules {
			out = append(out, m.String())
		}
		return out
	}

	t.Run("modules", func(t *testing.T) {
		opt := f.options()
		opt.GoMod, opt.Modules = nil, []module.Version{modB, modUpper}
		b, _ := f.export(t, opt)
		if got, want := modules(b), []string{"example.com/Upper@v0.1.0", "example.com/b@v1.0.0", "example.com/c@v1.1.0"}; !slices.Equal(got, want) {
			t.Errorf("modules %q, want %q", got, want)
		}
		st := newStore(t)
		if _, err := importInto(t, st, f.sdb, b); err != nil {
			t.Fatal(err)
		}
		if readStored(t, st, "mod/example.com/!upper/@v/v0.1.0.zip") == nil {
			t.Error("the case-escaped module's zip was not stored under its escaped key")
		}
	})

	gosum := goSumOf(t, f, modB, modC11)
	t.Run("go.sum", func(t *testing.T) {
		opt := f.options()
		opt.GoMod, opt.GoSum = nil, gosum
		b, _ := f.export(t, opt)
		if got, want := modules(b), []string{"example.com/b@v1.0.0", "example.com/c@v1.1.0"}; !slices.Equal(got, want) {
			t.Errorf("modules %q, want %q", got, want)
		}
	})

	t.Run("go.sum disagrees", func(t *testing.T) {
		opt := f.options()
		wrong := fakeH1("wrong")
		opt.GoSum = bytes.Replace(gosum, []byte(hashOf(t, gosum, "example.com/c v1.1.0/go.mod")), []byte(wrong), 1)
		_, err := Export(context.Background(), &bytes.Buffer{}, opt)
		if err == nil || !strings.Contains(err.Error(), "example.com/c@v1.1.0") || !strings.Contains(err.Error(), "go.sum records "+wrong) {
			t.Errorf("export with a wrong go.sum: %v", err)
		}
	})

	t.Run("not in the database", func(t *testing.T) {
		g := newFixtureOf(t, fixtureModules())
		opt := g.options()
		opt.GoMod, opt.Modules = nil, []module.Version{{Path: "example.com/nowhere", Version: "v1.0.0"}}
		_, err := Export(context.Background(), &bytes.Buffer{}, opt)
		if err == nil || !strings.Contains(err.Error(), "example.com/nowhere@v1.0.0") {
			t.Errorf("export of a missing module: %v", err)
		}
	})

	t.Run("tampering proxy", func(t *testing.T) {
		g := newFixtureOf(t, fixtureModules())
		g.lookup(t, modB) // the database records b's real hashes
		// Then the proxy serves b's zip with other content.
		fake := testenv.MakeZip(t, modB.Path, modB.Version, map[string]string{"go.mod": "module example.com/b\n\ngo 1.21\n\nrequire example.com/c v1.1.0\n", "b.go": "package b // changed\n"})
		if err := os.WriteFile(g.up.FilePath(modB.Path, modB.Version, "zip"), fake, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Export(context.Background(), &bytes.Buffer{}, g.options())
		if err == nil || !strings.Contains(err.Error(), "SECURITY ERROR") || !strings.Contains(err.Error(), "example.com/b@v1.0.0 zip") {
			t.Errorf("export through a tampering proxy: %v", err)
		}
	})
}

// goSumOf returns the go.sum lines of mods, with their real hashes.
func goSumOf(t *testing.T, f *fixture, mods ...module.Version) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, m := range mods {
		zh, err := modcheck.CheckZip(f.up.FilePath(m.Path, m.Version, "zip"), m.Path, m.Version)
		if err != nil {
			t.Fatal(err)
		}
		gomod, err := os.ReadFile(f.up.FilePath(m.Path, m.Version, "mod"))
		if err != nil {
			t.Fatal(err)
		}
		mh, err := modcheck.HashGoMod(gomod)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s\n%s %s/go.mod %s\n", m.Path, m.Version, zh, m.Path, m.Version, mh)
	}
	return b.Bytes()
}

// hashOf returns the hash of the go.sum line that starts with prefix.
func hashOf(t *testing.T, gosum []byte, prefix string) string {
	t.Helper()
	for line := range strings.SplitSeq(string(gosum), "\n") {
		if h, ok := strings.CutPrefix(line, prefix+" "); ok {
			return h
		}
	}
	t.Fatalf("no go.sum line %q", prefix)
	return ""
}

// TestBaseTree: a data dir holding a tree from an earlier bundle refuses a
// bundle whose proofs do not start from it, saying what to do; a bundle
// exported with that tree as its base moves the tree forward, and both
// bundles' modules still verify offline.
func TestBaseTree(t *testing.T) {
	f := newFixture(t)
	opt1 := f.options()
	opt1.GoMod, opt1.Modules = nil, []module.Version{modC10}
	b1, _ := f.export(t, opt1)
	st := newStore(t)
	if _, err := importInto(t, st, f.sdb, b1); err != nil {
		t.Fatal(err)
	}
	tree1 := readStored(t, st, "sumdb/"+testDBName+"/latest")

	f.grow(t, "v1.0.0", "v1.1.0") // the log moves on between the bundles
	b2, sum2 := f.export(t, f.options())
	_, err := importInto(t, st, f.sdb, b2)
	if err == nil || !strings.Contains(err.Error(), "--base-tree") {
		t.Fatalf("import of a bundle that does not start from the data dir's tree: %v", err)
	}
	if got := readStored(t, st, "sumdb/"+testDBName+"/latest"); !bytes.Equal(got, tree1) {
		t.Error("the refused import changed the tree")
	}
	if readStored(t, st, "mod/example.com/a/@v/v1.0.0.mod") != nil {
		t.Error("the refused import stored a's go.mod")
	}

	opt3 := f.options()
	opt3.Base = tree1
	b3, sum3 := f.export(t, opt3)
	if sum3.Tree != sum2.Tree {
		t.Errorf("tree of the bundle with a base: %d records, want %d", sum3.Tree, sum2.Tree)
	}
	if _, err := importInto(t, st, f.sdb, b3); err != nil {
		t.Fatalf("import of the bundle with the data dir's tree as base: %v", err)
	}
	tree3 := readStored(t, st, "sumdb/"+testDBName+"/latest")
	if tr, err := openTree(f.sdb, tree3); err != nil || tr.N != sum3.Tree {
		t.Errorf("data dir's tree after the import: %v %v, want %d records", tr, err, sum3.Tree)
	}
	for _, b := range [][]byte{b1, b3} {
		for _, m := range manifestOf(t, readTar(t, b)).Modules {
			if err := goCommand(t, f.sdb, st, module.Version{Path: m.Path, Version: m.Version}, m.Mod, m.Zip); err != nil {
				t.Errorf("a go command verifying %s offline after both imports: %v", m, err)
			}
		}
	}
	// A bundle whose final tree is the data dir's is accepted as it is.
	if _, err := importInto(t, st, f.sdb, b3); err != nil {
		t.Errorf("importing the same bundle again: %v", err)
	}
}

// TestExportCanceled: a canceled export stops, says so, and leaves no
// scratch files.
func TestExportCanceled(t *testing.T) {
	f := newFixture(t)
	// 4 versions, 3 zips: their small files, their proofs, then the zips.
	for _, n := range []int{2, 6, 9, 10} {
		opt := f.options()
		opt.ScratchDir = t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		opt.Progress = &cancelAt{n: n, cancel: cancel}
		_, err := Export(ctx, &bytes.Buffer{}, opt)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("export canceled after %d items: %v", n, err)
		}
		if left, _ := os.ReadDir(opt.ScratchDir); len(left) != 0 {
			t.Errorf("export canceled after %d items left %d files in its scratch dir", n, len(left))
		}
	}
}

// cancelAt cancels once n items are done.
type cancelAt struct {
	mu     sync.Mutex
	n      int
	cancel context.CancelFunc
}

func (c *cancelAt) Start(int) {}
func (c *cancelAt) Add(int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.n <= 0 {
		c.cancel()
	}
}

// TestWrongDatabase: a bundle is refused by an import that trusts another
// database, or another key for the same name.
func TestWrongDatabase(t *testing.T) {
	f := newFixture(t)
	b, _ := f.export(t, f.options())
	other := newFixtureOf(t, fixtureModules()) // same name, another key
	st := newStore(t)
	_, err := importInto(t, st, other.sdb, b)
	if err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("import trusting another key: %v", err)
	}
	def, _ := sumdb.ParseDB(sumdb.DefaultName)
	_, err = importInto(t, st, def, b)
	if err == nil || !strings.Contains(err.Error(), "proved by checksum database "+testDBName) {
		t.Errorf("import trusting the default database: %v", err)
	}
	if files := storedFiles(t, st); len(files) != 0 {
		t.Errorf("refused imports stored %q", files)
	}
}
