// Package coordtest is the compliance suite of package coord. A lock
// service runs it over its Locks, which covers both the Locks contract and
// coord.Group over them (several Groups over one Locks stand for several
// processes):
//
//	func TestCompliance(t *testing.T) {
//		coordtest.Run(t, coordtest.Harness{
//			NewLocks: func(t *testing.T) coord.Locks { return newLocks(t) },
//			Advance:  func(d time.Duration) { server.FastForward(d) },
//		})
//	}
//
// The tests wait for events, never for durations, except that leases are
// made to expire through Advance. Over a real clock (Advance sleeps), a
// test step must also come within Harness.TTL of the one before it.
package coordtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/coord"
)

// Harness describes the implementation under test.
type Harness struct {
	// NewLocks returns Locks over an empty namespace of their own. Nil
	// tests the in-process Group alone.
	NewLocks func(t *testing.T) coord.Locks
	// Advance moves forward by d the clock by which leases of NewLocks
	// expire: a fake clock, a test server's (miniredis' FastForward), or
	// for a real server time itself (time.Sleep). Required with NewLocks.
	Advance func(d time.Duration)
	// TTL is the lease time of the locks the tests take; default 1s. A
	// test counts on a lease it holds outliving its next steps, and
	// RenewKeepsLease on 0.45 TTL of slack after each Advance: over a
	// real clock, TTL must be seconds, more than a loaded machine may
	// stall a test. The tests Advance by 3.8 TTL in all, 1.6 TTL at most
	// in one.
	TTL time.Duration
	// Parallel runs the tests that Advance in parallel with one another,
	// so that their waits overlap: for an Advance that only waits (a real
	// server's clock), under which the Locks of separate NewLocks calls do
	// not affect one another. Not for a clock that NewLocks calls share.
	Parallel bool
}

// waitFor bounds how long a test waits for an event that must come.
const waitFor = 10 * time.Second

// defaultTTL is Harness.TTL's default.
const defaultTTL = time.Second

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	if h.TTL == 0 {
		h.TTL = defaultTTL
	}
	if h.NewLocks != nil {
		if h.Advance == nil {
			t.Fatal("coordtest: Harness.Advance is required with NewLocks")
		}
		t.Run("Locks/Exclusive", h.testLocksExclusive)
		t.Run("Locks/ExpiryFreesDeadHolder", h.advancing(h.testLocksExpiry))
		t.Run("Locks/RenewKeepsLease", h.advancing(h.testLocksRenew))
		t.Run("Locks/LockWaitsForRelease", h.testLockWaits)
	}
	t.Run("Flights/MutualExclusion", h.testMutualExclusion)
	t.Run("Flights/WaitersShareOutcome", h.testShareOutcome)
	t.Run("Flights/CancelledWhenAllLeave", h.testCancelWhenAllLeave)
	t.Run("Flights/NextCallWaitsForAbandoned", h.testNextWaitsForAbandoned)
	t.Run("Flights/Timeout", h.testTimeout)
	t.Run("Flights/Close", h.testClose)
	if h.NewLocks != nil {
		t.Run("Flights/AcrossProcesses", h.testAcrossProcesses)
		t.Run("Flights/DeadHolderExpires", h.advancing(h.testDeadHolder))
	}
	t.Run("Flights/NoGoroutineLeak", h.testNoLeak)
}

// advancing marks test as one that Advances: run in parallel with the
// others under Harness.Parallel. The tests that do not Advance, NoLeak
// above all, which counts goroutines, run first, alone.
func (h Harness) advancing(test func(*testing.T)) func(*testing.T) {
	return func(t *testing.T) {
		if h.Parallel {
			t.Parallel()
		}
		test(t)
	}
}

// processes returns n Groups standing for n processes: over one Locks, or,
// without Locks, one in-process Group n times.
func (h Harness) processes(t *testing.T, n int, cfg coord.GroupConfig) ([]*coord.Group, coord.Locks) {
	var locks coord.Locks
	if h.NewLocks != nil {
		locks = h.NewLocks(t)
	}
	cfg.Locks = locks
	gs := make([]*coord.Group, n)
	for i := range gs {
		if i > 0 && locks == nil {
			gs[i] = gs[0]
			continue
		}
		g := coord.NewGroup(cfg)
		t.Cleanup(func() { g.Close() })
		gs[i] = g
	}
	return gs, locks
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, waitFor)
		}
		time.Sleep(time.Millisecond)
	}
}

