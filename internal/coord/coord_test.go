package coord_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/coord"
	"github.com/modgate/modgate/internal/coord/coordtest"
	"github.com/modgate/modgate/internal/testenv"
)

func TestCompliance(t *testing.T) {
	t.Run("Group", func(t *testing.T) {
		coordtest.Run(t, coordtest.Harness{})
	})
	// Groups over one LocalLocks stand for processes over a lock service:
	// the composition a Redis Locks will use.
	t.Run("GroupOverLocalLocks", func(t *testing.T) {
		clock := testenv.NewClock(time.Unix(1e9, 0))
		coordtest.Run(t, coordtest.Harness{
			NewLocks: func(*testing.T) coord.Locks { return &coord.LocalLocks{Now: clock.Now} },
			Advance:  clock.Advance,
		})
	})
}

// TestSharedValue: callers of one call get its value, the same one.
func TestSharedValue(t *testing.T) {
	g := coord.NewGroup(coord.GroupConfig{})
	defer g.Close()
	type answer struct{ n int }
	const n = 4
	release := make(chan struct{})
	runs := 0
	got := make(chan *answer, n)
	for range n {
		go func() {
			a, err := coord.Shared(context.Background(), g, "k", func(ctx context.Context) (*answer, error) {
				runs++ // one call at a time: no race
				select {
				case <-release:
					return &answer{42}, nil
				case <-ctx.Done(): // the test failed and closed g
					return nil, ctx.Err()
				}
			})
			if err != nil {
				t.Error(err)
			}
			got <- a
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); g.Waiting("k") != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d callers waiting, want %d", g.Waiting("k"), n)
		}
	}
	close(release)
	first := <-got
	for range n - 1 {
		if a := <-got; a != first {
			t.Errorf("callers got different values %p and %p", a, first)
		}
	}
	if first == nil || first.n != 42 || runs != 1 {
		t.Errorf("value %v from %d runs, want {42} from 1", first, runs)
	}
}

// downLocks is a lock service that cannot be reached.
type downLocks struct{}

func (downLocks) TryLock(context.Context, string, time.Duration) (coord.Lease, bool, error) {
	return nil, false, errors.New("dial tcp 127.0.0.1:6379: connection refused")
}

// TestLockServiceDown: without its lock service a Group still runs calls
// (coordination saves work, it must not stop it), and says so.
func TestLockServiceDown(t *testing.T) {
	var logs bytes.Buffer
	g := coord.NewGroup(coord.GroupConfig{Locks: downLocks{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer g.Close()
	ran := false
	if err := g.Do(context.Background(), "k", func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("Do: %v (ran: %v)", err, ran)
	}
	if !strings.Contains(logs.String(), "lock service failed") || !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the lock service's failure was not logged: %q", logs.String())
	}
}

type valueKey struct{}

// TestCallKeepsValues: the call is detached from its first caller's
// cancellation, not from its values (request-scoped loggers, origins).
func TestCallKeepsValues(t *testing.T) {
	g := coord.NewGroup(coord.GroupConfig{})
	defer g.Close()
	ctx := context.WithValue(context.Background(), valueKey{}, "v")
	var got any
	g.Do(ctx, "k", func(ctx context.Context) error { got = ctx.Value(valueKey{}); return nil })
	if got != "v" {
		t.Errorf("the call's context has value %v, want the caller's %q", got, "v")
	}
}

// TestDoAfterCallerGaveUp: a caller whose context has ended starts
// nothing.
func TestDoAfterCallerGaveUp(t *testing.T) {
	g := coord.NewGroup(coord.GroupConfig{})
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := g.Do(ctx, "k", func(context.Context) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("Do with an ended context: %v (ran: %v), want context.Canceled without running", err, ran)
	}
}

// TestLockBadTTL: a lease must have a positive time.
func TestLockBadTTL(t *testing.T) {
	var l coord.LocalLocks
	if _, _, err := l.TryLock(context.Background(), "k", 0); err == nil {
		t.Error("TryLock with a zero lease time succeeded")
	}
}

// TestWait: Wait returns once the calls have returned, abandoned ones
// included, and leaves the Group usable.
func TestWait(t *testing.T) {
	g := coord.NewGroup(coord.GroupConfig{})
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	finish := make(chan struct{})
	var returned atomic.Bool
	errs := make(chan error, 1)
	go func() {
		errs <- g.Do(ctx, "k", func(ctx context.Context) error {
			<-ctx.Done()
			<-finish // winding down after every caller left
			returned.Store(true)
			return nil
		})
	}()
	for deadline := time.Now().Add(10 * time.Second); g.Waiting("k") != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the caller never waited")
		}
	}
	cancel()
	<-errs
	waited := make(chan bool)
	go func() {
		g.Wait()
		waited <- returned.Load()
	}()
	close(finish)
	if !<-waited {
		t.Error("Wait returned before the abandoned call")
	}
	if err := g.Do(context.Background(), "k", func(context.Context) error { return nil }); err != nil {
		t.Errorf("Do after Wait: %v", err)
	}
}

// TestKeepAbandoned: with KeepAbandoned a call every caller left is not
// cancelled, and a later caller joins it instead of starting another.
func TestKeepAbandoned(t *testing.T) {
	g := coord.NewGroup(coord.GroupConfig{KeepAbandoned: true})
	defer g.Close()
	var runs atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context) error {
		runs.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() { errs <- g.Do(ctx, "k", fn) }()
	for deadline := time.Now().Add(10 * time.Second); g.Waiting("k") != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first caller never waited")
		}
	}
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v, want context.Canceled", err)
	}
	second := make(chan error, 1)
	go func() { second <- g.Do(context.Background(), "k", fn) }()
	for deadline := time.Now().Add(10 * time.Second); g.Waiting("k") != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second caller never waited")
		}
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("second caller: %v, want the kept call's success", err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("fn ran %d times, want 1: the abandoned call was not kept", n)
	}
}
