package coord

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// GroupConfig configures a Group.
type GroupConfig struct {
	// Timeout bounds each call from its start, including any wait for the
	// previous call of its key or for a lock. Zero: no bound; a call ends
	// when fn returns, when its callers give up, or at Close.
	Timeout time.Duration
	// Locks, if set, makes each call hold its key's lock while fn runs, so
	// that calls for one key never overlap across the processes sharing
	// the lock service either. Callers in other processes do not share the
	// outcome: they run their own call once the lock is free.
	Locks Locks
	// Lease is how long a lock is held without renewal; a running call
	// renews it every Lease/3. Default DefaultLease.
	Lease time.Duration
	// Logger receives failures of the lock service (default slog.Default).
	Logger *slog.Logger
	// KeepAbandoned lets a call that every caller has left run to its end
	// (bounded by Timeout and Close), and later callers of its key join
	// it, instead of cancelling it. For work whose result is stored, such
	// as a download another client will ask for again.
	KeepAbandoned bool
}

// DefaultLease is the lease time of a Group's locks: a process that dies
// holding one delays the others by at most this long.
const DefaultLease = 30 * time.Second

// releaseTimeout bounds the release of a lock after its call, whose own
// context may have ended.
const releaseTimeout = 10 * time.Second

// Group is the in-process Flights: one goroutine per running call, shared
// by every caller of its key in this process, optionally holding a lock of
// a shared Locks. Make it with NewGroup.
//
// Calls of one key never overlap, even when a call every caller abandoned
// is still winding down: the next call for its key starts when it has
// returned.
type Group struct {
	timeout       time.Duration
	keepAbandoned bool
	locks         Locks
	lease         time.Duration
	log           *slog.Logger

	mu      sync.Mutex
	calls   map[string]*call // the latest call of each key, until it returns
	closed  bool
	running int       // calls whose goroutine has not finished
	idle    sync.Cond // signalled when running drops to 0
}

// call is one run of fn for a key.
type call struct {
	done      chan struct{} // closed when val and err are set
	val       any
	err       error
	waiters   int  // callers waiting for done
	abandoned bool // every caller gave up: ctx cancelled, nobody may join
	cancel    context.CancelCauseFunc
}

var _ Flights = (*Group)(nil)

// NewGroup returns a Group. Close it to end its calls.
func NewGroup(cfg GroupConfig) *Group {
	g := &Group{timeout: cfg.Timeout, keepAbandoned: cfg.KeepAbandoned, locks: cfg.Locks, lease: cfg.Lease, log: cfg.Logger,
		calls: map[string]*call{}}
	if g.lease <= 0 {
		g.lease = DefaultLease
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	g.idle.L = &g.mu
	return g
}

// Do runs fn as key's call, or waits for the one running; see Flights.
// After Close, it returns ErrClosed.
func (g *Group) Do(ctx context.Context, key string, fn func(ctx context.Context) error) error {
	_, err := g.do(ctx, key, func(ctx context.Context) (any, error) { return nil, fn(ctx) })
	return err
}

// Shared is Do for a call with a result: every caller in this process that
// shared the call gets its value. Callers in other processes (a Group with
// Locks) run their own call, so a value that must reach them goes through
// storage. Every caller of one key must use the same T.
func Shared[T any](ctx context.Context, g *Group, key string, fn func(ctx context.Context) (T, error)) (T, error) {
	v, err := g.do(ctx, key, func(ctx context.Context) (any, error) { return fn(ctx) })
	t, _ := v.(T)
	return t, err
}

func (g *Group) do(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // nobody would wait for a call started now
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, ErrClosed
	}
	c := g.calls[key]
	if c == nil || c.abandoned {
		var prev <-chan struct{}
		if c != nil {
			prev = c.done
		}
		c = g.start(ctx, key, prev, fn)
		g.calls[key] = c
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 && !c.abandoned && !g.keepAbandoned {
			// Nobody wants the answer any more: stop working for it, and
			// let the next caller start afresh rather than join a call
			// that is ending.
			c.abandoned = true
			c.cancel(errAbandoned)
		}
		g.mu.Unlock()
		return nil, ctx.Err()
	}
}

