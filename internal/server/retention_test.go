package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// TestEnforceRetention: with --max-storage, the least recently used
// version goes, the others stay, and what was used in the last ten
// minutes is never removed.
func TestEnforceRetention(t *testing.T) {
	var mods []testenv.Module
	for _, name := range []string{"a", "b", "c"} {
		mods = append(mods, testenv.Module{Path: "example.com/" + name, Version: "v1.0.0",
			Files: map[string]string{name + ".go": "package " + name + "\n\n// " + strings.Repeat(name, 20000) + "\n"}})
	}
	tree := t.TempDir()
	testenv.BuildTree(t, tree, mods)
	up := testenv.NewUpstream(t, tree)
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Upstream, cfg.SumDB, cfg.UpstreamRate, cfg.Prefetch = up.URL(), "off", 0, false
	s, err := New(t.Context(), cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	var one int64
	for _, m := range mods {
		// From the cache, not through the usage recorder: what is served
		// counts as used now (TestRetentionKeepsServed).
		f, err := s.cache.Zip(ctx, m.Path, m.Version)
		if err != nil {
			t.Fatal(err)
		}
		f.Content.Close()
		one = f.Size
	}
	// The cache hashes unverified zips in the background: wait for the
	// .ziphash files, or one written after the times are set below would
	// make its version look just used.
	for _, m := range mods {
		key, _ := store.VersionKey(m.Path, m.Version, "ziphash")
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := s.Store().Stat(ctx, key); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("%s: no .ziphash after 30s: %v", m.Path, err)
			}
		}
	}
	// a was used two hours ago, b one hour ago, c just now.
	for name, age := range map[string]time.Duration{"a": 2 * time.Hour, "b": time.Hour} {
		dir := filepath.Join(cfg.DataDir, "mod", "example.com", name, "@v")
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			at := time.Now().Add(-age)
			if err := os.Chtimes(filepath.Join(dir, e.Name()), at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	stored := func(name string) bool {
		key, _ := store.VersionKey("example.com/"+name, "v1.0.0", "zip")
		_, err := s.Store().Stat(ctx, key)
		return err == nil
	}

	s.cfg.MaxStorage = config.ByteSize(2*one + one/2) // room for two and a half zips
	s.enforceRetention(ctx)
	if stored("a") || !stored("b") || !stored("c") {
		t.Errorf("after retention: a %v, b %v, c %v; want only a (the least recently used) removed", stored("a"), stored("b"), stored("c"))
	}
	s.cfg.MaxStorage = 1 // nothing fits: still, c was used in the last ten minutes
	s.enforceRetention(ctx)
	if stored("b") || !stored("c") {
		t.Errorf("with a limit nothing fits: b %v, c %v; want b removed and c kept", stored("b"), stored("c"))
	}
}
