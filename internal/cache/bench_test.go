package cache_test

// Benchmarks of the cache's miss path: every iteration asks for a file that
// is not stored, so the cache coordinates a fetch from a fixture upstream
// over HTTP on 127.0.0.1, checks the file and stores it on a disk store.
// What is stored is deleted again with the timer stopped. The figures are
// the cache's cost per miss on top of the round trip; compare allocations
// and time before and after a change to the miss path:
//
//	go test -run '^$' -bench Cold -benchmem -count 5 ./internal/cache/
//
// The hit path is measured behind the HTTP handler, in internal/goproxy
// (BenchmarkWarm*).

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

const benchPath, benchVersion = "example.com/m", "v1.0.0"

// newBenchCache returns a cache over a fresh disk store, fetching from the
// fixture tree's upstream, and the store.
func newBenchCache(b *testing.B) (*cache.Modules, store.Store) {
	b.Helper()
	up := testenv.NewUpstream(b, benchTree(b))
	disk, err := store.NewDisk(filepath.Join(b.TempDir(), "data"))
	if err != nil {
		b.Fatal(err)
	}
	chain, err := source.ParseList(up.URL(), func(base string) source.Source {
		return source.NewUpstream(base, source.NewHTTPClient())
	})
	if err != nil {
		b.Fatal(err)
	}
	m := cache.New(cache.Config{Store: disk, Source: chain, ScratchDir: disk.StagingDir(),
		ListTTL: time.Minute, NegativeTTL: time.Minute, FetchTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	b.Cleanup(m.Close)
	return m, disk
}

func benchTree(b *testing.B) string {
	dir := b.TempDir()
	testenv.BuildTree(b, dir, []testenv.Module{{Path: benchPath, Version: benchVersion,
		Files: map[string]string{"m.go": "package m\n\nconst V = 1\n"}}})
	return dir
}

// benchCold measures ask on a cache that has nothing stored under keys.
func benchCold(b *testing.B, ask func(context.Context, *cache.Modules) (io.Closer, error), keys ...string) {
	ctx := context.Background()
	m, disk := newBenchCache(b)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for _, k := range keys {
			if err := disk.Delete(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		c, err := ask(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

func versionKeys(b *testing.B, exts ...string) []string {
	var keys []string
	for _, ext := range exts {
		k, err := store.VersionKey(benchPath, benchVersion, ext)
		if err != nil {
			b.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

func fileCloser(f *protocol.File, err error) (io.Closer, error) {
	if err != nil {
		return nil, err
	}
	return f.Content, nil
}

func BenchmarkColdMod(b *testing.B) {
	benchCold(b, func(ctx context.Context, m *cache.Modules) (io.Closer, error) {
		return fileCloser(m.GoMod(ctx, benchPath, benchVersion))
	}, versionKeys(b, "mod")...)
}

func BenchmarkColdZip(b *testing.B) {
	benchCold(b, func(ctx context.Context, m *cache.Modules) (io.Closer, error) {
		return fileCloser(m.Zip(ctx, benchPath, benchVersion))
	}, versionKeys(b, "zip", "ziphash")...)
}

func BenchmarkColdList(b *testing.B) {
	key, err := store.MetaKey(benchPath, "list")
	if err != nil {
		b.Fatal(err)
	}
	benchCold(b, func(ctx context.Context, m *cache.Modules) (io.Closer, error) {
		_, err := m.List(ctx, benchPath)
		return io.NopCloser(nil), err
	}, key)
}
