package cache

import (
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

// memKey is the key of an in-memory table: a hash of the storage key, so
// that an entry's size does not depend on the length of the module path the
// client sent.
type memKey [sha256.Size]byte

func newMemKey(key string) memKey { return sha256.Sum256([]byte(key)) }

// negativeCache remembers that something was not found, so that a burst of
// requests for a missing module, version, list or query reaches the source
// once per --negative-ttl.
type negativeCache struct {
	lru *lru.Cache[memKey, negEntry]
}

type negEntry struct {
	at    time.Time // when the origin said so
	until time.Time
	msg   string // the origin's reason, at most maxNegativeMsg bytes
}

func newNegativeCache(size int) negativeCache {
	c, err := lru.New[memKey, negEntry](size)
	if err != nil {
		panic(err) // size is a positive constant or a test's choice
	}
	return negativeCache{lru: c}
}

// get returns whether the not-found answer remembered for key is still
// within its TTL at now and was not given before notBefore (an
// invalidation), and that answer. An expired answer is returned too (fresh
// serves it when the source fails) until it is replaced or evicted.
func (n negativeCache) get(key memKey, now, notBefore time.Time) (live bool, err error) {
	e, ok := n.lru.Get(key)
	if !ok {
		return false, nil
	}
	return now.Before(e.until) && !e.at.Before(notBefore), &source.NotFoundError{Msg: e.msg}
}

// put remembers err, given by the origin at at, until until.
func (n negativeCache) put(key memKey, err error, at, until time.Time) {
	msg := err.Error()
	if msg == "" {
		msg = "not found"
	}
	if len(msg) > maxNegativeMsg {
		msg = strings.ToValidUTF8(msg[:maxNegativeMsg], "") + "..."
	}
	n.lru.Add(key, negEntry{at: at, until: until, msg: msg})
}

func (n negativeCache) remove(key memKey) { n.lru.Remove(key) }

// queryCache holds answers to branch and commit queries (@v/main.info).
// Entries are never modified once added, only replaced, so readers need no
// lock beyond the LRU's own.
type queryCache struct {
	lru *lru.Cache[memKey, *entry]
}

func newQueryCache(size int) queryCache {
	c, err := lru.New[memKey, *entry](size)
	if err != nil {
		panic(err)
	}
	return queryCache{lru: c}
}
