package server_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/server"
	"github.com/modgate/modgate/internal/testenv"
)

// benchModules is the number of fixture modules fetched per operation.
const benchModules = 20

// BenchmarkColdFetchVerification measures what checksum verification adds
// to cold fetches: one op fetches the go.mod and zip of benchModules
// fixture modules through modgate's modules (server.New, as the handler
// asks them) into an empty storage, from a fixture upstream over HTTP,
// with verification
//
//   - off ("unverified"),
//   - against an in-process checksum database over HTTP, with an empty
//     tree state too ("verified"): a fresh install,
//   - the same, with the tree state and tiles kept from earlier ops and
//     only the lookups cold ("verified-warmtree"): a long-running modgate.
//
// Compare the ns/op (or ns/module) of the sub-benchmarks for the ratio.
func BenchmarkColdFetchVerification(b *testing.B) {
	var paths []string
	for i := range benchModules {
		paths = append(paths, fmt.Sprintf("bench.example/mod%02d", i))
	}
	dir := b.TempDir()
	var mods []testenv.Module
	for _, path := range paths {
		files := map[string]string{}
		for j := range 5 {
			files[fmt.Sprintf("f%d.go", j)] = "package mod\n\n// " + strings.Repeat(fmt.Sprintf("%s file %d ", path, j), 200) + "\n"
		}
		mods = append(mods, testenv.Module{Path: path, Version: "v1.0.0", Files: files})
	}
	testenv.BuildTree(b, dir, mods)
	up := testenv.NewUpstream(b, dir)
	records := map[string]string{}
	for _, path := range paths {
		records[path+"@v1.0.0"] = goSum(b, up, path)
	}
	db := newChecksumDB(b, records)
	for _, path := range paths { // the database's own first-lookup cost is not ours
		resp, err := http.Get(db.URL + "/lookup/" + path + "@v1.0.0")
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("lookup of %s in the test database: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}

	// run times ops; each op's server is built by newServer (outside the
	// timer) over storage that holds no module files.
	run := func(b *testing.B, newServer func() *server.Server) {
		ops := 0
		for b.Loop() {
			ops++
			b.StopTimer()
			s := newServer()
			m := s.Modules()
			ctx := b.Context()
			b.StartTimer()
			for _, path := range paths {
				f, err := m.GoMod(ctx, path, "v1.0.0")
				if err != nil {
					b.Fatal(err)
				}
				f.Content.Close()
				f, err = m.Zip(ctx, path, "v1.0.0")
				if err != nil {
					b.Fatal(err)
				}
				f.Content.Close()
			}
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*benchModules), "ns/module")
	}
	// fresh builds each op's server over an empty data dir.
	fresh := func(b *testing.B, sumdb string) func() *server.Server {
		cfg := testConfig(b, up.URL())
		cfg.SumDB = sumdb
		return func() *server.Server {
			if err := os.RemoveAll(cfg.DataDir); err != nil {
				b.Fatal(err)
			}
			return newBenchServer(b, cfg)
		}
	}

	b.Run("unverified", func(b *testing.B) { run(b, fresh(b, "off")) })
	b.Run("verified", func(b *testing.B) { run(b, fresh(b, db.SumDB)) })
	b.Run("verified-warmtree", func(b *testing.B) {
		// One data dir for all ops: before each, the module files and the
		// lookups go, the verifier's tree state and tiles stay.
		cfg := testConfig(b, up.URL())
		cfg.SumDB = db.SumDB
		dataDir := cfg.DataDir
		warm := newBenchServer(b, cfg)
		for _, path := range paths {
			f, err := warm.Modules().GoMod(b.Context(), path, "v1.0.0")
			if err != nil {
				b.Fatal(err)
			}
			f.Content.Close()
		}
		warm.Close()
		lookups := filepath.Join(dataDir, "sumdb", testDBName, "lookup")
		run(b, func() *server.Server {
			for _, d := range []string{"mod", "meta", filepath.Join("sumdb", testDBName, "lookup")} {
				if err := os.RemoveAll(filepath.Join(dataDir, d)); err != nil {
					b.Fatal(err)
				}
			}
			return newBenchServer(b, cfg)
		})
		if _, err := os.Stat(lookups); err != nil {
			b.Fatalf("the verifier stored no lookups: %v", err)
		}
	})
}

// newBenchServer builds the server of cfg, logging nothing.
func newBenchServer(b *testing.B, cfg *config.Config) *server.Server {
	s, err := server.New(b.Context(), cfg, server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	return s
}
