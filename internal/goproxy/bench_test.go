package goproxy_test

// Benchmarks of the HTTP handler stack as modgate serves it (server.New):
// Instrument over the GOPROXY handler over a real module cache on a disk
// store, fetching from a fixture upstream through a source chain. Every
// request is warm (the file was fetched and stored before the timer
// starts), goes through the server's own listener and http.Server and a
// real keep-alive http.Client, and reads the whole body. BenchmarkFileServerInfo serves the same .info file with
// http.FileServer, as the floor to compare with.
//
//	go test -run '^$' -bench . -benchmem ./internal/goproxy/
//
// End-to-end figures (go mod download, requests per second, RSS) come from
// the bench program: go run ./bench (see docs/benchmarks.md).

import (
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/server"
	"github.com/modgate/modgate/internal/testenv"
)

const (
	benchSmall = "example.com/bench/small"
	benchLarge = "example.com/bench/large"
	benchVer   = "v1.0.0"
)

// fixtureFiles is the fixture GOPROXY tree (relative slash path -> content),
// built once per test binary: zipping 20 MiB of incompressible data takes a
// while, writing it out again per benchmark does not.
var (
	fixtureOnce  sync.Once
	fixtureFiles map[string][]byte
	fixtureErr   error
)

func benchFixture(b *testing.B) map[string][]byte {
	b.Helper()
	fixtureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "modgate-bench-tree-")
		if err != nil {
			fixtureErr = err
			return
		}
		defer os.RemoveAll(dir)

		// ~10 KiB zip: a few source files of mildly compressible text.
		small := map[string]string{}
		rnd := rand.NewChaCha8([32]byte{1})
		for i := range 5 {
			var sb strings.Builder
			fmt.Fprintf(&sb, "package small\n\n")
			for sb.Len() < 4<<10 {
				fmt.Fprintf(&sb, "const c%d_%d = %d // %x\n", i, sb.Len(), rnd.Uint64(), rnd.Uint64())
			}
			small[fmt.Sprintf("f%d.go", i)] = sb.String()
		}
		// ~20 MiB zip: incompressible content, so the zip is as large as it.
		large := map[string]string{"large.go": "package large\n"}
		for i := range 4 {
			buf := make([]byte, 5<<20)
			rnd.Read(buf)
			large[fmt.Sprintf("data/blob%d.bin", i)] = string(buf)
		}
		testenv.BuildTree(b, dir, []testenv.Module{
			{Path: benchSmall, Version: benchVer, Files: small},
			{Path: benchLarge, Version: benchVer, Files: large},
		})
		files := map[string][]byte{}
		fixtureErr = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			files[filepath.ToSlash(rel)] = data
			return nil
		})
		fixtureFiles = files
	})
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixtureFiles
}

type benchEnv struct {
	treeDir string
	url     string // modgate's
	client  *http.Client
}

// newBenchEnv serves modgate (server.New, Listen, Serve) over a fresh data
// dir in b.TempDir(), with a fixture upstream serving the fixture tree.
func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	files := benchFixture(b)
	root := b.TempDir()
	treeDir := filepath.Join(root, "tree")
	for rel, data := range files {
		p := filepath.Join(treeDir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	up := testenv.NewUpstream(b, treeDir)

	// As modgate serves by default (send deadlines, connection cap), with
	// verification off and no upstream rate limit.
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(root, "data")
	cfg.Upstream = up.URL()
	cfg.SumDB = "off"
	cfg.UpstreamRate = 0
	cfg.FetchTimeout = time.Minute
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(b.Context(), cfg, server.WithLogger(log))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	ln, err := srv.Listen()
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln) // until srv.Close
	tr := &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	return &benchEnv{treeDir: treeDir, url: "http://" + ln.Addr().String(), client: &http.Client{Transport: tr}}
}

// get fetches url and discards the body, checking for a 200 of want bytes
// (want < 0: any size). It returns the body size.
func get(b *testing.B, client *http.Client, url string, want int64) int64 {
	resp, err := client.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s", url, resp.Status)
	}
	if want >= 0 && n != want {
		b.Fatalf("GET %s: %d bytes, want %d", url, n, want)
	}
	return n
}

// benchWarm fetches file once (so it is stored), then measures serving it.
func benchWarm(b *testing.B, modPath, ext string) {
	env := newBenchEnv(b)
	url := env.url + "/" + modPath + "/@v/" + benchVer + "." + ext
	size := get(b, env.client, url, -1) // cold: fetched, checked, stored
	want, err := os.ReadFile(filepath.Join(env.treeDir, filepath.FromSlash(modPath), "@v", benchVer+"."+ext))
	if err != nil {
		b.Fatal(err)
	}
	if size != int64(len(want)) {
		b.Fatalf("%s: served %d bytes, the fixture has %d", url, size, len(want))
	}
	if ext == "zip" {
		b.SetBytes(size)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		get(b, env.client, url, size)
	}
}

func BenchmarkWarmInfo(b *testing.B)     { benchWarm(b, benchSmall, "info") }
func BenchmarkWarmMod(b *testing.B)      { benchWarm(b, benchSmall, "mod") }
func BenchmarkWarmZipSmall(b *testing.B) { benchWarm(b, benchSmall, "zip") }
func BenchmarkWarmZipLarge(b *testing.B) { benchWarm(b, benchLarge, "zip") }

// newFileServerInfo serves the fixture's small .info file with
// http.FileServer straight from a copy of it: the cost of serving a small
// file at all. It returns a client with conns idle connections, the URL and
// the file's size.
func newFileServerInfo(b *testing.B, conns int) (*http.Client, string, int64) {
	files := benchFixture(b)
	dir := b.TempDir()
	rel := benchSmall + "/@v/" + benchVer + ".info"
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(p, files[rel], 0o644); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	url := srv.URL + "/" + rel
	return client, url, get(b, client, url, int64(len(files[rel])))
}

// BenchmarkFileServerInfo is BenchmarkWarmInfo's baseline.
func BenchmarkFileServerInfo(b *testing.B) {
	client, url, size := newFileServerInfo(b, 4)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		get(b, client, url, size)
	}
}

// The Parallel variants keep every core busy, as a loaded server is: they
// measure CPU per request rather than round-trip latency.
func BenchmarkWarmInfoParallel(b *testing.B) {
	env := newBenchEnv(b)
	url := env.url + "/" + benchSmall + "/@v/" + benchVer + ".info"
	size := get(b, env.client, url, -1)
	env.client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.SetParallelism(16) // 16 clients per core
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			get(b, env.client, url, size)
		}
	})
}

func BenchmarkFileServerInfoParallel(b *testing.B) {
	client, url, size := newFileServerInfo(b, 64)
	b.SetParallelism(16) // 16 clients per core
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			get(b, client, url, size)
		}
	})
}
