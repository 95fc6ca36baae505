package cache

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// invalidations remembers, per module path, when its mutable answers were
// last declared out of date by someone who knows (a git server's push
// event): an answer fetched before that time is not served as fresh, and
// a not-found answer remembered before it is not served at all. Bounded
// like the other in-memory tables; an invalidation evicted or lost in a
// restart only leaves the answers to their TTLs.
type invalidations struct {
	lru *lru.Cache[string, time.Time]
}

const defaultMaxInvalidations = 1 << 14

func newInvalidations(size int) invalidations {
	c, err := lru.New[string, time.Time](size)
	if err != nil {
		panic(err)
	}
	return invalidations{lru: c}
}

// since returns when path was last invalidated, or the zero time.
func (iv invalidations) since(path string) time.Time {
	t, _ := iv.lru.Get(path)
	return t
}

// Invalidate makes every mutable answer kept about module path so far —
// its @v/list, @latest, branch and commit queries, and the not-found
// answers about it or its versions — unusable as a fresh answer: the next
// request for any of them asks the source and waits for it (an answer
// kept from before is still served if the source then fails:
// stale-if-error). Stored module files are immutable and stay.
//
// A fetch that started before Invalidate counts as before it, whenever it
// ends, so the caller should first bring the source up to date (fetch the
// git mirror) and then invalidate.
func (m *Modules) Invalidate(path string) {
	m.invalid.lru.Add(path, m.now())
}

// outdated reports whether an answer about path fetched at fetched was
// invalidated since.
func (m *Modules) outdated(path string, fetched time.Time) bool {
	inv := m.invalid.since(path)
	return !inv.IsZero() && fetched.Before(inv)
}