func receive[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(waitFor):
		t.Fatalf("%s did not happen within %v", what, waitFor)
		panic("unreachable")
	}
}

// tryLock takes key's lock for h.TTL.
func (h Harness) tryLock(t *testing.T, l coord.Locks, key string) (coord.Lease, bool) {
	t.Helper()
	lease, ok, err := l.TryLock(context.Background(), key, h.TTL)
	if err != nil {
		t.Fatalf("TryLock(%q): %v", key, err)
	}
	return lease, ok
}

func (h Harness) testLocksExclusive(t *testing.T) {
	l := h.NewLocks(t)
	ctx := context.Background()
	a, ok := h.tryLock(t, l, "k")
	if !ok {
		t.Fatal("TryLock of a free key failed")
	}
	if _, ok := h.tryLock(t, l, "k"); ok {
		t.Fatal("TryLock of a held key succeeded")
	}
	b, ok := h.tryLock(t, l, "k2")
	if !ok {
		t.Fatal("TryLock of another key failed while k was held")
	}
	if err := a.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	c, ok := h.tryLock(t, l, "k")
	if !ok {
		t.Fatal("TryLock after Release failed")
	}
	if err := a.Release(ctx); !errors.Is(err, coord.ErrLeaseLost) {
		t.Errorf("second Release of a lease: %v, want ErrLeaseLost", err)
	}
	if _, ok := h.tryLock(t, l, "k"); ok {
		t.Fatal("a released lease's second Release freed the next holder's lock")
	}
	for _, e := range []coord.Lease{b, c} {
		if err := e.Release(ctx); err != nil {
			t.Errorf("Release: %v", err)
		}
	}
}

func (h Harness) testLocksExpiry(t *testing.T) {
	l := h.NewLocks(t)
	ctx := context.Background()
	ttl := h.TTL
	dead, ok := h.tryLock(t, l, "k")
	if !ok {
		t.Fatal("TryLock of a free key failed")
	}
	// And one that nobody takes over, below. Both expire in one Advance,
	// which costs a real clock its time.
	late, _ := h.tryLock(t, l, "late")
	// The holders die: nobody renews or releases their leases.
	h.Advance(ttl + ttl/10)
	next, ok := h.tryLock(t, l, "k")
	if !ok {
		t.Fatal("an expired lease still holds its key")
	}
	if err := dead.Renew(ctx, ttl); !errors.Is(err, coord.ErrLeaseLost) {
		t.Errorf("Renew of an expired lease: %v, want ErrLeaseLost", err)
	}
	if err := dead.Release(ctx); !errors.Is(err, coord.ErrLeaseLost) {
		t.Errorf("Release of an expired lease: %v, want ErrLeaseLost", err)
	}
	if _, ok := h.tryLock(t, l, "k"); ok {
		t.Fatal("a dead holder's Release freed the next holder's lock")
	}
	if err := next.Release(ctx); err != nil {
		t.Errorf("Release: %v", err)
	}
	// Without a later holder, a late Renew must not resurrect the lease.
	if err := late.Renew(ctx, ttl); !errors.Is(err, coord.ErrLeaseLost) {
		t.Errorf("Renew of an expired lease nobody took over: %v, want ErrLeaseLost", err)
	}
	if _, ok := h.tryLock(t, l, "late"); !ok {
		t.Error("a late Renew kept an expired lease")
	}
}

