package cache

import (
	"context"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// invalidations remembers, per module path, when its mutable answers were
// last declared out of date by someone who knows (a git server's push
// event): an answer fetched before that time is not served as fresh, and
// a not-found answer remembered before it is not served at all. Kept in a
// table like the other small answers (tables.go); an invalidation the
// table forgot (evicted, expired, lost in a restart) only leaves the
// answers to their TTLs.
type invalidations struct {
	t    InvalidationTable
	keep time.Duration // max(ListTTL, NegativeTTL) + staleKeep
	log  *tableLog
}

const defaultMaxInvalidations = 1 << 14

// invalidationTimeout bounds the write of an invalidation, which has no
// request context of its own.
const invalidationTimeout = 10 * time.Second

// memInvalidations is the in-memory InvalidationTable.
type memInvalidations struct {
	lru *lru.Cache[memKey, time.Time]
}

func newMemInvalidations(size int) *memInvalidations {
	c, err := lru.New[memKey, time.Time](size)
	if err != nil {
		panic(err)
	}
	return &memInvalidations{lru: c}
}

func (t *memInvalidations) Get(_ context.Context, key memKey) (time.Time, error) {
	at, _ := t.lru.Get(key)
	return at, nil
}

func (t *memInvalidations) Put(_ context.Context, key memKey, at time.Time, _ time.Duration) error {
	// Check and add are not one step: of two invalidations at once, the
	// earlier may win; both are within moments of the same push.
	if old, ok := t.lru.Peek(key); ok && old.After(at) {
		return nil
	}
	t.lru.Add(key, at)
	return nil
}

// since returns when path was last invalidated, or the zero time.
func (iv invalidations) since(ctx context.Context, path string) time.Time {
	at, err := iv.t.Get(ctx, newMemKey(path))
	if err != nil {
		iv.log.failed(ctx, "invalidations", "get", err)
		return time.Time{}
	}
	return at
}

// Invalidate makes every mutable answer kept about module path so far —
// its @v/list, @latest, branch and commit queries, and the not-found
// answers about it or its versions — unusable as a fresh answer: the next
// request for any of them asks the source and waits for it (an answer
// kept from before is still served if the source then fails:
// stale-if-error). Stored module files are immutable and stay. With shared
// tables (Config.Tables), this holds for every replica sharing them.
//
// A fetch that started before Invalidate counts as before it, whenever it
// ends, so the caller should first bring the source up to date (fetch the
// git mirror) and then invalidate.
func (m *Modules) Invalidate(path string) {
	ctx, cancel := context.WithTimeout(context.Background(), invalidationTimeout)
	defer cancel()
	if err := m.invalid.t.Put(ctx, newMemKey(path), m.now(), m.invalid.keep); err != nil {
		// Not throttled: invalidations are rare, and this one is lost.
		m.log.Error("cannot record invalidation; the module's answers keep their TTLs", "module", path, "err", err)
	}
}

// outdated reports whether an answer about path fetched at fetched was
// invalidated since.
func (m *Modules) outdated(ctx context.Context, path string, fetched time.Time) bool {
	inv := m.invalid.since(ctx, path)
	return !inv.IsZero() && fetched.Before(inv)
}
