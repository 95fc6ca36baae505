// Package coord coordinates work on one key among concurrent callers: a
// flight (one call per key at a time, its outcome shared by the callers that
// wait for it) and a lock with a lease (held by one caller at a time, freed
// by expiry if its holder dies).
//
// The in-process implementations, Group and LocalLocks, need no external
// service. A shared lock service (Redis, for several replicas over one
// storage) implements only Locks; a Group over it keeps sharing outcomes in
// process and adds exclusion across processes. Callers hold a Flights or a
// Locks and do not know which they got. Every implementation must pass the
// compliance suite in package coordtest.
//
// In modgate, coordination saves work; it never guards correctness: storage
// writes are atomic, module files are immutable and checked before they are
// stored, and the checksum database's tree head moves by compare-and-swap
// in storage. So results travel through storage, not through coord: a
// caller in another process that waited for a flight runs its own call
// afterwards, and that call begins by looking at what storage now holds
// (lock, re-check, fetch, as athens' stash does).
package coord

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Flights runs one call per key at a time across every caller (and, with a
// Group over a shared Locks, every process): callers that arrive while a
// call for their key runs wait for it and share its outcome.
//
// fn runs detached from the caller that started it, so that a caller giving
// up does not fail the others; its context ends when every caller waiting
// for it has given up, or after the implementation's timeout. A caller
// returns when fn does or when its own ctx ends, whichever is first.
//
// Keys name what the call produces, preferably its storage key, so that the
// keys of different users of one lock service cannot collide. fn must be
// idempotent and should begin by re-checking storage: a caller in another
// process, or one arriving just after a call ended, runs its own.
type Flights interface {
	Do(ctx context.Context, key string, fn func(ctx context.Context) error) error
}

// Locks hands out exclusive leases on keys. A lease that is not renewed
// expires, so a holder that dies (a process killed, a replica partitioned
// away) frees its keys after at most one lease time.
//
// A Redis implementation maps TryLock to SET key token NX PX ttl with a
// random token, and Renew and Release to scripts that compare the token
// before PEXPIRE or DEL, so that a holder whose lease expired can neither
// extend nor free the lease of the next holder.
type Locks interface {
	// TryLock takes the lock on key for ttl, if nobody holds it. When
	// someone does, it returns ok false and no error at once.
	TryLock(ctx context.Context, key string, ttl time.Duration) (l Lease, ok bool, err error)
}

// Lease is one holding of a lock.
type Lease interface {
	// Renew extends the lease to ttl from now. It returns ErrLeaseLost if
	// the lease has expired (whether or not someone took the lock since).
	Renew(ctx context.Context, ttl time.Duration) error
	// Release frees the lock. It returns ErrLeaseLost, and frees nothing,
	// if the lease had expired: the work it guarded may have overlapped
	// with another holder's.
	Release(ctx context.Context) error
}

var (
	// ErrLeaseLost is returned by Renew and Release of a lease that expired.
	ErrLeaseLost = errors.New("coord: lease expired")
	// ErrClosed is returned by calls started after a Group was closed, and
	// is the cause of the contexts of calls that Close ended.
	ErrClosed = errors.New("coord: closed")
	// errAbandoned is the cause of a call's context when every caller
	// waiting for it has gone.
	errAbandoned = errors.New("coord: every caller gave up waiting")
)

// Polling bounds of Lock: a waiter asks again after minPoll, then twice as
// long each time up to maxPoll. maxPoll is what a waiter in another process
// may lose after the holder releases; a lock service that can notify
// waiters of a release (Redis pub/sub) would let Lock wait for that
// instead, through an optional interface checked here.
const (
	minPoll = 5 * time.Millisecond
	maxPoll = 500 * time.Millisecond
)

// Lock takes the lock on key for ttl, waiting while someone else holds it,
// until ctx ends.
func Lock(ctx context.Context, l Locks, key string, ttl time.Duration) (Lease, error) {
	wait := minPoll
	for {
		lease, ok, err := l.TryLock(ctx, key, ttl)
		if err != nil {
			return nil, err
		}
		if ok {
			return lease, nil
		}
		// Jitter, so that waiters in several processes do not ask in step.
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxPoll)
	}
}