func (h Harness) testLocksRenew(t *testing.T) {
	l := h.NewLocks(t)
	ctx := context.Background()
	ttl := h.TTL
	a, ok := h.tryLock(t, l, "k")
	if !ok {
		t.Fatal("TryLock of a free key failed")
	}
	// Each step has 0.45 ttl or more to spare. A Renew that extends the
	// lease other than to ttl from now (not at all, from when it was
	// taken, from when it would have expired) fails the test.
	h.Advance(ttl / 2)
	if err := a.Renew(ctx, ttl); err != nil {
		t.Fatalf("Renew of a live lease: %v", err)
	}
	h.Advance(ttl * 11 / 20) // past the first lease time, within the renewed one
	if _, ok := h.tryLock(t, l, "k"); ok {
		t.Fatal("a renewed lease expired at its first lease time")
	}
	h.Advance(ttl * 11 / 20) // past the renewed lease time, within twice ttl
	if _, ok := h.tryLock(t, l, "k"); !ok {
		t.Fatal("a renewed lease did not expire after its renewed lease time")
	}
}

func (h Harness) testLockWaits(t *testing.T) {
	l := h.NewLocks(t)
	held, ok := h.tryLock(t, l, "k")
	if !ok {
		t.Fatal("TryLock of a free key failed")
	}
	var released atomic.Bool
	got := make(chan error, 1)
	go func() {
		lease, err := coord.Lock(context.Background(), l, "k", h.TTL)
		if err == nil {
			if !released.Load() {
				err = errors.New("Lock returned while the key was held")
			}
			lease.Release(context.Background())
		}
		got <- err
	}()
	// A waiter that gives up returns its context's error.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := coord.Lock(ctx, l, "k", h.TTL)
		gaveUp <- err
	}()
	cancel()
	if err := receive(t, gaveUp, "Lock returning after its context ended"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with its context ended: %v, want context.Canceled", err)
	}
	released.Store(true)
	if err := held.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := receive(t, got, "Lock returning after Release"); err != nil {
		t.Error(err)
	}
}

// testMutualExclusion runs many callers of a few keys in several processes,
// some giving up midway: calls of one key never overlap.
func (h Harness) testMutualExclusion(t *testing.T) {
	gs, _ := h.processes(t, 2, coord.GroupConfig{})
	const keys, callers, rounds = 3, 6, 4
	var active [keys]atomic.Int32
	var wg sync.WaitGroup
	for round := range rounds {
		for k := range keys {
			for c := range callers {
				wg.Go(func() {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					if c%3 == 0 {
						go cancel() // gives up at some point
					}
					g := gs[(c+round)%len(gs)]
					g.Do(ctx, fmt.Sprint("key", k), func(ctx context.Context) error {
						if n := active[k].Add(1); n != 1 {
							t.Errorf("%d calls of key%d ran at once", n, k)
						}
						for range 10 {
							runtime.Gosched()
						}
						active[k].Add(-1)
						return nil
					})
				})
			}
		}
	}
	wg.Wait()
	for _, g := range gs {
		g.Close() // waits for abandoned calls still winding down
	}
}

var errOutcome = errors.New("the call's own error")

func (h Harness) testShareOutcome(t *testing.T) {
	gs, _ := h.processes(t, 1, coord.GroupConfig{})
	g := gs[0]
	for _, want := range []error{errOutcome, nil} {
		const n = 5
		var runs atomic.Int32
		release := make(chan struct{})
		errs := make(chan error, n)
		for range n {
			go func() {
				errs <- g.Do(context.Background(), "k", func(ctx context.Context) error {
					runs.Add(1)
					select {
					case <-release:
						return want
					case <-ctx.Done(): // the test failed and closed g
						return ctx.Err()
					}
				})
			}()
		}
		eventually(t, "every caller waiting for the call", func() bool { return g.Waiting("k") == n })
		close(release)
		for range n {
			if err := receive(t, errs, "a caller returning"); err != want {
				t.Errorf("a caller got %v, want the call's outcome %v", err, want)
			}
		}
		if r := runs.Load(); r != 1 {
			t.Errorf("the call ran %d times for %d callers, want 1", r, n)
		}
		if w := g.Waiting("k"); w != 0 {
			t.Errorf("Waiting = %d after the call, want 0", w)
		}
	}
}

