package coord

import (
	"context"
	"errors"
	"sync"
	"time"
)

// LocalLocks is the in-process Locks: a table of keys and lease expiry
// times. The zero value is ready to use.
type LocalLocks struct {
	// Now is the clock leases expire by; nil means time.Now. Set it before
	// the first use (tests advance a fake clock).
	Now func() time.Time

	mu      sync.Mutex
	held    map[string]localHold
	token   uint64 // last token handed out
	sweepAt int    // table size at which expired entries are removed
}

type localHold struct {
	token   uint64
	expires time.Time
}

// localLease is a lease of LocalLocks, identified by its token as a Redis
// lease would be.
type localLease struct {
	l     *LocalLocks
	key   string
	token uint64
}

var _ Locks = (*LocalLocks)(nil)

var errBadTTL = errors.New("coord: lease time must be positive")

func (l *LocalLocks) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// TryLock implements Locks.
func (l *LocalLocks) TryLock(ctx context.Context, key string, ttl time.Duration) (Lease, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if ttl <= 0 {
		return nil, false, errBadTTL
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.held[key]; ok && now.Before(h.expires) {
		return nil, false, nil
	}
	if l.held == nil {
		l.held = map[string]localHold{}
	}
	l.sweep(now)
	l.token++
	l.held[key] = localHold{token: l.token, expires: now.Add(ttl)}
	return &localLease{l: l, key: key, token: l.token}, true, nil
}

// sweep removes expired entries once the table has doubled since the last
// sweep: only holders that never released leave them, but they must not
// accumulate. l.mu is held.
func (l *LocalLocks) sweep(now time.Time) {
	if len(l.held) < l.sweepAt {
		return
	}
	for k, h := range l.held {
		if !now.Before(h.expires) {
			delete(l.held, k)
		}
	}
	l.sweepAt = 2*len(l.held) + 64
}

// Renew implements Lease.
func (e *localLease) Renew(ctx context.Context, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		return errBadTTL
	}
	l := e.l
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.held[e.key]
	if !ok || h.token != e.token || !now.Before(h.expires) {
		return ErrLeaseLost
	}
	l.held[e.key] = localHold{token: e.token, expires: now.Add(ttl)}
	return nil
}

// Release implements Lease.
func (e *localLease) Release(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := e.l
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.held[e.key]
	if !ok || h.token != e.token {
		return ErrLeaseLost
	}
	delete(l.held, e.key)
	if !now.Before(h.expires) {
		return ErrLeaseLost
	}
	return nil
}
