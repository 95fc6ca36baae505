package sumdb

import (
	"context"
	"sync"
	"time"
)

// flightGroup runs one call per key at a time and shares its result with
// every caller that asks meanwhile, like singleflight, with one difference:
// the call runs detached from any one caller, so that the first caller
// hanging up does not fail the others, and it is cancelled as soon as the
// last caller has given up, so that it does not outlive its callers.
type flightGroup[T any] struct {
	// spawn starts a call in the background (so that the owner can wait
	// for the calls still running when it closes).
	spawn func(func())
	// joined, if set, is told each time a caller starts waiting (tests).
	joined func(key string)

	mu    sync.Mutex
	calls map[string]*flightCall[T]
}

type flightCall[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do returns the result of fn for key, started now or already running. fn
// gets a context that ends after timeout, or when every caller has gone.
func (g *flightGroup[T]) do(ctx context.Context, key string, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	g.mu.Lock()
	c := g.calls[key]
	if c == nil {
		fctx, cancel := context.WithTimeout(context.Background(), timeout)
		c = &flightCall[T]{done: make(chan struct{}), cancel: cancel}
		if g.calls == nil {
			g.calls = map[string]*flightCall[T]{}
		}
		g.calls[key] = c
		g.spawn(func() {
			c.val, c.err = fn(fctx)
			cancel()
			g.mu.Lock()
			if g.calls[key] == c {
				delete(g.calls, key)
			}
			g.mu.Unlock()
			close(c.done)
		})
	}
	c.waiters++
	g.mu.Unlock()
	if g.joined != nil {
		g.joined(key)
	}

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			// Nobody wants the answer any more: stop asking, and let the
			// next caller start afresh rather than join a cancelled call.
			c.cancel()
			if g.calls[key] == c {
				delete(g.calls, key)
			}
		}
		g.mu.Unlock()
		var zero T
		return zero, ctx.Err()
	}
}

// background counts goroutines so that Close can wait for them.
type background struct {
	mu   sync.Mutex
	n    int
	idle *sync.Cond
}

func (b *background) start(fn func()) {
	b.mu.Lock()
	if b.idle == nil {
		b.idle = sync.NewCond(&b.mu)
	}
	b.n++
	b.mu.Unlock()
	go func() {
		defer func() {
			b.mu.Lock()
			b.n--
			if b.n == 0 {
				b.idle.Broadcast()
			}
			b.mu.Unlock()
		}()
		fn()
	}()
}

func (b *background) wait() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.n > 0 {
		b.idle.Wait()
	}
}
