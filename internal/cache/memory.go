package cache

import (
	"context"
	"crypto/sha256"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/modgate/modgate/internal/source"
)

// Anyone who can reach modgate chooses the paths and queries it is asked
// about, so what modgate learns from them must not grow without bound: the
// answers that do not name a real module (not-found answers) and the answers
// to free-form queries (branch names, commit prefixes) live in bounded
// in-memory tables, never in storage. Storage holds only module files and
// the lists and @latest of modules that exist, bounded by real modules.
//
// The tables are golang-lru/v2 LRUs with the expiry checked on read against
// Config.Now. Not golang-lru's expirable LRU: in v2.0.7 its cleanup goroutine
// can never be stopped (one would leak per Modules, ticking forever), and it
// reads the wall clock, which the freshness rules and their tests do not.
// Expired entries cost nothing but their slot, and the LRU bounds the slots.

// Default sizes of the in-memory tables. Their worst case, with keys and
// messages at their caps, is about 64k × 0.7 KiB ≈ 45 MiB for not-found
// answers, 8k × 4.5 KiB ≈ 36 MiB for queries and 16k × 0.2 KiB ≈ 3 MiB for
// client rate limiters; typical entries are a fraction of that.
const (
	defaultMaxNegative = 1 << 16
	defaultMaxQueries  = 1 << 13
	defaultMaxClients  = 1 << 14
)

// Caps on what one table entry may hold, so that the bound on entries is a
// bound on memory whatever a client or an upstream sends.
const (
	maxNegativeMsg  = 512     // bytes of an origin's not-found reason kept
	maxQueryAnswer  = 4 << 10 // larger query answers are served but not kept
	maxClientIDSize = 64      // longer client ids are hashed (see clientID)
)

// limits are the sizes of the in-memory tables.
type limits struct {
	negative, queries, clients int
}

var defaultLimits = limits{defaultMaxNegative, defaultMaxQueries, defaultMaxClients}

// memKey is the key of a table: a hash of the storage key, so that an
// entry's size does not depend on the length of the module path the client
// sent.
type memKey = TableKey

func newMemKey(key string) memKey { return sha256.Sum256([]byte(key)) }

// memTable is an in-memory table (NotFoundTable, QueryTable): a bounded
// LRU. Values are never modified once added, only replaced, so readers
// need no lock beyond the LRU's own. keep is for shared tables, which
// delete what nobody reads; the LRU bounds this one.
type memTable[V any] struct {
	lru *lru.Cache[memKey, V]
}

func newMemTable[V any](size int) *memTable[V] {
	c, err := lru.New[memKey, V](size)
	if err != nil {
		panic(err) // size is a positive constant or a test's choice
	}
	return &memTable[V]{lru: c}
}

func (t *memTable[V]) Get(_ context.Context, key memKey) (V, bool, error) {
	v, ok := t.lru.Get(key)
	return v, ok, nil
}

func (t *memTable[V]) Put(_ context.Context, key memKey, v V, _ time.Duration) error {
	t.lru.Add(key, v)
	return nil
}

func (t *memTable[V]) Remove(_ context.Context, key memKey) error {
	t.lru.Remove(key)
	return nil
}

// negativeCache remembers that something was not found, so that a burst of
// requests for a missing module, version, list or query reaches the source
// once per --negative-ttl.
type negativeCache struct {
	t   NotFoundTable
	log *tableLog
}

// get returns whether the not-found answer remembered for key is still
// within its TTL at now and was not given before notBefore (an
// invalidation), and that answer. An expired answer is returned too (fresh
// serves it when the source fails) until the table forgets it.
func (n negativeCache) get(ctx context.Context, key memKey, now, notBefore time.Time) (live bool, err error) {
	e, ok, terr := n.t.Get(ctx, key)
	if terr != nil {
		n.log.failed(ctx, "not-found", "get", terr)
		return false, nil
	}
	if !ok {
		return false, nil
	}
	return now.Before(e.Until) && !e.At.Before(notBefore), &source.NotFoundError{Msg: e.Msg}
}

// put remembers err, given by the origin at at, until until.
func (n negativeCache) put(ctx context.Context, key memKey, err error, at, until time.Time) {
	msg := err.Error()
	if msg == "" {
		msg = "not found"
	}
	if len(msg) > maxNegativeMsg {
		msg = strings.ToValidUTF8(msg[:maxNegativeMsg], "") + "..."
	}
	keep := max(until.Sub(at), 0) + staleKeep
	if terr := n.t.Put(ctx, key, NotFound{At: at, Until: until, Msg: msg}, keep); terr != nil {
		n.log.failed(ctx, "not-found", "put", terr)
	}
}

func (n negativeCache) remove(ctx context.Context, key memKey) {
	if err := n.t.Remove(ctx, key); err != nil {
		n.log.failed(ctx, "not-found", "remove", err)
	}
}

// queryCache holds answers to branch and commit queries (@v/main.info).
type queryCache struct {
	t    QueryTable
	keep time.Duration // ListTTL + staleKeep
	log  *tableLog
}

// get returns the answer kept for key, or nil.
func (q queryCache) get(ctx context.Context, key memKey) *entry {
	a, ok, err := q.t.Get(ctx, key)
	if err != nil {
		q.log.failed(ctx, "queries", "get", err)
		return nil
	}
	if !ok {
		return nil
	}
	return &entry{Fetched: a.Fetched, Body: a.Body, Version: a.Version, Origin: a.Origin}
}

// put keeps e under key, unless it is too large to be worth a slot: then
// it is served but not kept, and an older answer is forgotten.
func (q queryCache) put(ctx context.Context, key memKey, e *entry) {
	if len(e.Body)+len(e.Version)+len(e.Origin) > maxQueryAnswer {
		q.remove(ctx, key)
		return
	}
	a := QueryAnswer{Fetched: e.Fetched, Body: e.Body, Version: e.Version, Origin: e.Origin}
	if err := q.t.Put(ctx, key, a, q.keep); err != nil {
		q.log.failed(ctx, "queries", "put", err)
	}
}

func (q queryCache) remove(ctx context.Context, key memKey) {
	if err := q.t.Remove(ctx, key); err != nil {
		q.log.failed(ctx, "queries", "remove", err)
	}
}
