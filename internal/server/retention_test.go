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
//
// The lock's lease runs on a fake clock, moved only after the holder has
// renewed it, by half a lease at a time: however late the renewals come in
// real time, the lease cannot lapse while they come, and without them it
// would lapse after two moves. The run's deletes wait for four leases of
// that clock.
func TestRetentionHoldsItsLock(t *testing.T) {
	defer func(d time.Duration) { retentionLease = d }(retentionLease)
	retentionLease = 30 * time.Millisecond // renewals every 10ms in real time
	s, _, stored := retentionServer(t)
	clock := testenv.NewClock(time.Now())
	locks := &coord.LocalLocks{Now: clock.Now}
	renewed := make(chan time.Time, 16)
	s.coord.locks = renewSignal{locks, clock, renewed}
	open := make(chan struct{})
	s.store = gatedDeletes{s.store, open} // a run of several leases
	s.cfg.MaxStorage = 1

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.enforceRetention(context.Background())
	}()
	ctx := context.Background()
	start := clock.Now()
	deadline := time.After(30 * time.Second)
run:
	for clock.Now().Sub(start) < 4*retentionLease {
		// Wait for a renewal begun at the clock's present time or later:
		// the lease then ends a whole lease from now at the earliest.
		now := clock.Now()
		for renewal := false; !renewal; {
			select {
			case at := <-renewed:
				renewal = !at.Before(now)
			case <-done:
				t.Errorf("the run ended %v into it (of the fake clock), before its deletes could go: it lost its lock", clock.Now().Sub(start))
				break run
			case <-deadline:
				t.Fatalf("the retention lock was not renewed in 30s (%v into the run, of the fake clock)", clock.Now().Sub(start))
			}
		}
		clock.Advance(retentionLease / 2)
		if lease, ok, err := locks.TryLock(ctx, "retention", time.Minute); err != nil || ok {
			t.Errorf("%v into the run (of the fake clock), another replica got the retention lock (%v)", clock.Now().Sub(start), err)
			if ok {
				lease.Release(ctx)
			}
		}
	}
	close(open)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not end in 30s once its deletes could go")
	}
	if took := clock.Now().Sub(start); took < 2*retentionLease {
		t.Fatalf("the run took %v of the fake clock, less than two leases: the test tests nothing", took)
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

// renewSignal is Locks whose leases send on renewed, after each successful
// Renew, the clock's time read before it began.
type renewSignal struct {
	coord.Locks
	clock   *testenv.Clock
	renewed chan<- time.Time
}

func (l renewSignal) TryLock(ctx context.Context, key string, ttl time.Duration) (coord.Lease, bool, error) {
	lease, ok, err := l.Locks.TryLock(ctx, key, ttl)
	if ok {
		lease = signalLease{lease, l}
	}
	return lease, ok, err
}

type signalLease struct {
	coord.Lease
	l renewSignal
}

func (e signalLease) Renew(ctx context.Context, ttl time.Duration) error {
	at := e.l.clock.Now()
	err := e.Lease.Renew(ctx, ttl)
	if err == nil {
		select {
		case e.l.renewed <- at:
		default: // the test is not waiting: it gets the next one
		}
	}
	return err
}

// gatedDeletes is a store whose deletes wait until open is closed, as on
// a very busy S3, or until the run is cancelled.
type gatedDeletes struct {
	store.Store
	open <-chan struct{}
}

func (s gatedDeletes) Delete(ctx context.Context, key string) error {
	select {
	case <-s.open:
	case <-ctx.Done():
		return ctx.Err()
	}
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
