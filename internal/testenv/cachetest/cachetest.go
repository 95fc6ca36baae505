// Package cachetest builds the real module cache that tests of what wraps
// it (the GOPROXY handler, prefetch, policy, audit, protocol wrappers) run
// over: a disk store in a temporary directory and the upstream chain to a
// fixture upstream, as server.New wires them, with TTLs long enough that
// nothing expires during a test. Only tests import it.
//
// It is a package of its own because package testenv cannot import
// internal/source (whose own tests import testenv).
package cachetest

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
)

// New returns a cache over a fresh disk store fetching from the proxy at
// upstreamURL, logging to log (discarded when nil), closed when the test
// ends, and the store it keeps its files in.
func New(t testing.TB, upstreamURL string, log *slog.Logger) (*cache.Modules, *store.Disk) {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	disk, err := store.NewDisk(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := source.ParseList(upstreamURL, func(base string) source.Source {
		return source.NewUpstream(base, source.NewHTTPClient())
	})
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(cache.Config{Store: disk, Source: chain, ScratchDir: disk.StagingDir(),
		ListTTL: time.Hour, NegativeTTL: time.Hour, FetchTimeout: time.Minute, Logger: log})
	t.Cleanup(c.Close)
	return c, disk
}