// start starts key's call, after the call prev (if any) has returned.
// g.mu is held.
func (g *Group) start(ctx context.Context, key string, prev <-chan struct{}, fn func(context.Context) (any, error)) *call {
	// Detached from the caller that happens to start it, but keeping its
	// values (request-scoped loggers, origins).
	fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	c := &call{done: make(chan struct{}), cancel: cancel}
	g.running++
	go func() {
		ctx := fctx
		if g.timeout > 0 {
			var cancelTimeout context.CancelFunc
			ctx, cancelTimeout = context.WithTimeout(ctx, g.timeout)
			defer cancelTimeout()
		}
		c.val, c.err = g.run(ctx, key, prev, fn)
		cancel(nil)
		g.mu.Lock()
		if g.calls[key] == c {
			delete(g.calls, key)
		}
		g.running--
		if g.running == 0 {
			g.idle.Broadcast()
		}
		g.mu.Unlock()
		close(c.done)
	}()
	return c
}

// run waits for the previous call of key and for key's lock, then runs fn.
func (g *Group) run(ctx context.Context, key string, prev <-chan struct{}, fn func(context.Context) (any, error)) (any, error) {
	if prev != nil {
		select {
		case <-prev:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	if g.locks == nil {
		return fn(ctx)
	}
	lease, err := Lock(ctx, g.locks, key, g.lease)
	switch {
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case err != nil:
		// Coordination saves work; it must not stop it: without the lock
		// service, processes may fetch the same thing at once, and storage
		// keeps one copy.
		g.log.Warn("lock service failed; running without exclusion across processes", "key", key, "err", err)
		return fn(ctx)
	}
	stopRenewing := g.keep(ctx, key, lease)
	v, err := fn(ctx)
	stopRenewing()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	switch rerr := lease.Release(rctx); {
	case errors.Is(rerr, ErrLeaseLost):
		g.log.Warn("lock lease expired while its call ran; calls in other processes may have overlapped", "key", key)
	case rerr != nil:
		g.log.Warn("cannot release lock; it frees itself when its lease expires", "key", key, "lease", g.lease, "err", rerr)
	}
	return v, err
}

// keep renews lease every g.lease/3 until the returned function is called.
func (g *Group) keep(ctx context.Context, key string, lease Lease) (stop func()) {
	quit, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(g.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			switch err := lease.Renew(ctx, g.lease); {
			case errors.Is(err, ErrLeaseLost):
				g.log.Warn("lock lease expired while its call ran; calls in other processes may overlap", "key", key)
				return
			case err != nil && ctx.Err() == nil:
				g.log.Warn("cannot renew lock lease; trying again", "key", key, "err", err)
			}
		}
	}()
	return func() {
		close(quit)
		<-ended
	}
}

// Waiting returns how many callers in this process wait for key's running
// call (0 when none runs).
func (g *Group) Waiting(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.calls[key]; c != nil && !c.abandoned {
		return c.waiters
	}
	return 0
}

// Wait returns once no call is running, including calls every caller has
// abandoned and that are still winding down. Calls may start again after.
func (g *Group) Wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.running > 0 {
		g.idle.Wait()
	}
}

// Close ends the running calls (their contexts end with cause ErrClosed)
// and waits for them to return; calls asked for later fail with ErrClosed.
// Once Close has returned, no fn of g runs.
func (g *Group) Close() error {
	g.mu.Lock()
	g.closed = true
	// Calls no longer in the table were abandoned, and are ending already.
	for _, c := range g.calls {
		c.cancel(ErrClosed)
	}
	g.mu.Unlock()
	g.Wait()
	return nil
}
