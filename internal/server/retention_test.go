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
	"github.com/modgate/modgate/internal/coord"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// TestEnforceRetention: with --max-storage, the least recently used
// version goes, the others stay, and what was used in the last ten
// minutes is never removed.
func TestEnforceRetention(t *testing.T) {
	s, one, stored := retentionServer(t)
	ctx := context.Background()
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

// TestRetentionHoldsItsLock: with replicas, the retention lock stays held
// for as long as a run takes, longer than the lease, so that no other
// replica starts removing versions meanwhile; it is free again after.
func TestRetentionHoldsItsLock(t *testing.T) {
	defer func(d time.Duration) { retentionLease = d }(retentionLease)
	retentionLease = 300 * time.Millisecond
	s, _, stored := retentionServer(t)
	locks := &coord.LocalLocks{}
	s.coord.locks = locks
	s.store = slowDeletes{s.store} // a run of several leases
	s.cfg.MaxStorage = 1

	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		s.enforceRetention(context.Background())
	}()
	ctx := context.Background()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(20 * time.Millisecond):
			if lease, ok, err := locks.TryLock(ctx, "retention", time.Minute); err != nil || ok {
				t.Errorf("%v into the run, another replica got the retention lock (%v)", time.Since(start), err)
				if ok {
					lease.Release(ctx)
				}
			}
		}
	}
	if took := time.Since(start); took < 2*retentionLease {
		t.Fatalf("the run took %v, less than two leases: the test tests nothing", took)
	}
	if stored("a") || stored("b") {
		t.Errorf("the run did not finish its removals")
	}
	lease, ok, err := locks.TryLock(ctx, "retention", time.Minute)
	if err != nil || !ok {
		t.Fatalf("after the run the lock is still held: %v %v", ok, err)
	}
	lease.Release(ctx)
}

// slowDeletes is a store whose deletes take a while, as on a busy S3.
type slowDeletes struct{ store.Store }

func (s slowDeletes) Delete(ctx context.Context, key string) error {
	time.Sleep(250 * time.Millisecond)
	return s.Store.Delete(ctx, key)
}

// retentionServer is a server over three stored modules of equal size:
// a was used two hours ago, b one hour ago, c just now. stored reports
// whether a module's zip is still there.
func retentionServer(t *testing.T) (s *Server, one int64, stored func(name string) bool) {
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
	stored = func(name string) bool {
		key, _ := store.VersionKey("example.com/"+name, "v1.0.0", "zip")
		_, err := s.Store().Stat(ctx, key)
		return err == nil
	}
	return s, one, stored
}