// testCancelWhenAllLeave: the call outlives the caller that started it, and
// ends when the last caller gives up.
func (h Harness) testCancelWhenAllLeave(t *testing.T) {
	gs, _ := h.processes(t, 1, coord.GroupConfig{})
	g := gs[0]
	const n = 3
	started := make(chan context.Context, 1)
	causes := make(chan error, 1)
	var cancels [n]context.CancelFunc
	errs := make(chan error, n)
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		go func() {
			errs <- g.Do(ctx, "k", func(ctx context.Context) error {
				started <- ctx
				<-ctx.Done()
				causes <- context.Cause(ctx)
				return ctx.Err()
			})
		}()
	}
	fctx := receive(t, started, "the call starting")
	eventually(t, "every caller waiting for the call", func() bool { return g.Waiting("k") == n })
	for i := range n - 1 {
		cancels[i]()
		if err := receive(t, errs, "a caller giving up"); !errors.Is(err, context.Canceled) {
			t.Errorf("a caller that gave up got %v, want context.Canceled", err)
		}
	}
	if err := fctx.Err(); err != nil {
		t.Fatalf("the call ended (%v) while a caller still waited", err)
	}
	cancels[n-1]()
	if err := receive(t, errs, "the last caller giving up"); !errors.Is(err, context.Canceled) {
		t.Errorf("the last caller got %v, want context.Canceled", err)
	}
	if cause := receive(t, causes, "the call's context ending"); cause == nil {
		t.Error("the call's context ended without a cause")
	}
}

// testNextWaitsForAbandoned: a caller arriving while an abandoned call is
// still winding down starts a new call, which runs after the old one.
func (h Harness) testNextWaitsForAbandoned(t *testing.T) {
	gs, _ := h.processes(t, 1, coord.GroupConfig{})
	g := gs[0]
	ctx, cancel := context.WithCancel(context.Background())
	started, cancelled, finish := make(chan struct{}), make(chan struct{}), make(chan struct{})
	finished := sync.OnceFunc(func() { close(finish) })
	t.Cleanup(finished) // before g's Close, if the test fails
	var oldReturned atomic.Bool
	errs := make(chan error, 2)
	go func() {
		errs <- g.Do(ctx, "k", func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			close(cancelled)
			<-finish // winding down, past its cancellation
			oldReturned.Store(true)
			return ctx.Err()
		})
	}()
	// Cancelled once the call runs: cancelled while it is still taking a
	// shared lock, it would end without running.
	receive(t, started, "the first call starting")
	cancel()
	receive(t, errs, "the first caller giving up")
	receive(t, cancelled, "the abandoned call's context ending")
	go func() {
		errs <- g.Do(context.Background(), "k", func(ctx context.Context) error {
			if !oldReturned.Load() {
				return errors.New("the new call ran while the abandoned one had not returned")
			}
			return nil
		})
	}()
	eventually(t, "the second caller waiting for a new call", func() bool { return g.Waiting("k") == 1 || len(errs) > 0 })
	finished()
	if err := receive(t, errs, "the second caller returning"); err != nil {
		t.Error(err)
	}
}

func (h Harness) testTimeout(t *testing.T) {
	gs, _ := h.processes(t, 1, coord.GroupConfig{Timeout: time.Millisecond})
	err := gs[0].Do(context.Background(), "k", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call past its timeout returned %v, want context.DeadlineExceeded", err)
	}
}

func (h Harness) testClose(t *testing.T) {
	gs, _ := h.processes(t, 1, coord.GroupConfig{})
	g := gs[0]
	var returned atomic.Bool
	started := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		errs <- g.Do(context.Background(), "k", func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			returned.Store(true)
			return context.Cause(ctx)
		})
	}()
	// Closed once the call runs: closed while it is still taking a shared
	// lock, it would end without running.
	receive(t, started, "the call starting")
	g.Close()
	if !returned.Load() {
		t.Error("Close returned before the running call")
	}
	if err := receive(t, errs, "the caller returning"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("the caller of a call ended by Close got %v, want ErrClosed", err)
	}
	var ran atomic.Bool
	err := g.Do(context.Background(), "k", func(context.Context) error { ran.Store(true); return nil })
	if !errors.Is(err, coord.ErrClosed) || ran.Load() {
		t.Errorf("Do after Close: %v (ran: %v), want ErrClosed without running", err, ran.Load())
	}
}

