package cache

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sync"
	"time"
)

// The cache keeps three kinds of small, short-lived answers outside
// storage: not-found answers, answers to branch and commit queries, and
// invalidations. Each lives in a table behind one of the interfaces below.
// By default they are bounded LRUs in this process's memory (memory.go);
// replicas over one storage can share them instead through a table service
// (package coord/redis implements them on Redis), so that what one replica
// learns — a module does not exist, main is at this commit, a tag was just
// pushed — holds for all of them.
//
// The tables only keep what they are given; every rule stays in the cache:
// whether an entry is still within its TTL is decided on read against
// Config.Now, from the times in the entry, whichever table holds it. What a
// table adds is forgetting: the memory tables evict their least recently
// used entries, a shared table drops an entry once the retention given to
// Put has passed (by its own clock). The retention is the entry's TTL plus
// staleKeep, so an expired entry can still be served when the source fails
// (stale-if-error), as the memory tables do until they evict it.
//
// Tables are a saving, never a condition of serving: a table that fails is
// logged and the cache carries on as if it held nothing (it asks the
// source).

// TableKey identifies a table entry: the SHA-256 of the storage key (or
// module path) it is about, so that an entry's size does not depend on
// what a client sent, and a shared table's keys reveal no module paths.
type TableKey [sha256.Size]byte

// NotFound is a remembered not-found answer.
type NotFound struct {
	// At is when the origin said so; an invalidation after At voids it.
	At time.Time
	// Until is when it stops being served without asking again.
	Until time.Time
	// Msg is the origin's reason, at most maxNegativeMsg bytes.
	Msg string
}

// QueryAnswer is a kept answer to a branch or commit query.
type QueryAnswer struct {
	Fetched time.Time
	Body    []byte // the .info document, at most maxQueryAnswer bytes with the rest
	Version string
	Origin  string
}

// NotFoundTable holds not-found answers.
type NotFoundTable interface {
	// Get returns the answer kept under key; ok is false if there is none.
	Get(ctx context.Context, key TableKey) (nf NotFound, ok bool, err error)
	// Put keeps nf under key, replacing what was there, for at least keep
	// unless the table needs the room.
	Put(ctx context.Context, key TableKey, nf NotFound, keep time.Duration) error
	// Remove forgets key; forgetting a missing key is not an error.
	Remove(ctx context.Context, key TableKey) error
}

// QueryTable holds answers to branch and commit queries. Answers handed
// out by Get are shared: callers do not modify them.
type QueryTable interface {
	Get(ctx context.Context, key TableKey) (a QueryAnswer, ok bool, err error)
	Put(ctx context.Context, key TableKey, a QueryAnswer, keep time.Duration) error
	Remove(ctx context.Context, key TableKey) error
}

// InvalidationTable holds, per module path, the time of its latest
// invalidation.
type InvalidationTable interface {
	// Get returns the time kept under key, or the zero time.
	Get(ctx context.Context, key TableKey) (time.Time, error)
	// Put keeps at under key unless a later time is kept there already:
	// of two replicas invalidating at once, the later invalidation wins
	// whichever writes last.
	Put(ctx context.Context, key TableKey, at time.Time, keep time.Duration) error
}

// Tables are the tables a Modules keeps its small answers in. A nil field
// means a bounded table in this process's memory.
type Tables struct {
	NotFound      NotFoundTable
	Queries       QueryTable
	Invalidations InvalidationTable
}

// staleKeep is how long a table entry outlives its TTL: the window in
// which an expired not-found or query answer can still be served when the
// source fails, and in which an invalidation still forces a refetch
// rather than a stale answer refreshed in the background. It bounds a
// shared table's size, with the rate of lookups that reach the source.
const staleKeep = 24 * time.Hour

// tableLog reports table failures without flooding the log when a shared
// table is down and every request fails the same way: one line per
// tableLogEvery, counting the failures in between.
type tableLog struct {
	log *slog.Logger

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const tableLogEvery = time.Minute

// failed reports that op on table failed with err, unless ctx had ended:
// then the caller has gone and the failure is its own.
func (l *tableLog) failed(ctx context.Context, table, op string, err error) {
	if ctx.Err() != nil {
		return
	}
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < tableLogEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	l.log.Warn("cache table failed; carrying on without it", "table", table, "op", op, "err", err, "failures_not_logged", n)
}
