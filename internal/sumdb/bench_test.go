package sumdb

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/dirhash"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// benchModules is the number of fixture modules fetched per operation.
const benchModules = 20

// BenchmarkColdFetchVerification measures what checksum verification adds
// to cold fetches: one op fetches the go.mod and zip of benchModules
// fixture modules through cache.Modules into an empty store, from a fixture
// upstream over HTTP, with verification
//
//   - off ("unverified"),
//   - against an in-process checksum database over HTTP, with an empty
//     tree state too ("verified"): a fresh install,
//   - the same, with the tree state and tiles kept from earlier ops and
//     only the lookups cold ("verified-warmtree"): a long-running modgate.
//
// Compare the ns/op (or ns/module) of the sub-benchmarks for the ratio.
func BenchmarkColdFetchVerification(b *testing.B) {
	dir := b.TempDir()
	var mods []testenv.Module
	for i := range benchModules {
		path := fmt.Sprintf("bench.example/mod%02d", i)
		files := map[string]string{}
		for j := range 5 {
			files[fmt.Sprintf("f%d.go", j)] = "package mod\n\n// " + strings.Repeat(fmt.Sprintf("%s file %d ", path, j), 200) + "\n"
		}
		mods = append(mods, testenv.Module{Path: path, Version: "v1.0.0", Files: files})
	}
	testenv.BuildTree(b, dir, mods)
	up := testenv.NewUpstream(b, dir)

	recs := records{}
	for _, m := range mods {
		zh, err := dirhash.HashZip(up.FilePath(m.Path, m.Version, "zip"), dirhash.Hash1)
		if err != nil {
			b.Fatal(err)
		}
		mh, err := modcheck.HashGoMod([]byte(m.GoMod()))
		if err != nil {
			b.Fatal(err)
		}
		recs.add(m.Path, m.Version, zh, mh)
	}
	skey, vkey := testKeys(b)
	db := newTestDB(b, skey, vkey, recs)
	for _, m := range mods { // the database's own first-lookup cost is not ours
		db.get("/lookup/" + m.Path + "@" + m.Version)
	}
	log := slog.New(slog.DiscardHandler)
	src := source.NewUpstream(up.URL(), testClient)
	ctx := context.Background()

	// fetchAll runs one op; newVerifier (nil: unverified) is called with
	// the op's fresh store.
	run := func(b *testing.B, newVerifier func(st *store.Disk) cache.Verifier) {
		ops := 0
		for b.Loop() {
			ops++
			b.StopTimer()
			root, err := os.MkdirTemp(b.TempDir(), "op-")
			if err != nil {
				b.Fatal(err)
			}
			st, err := store.NewDisk(root)
			if err != nil {
				b.Fatal(err)
			}
			cfg := cache.Config{Store: st, Source: src, Logger: log}
			if newVerifier != nil {
				cfg.Verifier = newVerifier(st)
			}
			m := cache.New(cfg)
			b.StartTimer()
			for _, mod := range mods {
				obj, err := m.GoMod(ctx, mod.Path, mod.Version)
				if err != nil {
					b.Fatal(err)
				}
				obj.Content.Close()
				obj, err = m.Zip(ctx, mod.Path, mod.Version)
				if err != nil {
					b.Fatal(err)
				}
				obj.Content.Close()
			}
			b.StopTimer()
			m.Close()
			os.RemoveAll(root)
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*benchModules), "ns/module")
	}

	b.Run("unverified", func(b *testing.B) { run(b, nil) })
	b.Run("verified", func(b *testing.B) {
		run(b, func(st *store.Disk) cache.Verifier {
			return NewVerifier(Config{DB: db.DB(), Store: st, Remote: NewRemote(db.DB(), nil, testClient), Logger: log})
		})
	})
	b.Run("verified-warmtree", func(b *testing.B) {
		// The verifier's state lives in its own store, kept across ops
		// except for the lookups.
		state, err := store.NewDisk(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		warm := NewVerifier(Config{DB: db.DB(), Store: state, Remote: NewRemote(db.DB(), nil, testClient), Logger: log})
		for _, m := range mods {
			if err := warm.Verify(ctx, m.Path, m.Version, true, mustHashGoMod(b, m.GoMod())); err != nil {
				b.Fatal(err)
			}
		}
		lookups := filepath.Join(state.Root(), "sumdb", testDBName, "lookup")
		run(b, func(*store.Disk) cache.Verifier {
			if err := os.RemoveAll(lookups); err != nil {
				b.Fatal(err)
			}
			return NewVerifier(Config{DB: db.DB(), Store: state, Remote: NewRemote(db.DB(), nil, testClient), Logger: log})
		})
		if _, err := os.Stat(lookups); err != nil {
			b.Fatalf("the verifier stored no lookups: %v", err)
		}
	})
}

func mustHashGoMod(tb testing.TB, gomod string) string {
	h, err := modcheck.HashGoMod([]byte(gomod))
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// BenchmarkVerify measures the verifier alone, against an in-process
// database over HTTP whose log has a few hundred records (three levels of
// tiles), one op being the go.mod and zip verification of one version:
//
//   - "stored": its lookup is stored (a long-running modgate serving
//     versions it verified before);
//   - "stored-parallel": the same from all CPUs at once;
//   - "lookup": its lookup is not stored, the tree and tiles are (a new
//     version of a module), so the op includes one lookup over HTTP.
func BenchmarkVerify(b *testing.B) {
	const mods = 64
	skey, vkey := testKeys(b)
	recs := records{}
	var paths []string
	for i := range mods {
		p := fmt.Sprintf("bench.example/w%02d", i)
		paths = append(paths, p)
		recs.add(p, "v1.0.0", fakeH1(p+" zip"), fakeH1(p+" mod"))
	}
	db := newTestDB(b, skey, vkey, recs)
	db.grow(300)
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	st := newDisk(b)
	newV := func() *Verifier {
		return NewVerifier(Config{DB: db.DB(), Store: st, Remote: NewRemote(db.DB(), nil, testClient), Logger: log})
	}
	verify := func(b *testing.B, v *Verifier, p string) {
		if err := v.Verify(ctx, p, "v1.0.0", true, fakeH1(p+" mod")); err != nil {
			b.Fatal(err)
		}
		if err := v.Verify(ctx, p, "v1.0.0", false, fakeH1(p+" zip")); err != nil {
			b.Fatal(err)
		}
	}
	warm := newV()
	for _, p := range paths {
		verify(b, warm, p)
	}
	warm.Close()

	b.Run("stored", func(b *testing.B) {
		v := newV()
		defer v.Close()
		i := 0
		for b.Loop() {
			verify(b, v, paths[i%mods])
			i++
		}
	})
	b.Run("stored-parallel", func(b *testing.B) {
		v := newV()
		defer v.Close()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				verify(b, v, paths[next.Add(1)%mods])
			}
		})
	})
	b.Run("lookup", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			p := paths[i%mods]
			i++
			if err := st.Delete(ctx, "sumdb/"+testDBName+"/lookup/"+p+"@v1.0.0"); err != nil {
				b.Fatal(err)
			}
			v := newV()
			b.StartTimer()
			verify(b, v, p)
			b.StopTimer()
			v.Close()
			b.StartTimer()
		}
	})
}