// testAcrossProcesses: a caller in another process waits for the lock and
// then runs its own call, which sees what the first one stored.
func (h Harness) testAcrossProcesses(t *testing.T) {
	gs, _ := h.processes(t, 2, coord.GroupConfig{})
	var stored atomic.Bool
	started, release := make(chan struct{}), make(chan struct{})
	errs := make(chan error, 2)
	go func() {
		errs <- gs[0].Do(context.Background(), "k", func(ctx context.Context) error {
			close(started)
			select {
			case <-release:
			case <-ctx.Done(): // the test failed and closed the Group
			}
			stored.Store(true)
			return errOutcome // not shared with the other process
		})
	}()
	receive(t, started, "the first process's call starting")
	var runs atomic.Int32
	go func() {
		errs <- gs[1].Do(context.Background(), "k", func(ctx context.Context) error {
			runs.Add(1)
			if !stored.Load() {
				return errors.New("the second process's call ran while the first held the lock")
			}
			return nil
		})
	}()
	eventually(t, "the second process's caller waiting", func() bool { return gs[1].Waiting("k") == 1 })
	close(release)
	for range 2 {
		if err := receive(t, errs, "a caller returning"); err != nil && err != errOutcome {
			t.Error(err)
		}
	}
	if r := runs.Load(); r != 1 {
		t.Errorf("the second process ran %d calls, want 1", r)
	}
}

// testDeadHolder: a process that died holding a key's lock delays the
// others until its lease expires, no longer.
func (h Harness) testDeadHolder(t *testing.T) {
	gs, locks := h.processes(t, 1, coord.GroupConfig{})
	if _, ok := h.tryLock(t, locks, "k"); !ok {
		t.Fatal("TryLock of a free key failed")
	}
	var ran atomic.Bool
	errs := make(chan error, 1)
	go func() {
		errs <- gs[0].Do(context.Background(), "k", func(ctx context.Context) error {
			ran.Store(true)
			return nil
		})
	}()
	eventually(t, "the caller waiting", func() bool { return gs[0].Waiting("k") == 1 })
	if ran.Load() {
		t.Fatal("the call ran while a dead process held its lock")
	}
	h.Advance(h.TTL + h.TTL/10)
	if err := receive(t, errs, "the call after the dead holder's lease expired"); err != nil || !ran.Load() {
		t.Errorf("Do: %v (ran: %v)", err, ran.Load())
	}
}

// testNoGoroutineLeak: once the callers have returned and the Groups are
// closed, nothing of theirs runs: not finished calls, abandoned ones, timed
// out ones, lock waits, lease renewals.
func (h Harness) testNoLeak(t *testing.T) {
	// A short lease, so that the call running until Close renews it.
	gs, _ := h.processes(t, 2, coord.GroupConfig{Lease: 30 * time.Millisecond})
	timed, _ := h.processes(t, 1, coord.GroupConfig{Timeout: time.Millisecond})
	base := runtime.NumGoroutine()

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { // finished calls, some waiting across processes
			gs[i%2].Do(context.Background(), "done", func(ctx context.Context) error { return nil })
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	for i := range 4 {
		wg.Go(func() { // abandoned calls
			gs[i%2].Do(ctx, "abandoned", func(ctx context.Context) error {
				<-ctx.Done()
				return nil
			})
		})
	}
	wg.Go(func() {
		timed[0].Do(context.Background(), "timed", func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		})
	})
	errs := make(chan error, 1)
	go func() { // running at Close
		errs <- gs[0].Do(context.Background(), "closed", func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		})
	}()
	eventually(t, "callers waiting", func() bool {
		return gs[0].Waiting("closed") == 1 && gs[0].Waiting("abandoned")+gs[1].Waiting("abandoned") > 0
	})
	cancel()
	wg.Wait()
	for _, g := range gs {
		g.Close()
	}
	receive(t, errs, "the caller of a closed Group returning")
	timed[0].Wait()

	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines running, %d before the calls:\n%s", runtime.NumGoroutine(), base, buf)
		}
		time.Sleep(time.Millisecond)
	}
}
