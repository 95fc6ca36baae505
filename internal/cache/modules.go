// Package cache answers GOPROXY questions from storage, fetching from a
// source on a miss. It owns the rules of freshness: module files of a
// canonical version are immutable and kept forever; lists, @latest and
// branch/commit queries are cached with a TTL, refreshed in the background
// and served stale when the source fails. Concurrent identical misses share
// one fetch, and a stale answer is refreshed once however many ask for it
// (package coord).
//
// Modules is a protocol.Modules: the HTTP handler, and every wrapper in
// front of the cache, asks it through that interface. Its answers say
// where they came from (protocol.Provenance): stored or fetched for this
// request, from which origin of the chain, when, and a go.mod's or zip's
// h1: hash.
//
// What clients can ask for is unbounded, so what the cache keeps must not
// follow it: not-found answers and branch/commit query answers live in
// bounded memory only (memory.go), storage holds module files and the lists
// and @latest of modules that exist, and lookups that go to the source are
// rate-limited per client (limit.go).
package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/modgate/modgate/internal/coord"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
)

// Config wires a Modules.
type Config struct {
	Store  store.Store
	Source source.Source
	// ScratchDir holds zips while they are downloaded and checked, unless
	// the store is a store.FilePutter, whose staging directory is used.
	ScratchDir string
	// ListTTL is how long mutable answers are fresh.
	ListTTL time.Duration
	// NegativeTTL is how long not-found answers are cached (0: not at all).
	// They are kept in memory only, in a bounded table.
	NegativeTTL time.Duration
	// UpstreamRate limits lookups that must go to the source, per client
	// (see protocol.WithClient), in lookups per second; 0 means unlimited.
	// UpstreamBurst is the bucket size: how many such lookups a client may
	// make at once (at least 1).
	UpstreamRate  float64
	UpstreamBurst int
	// FetchTimeout bounds one fetch from the source.
	FetchTimeout time.Duration
	Logger       *slog.Logger
	// Verifier, if set, checks every fetched go.mod and zip before it is
	// stored (a checksum database).
	Verifier Verifier
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Locks hands out the lease that lets one background refresh of a
	// stored list or @latest run at a time; nil means in-process locks
	// (coord.LocalLocks). A lock service shared by replicas over one
	// storage makes it one refresh among all of them.
	Locks coord.Locks
	// Tables hold not-found answers, query answers and invalidations;
	// nil fields mean bounded tables in this process's memory. Tables
	// shared by replicas (package coord/redis) share what one replica
	// learns with all of them (tables.go).
	Tables Tables
	// SharedFlights makes every fetch hold Locks' lock on its storage key
	// while it runs, renewed every third of Lease: with replicas over one
	// storage and one lock service, one replica fetches a file while the
	// others wait for the lock and then find it stored. Off, single
	// flights are per process.
	SharedFlights bool
	// Lease is the lock time of shared flights (coord.DefaultLease when
	// zero): a replica that dies mid-fetch delays the others this long.
	Lease time.Duration
}

// Verifier checks the h1: hash of a module's zip, or of its go.mod when
// gomod is set. A non-nil error means the file must not be stored or served.
type Verifier interface {
	Verify(ctx context.Context, path, version string, gomod bool, h1 string) error
}

// prefetcher is implemented by verifiers that can start their work for a
// version before its files have arrived.
type prefetcher interface {
	Prefetch(path, version string)
}

// skipper is implemented by verifiers that exempt some paths from checking
// (--nosumdb patterns, private routes). Verify accepts every file of such
// a path whatever its hash, so a zip of it is stored and served before its
// hash is known, as without a verifier (see hasher.go); Verify is still
// called, with an empty hash, so that the verifier accounts for what it
// skipped.
type skipper interface {
	Skips(path string) bool
}

// maxBackground bounds the background refreshes running at once in this
// process. A stale hit that finds them all busy is served stale without
// starting one; a later hit on the same key tries again.
const maxBackground = 64

// refreshLease is how long the lease of a background refresh lasts: longer
// than the refresh itself (bounded by FetchTimeout), so that it expires on
// its own only when its holder died; it is released when the refresh ends.
func refreshLease(fetchTimeout time.Duration) time.Duration { return fetchTimeout + time.Minute }

// releaseTimeout bounds the release of a refresh lease, whose refresh's
// context may have ended.
const releaseTimeout = 10 * time.Second

// Modules is the module cache, the protocol.Modules that every wrapper
// ends at.
type Modules struct {
	cfg Config
	log *slog.Logger
	// flights runs one fetch per storage key at a time, its result shared
	// by the requests that wait for it. Its calls are bounded by
	// FetchTimeout and ended by Close, which waits for them: nothing
	// writes to storage once Close has returned.
	flights *coord.Group
	// neg remembers not-found answers (in a bounded or expiring table).
	neg negativeCache
	// queries holds answers to branch and commit queries (in a bounded or
	// expiring table): their keys are chosen by clients, so storing them
	// would let anyone grow storage without bound.
	queries queryCache
	// invalid holds the per-module invalidations (Invalidate).
	invalid invalidations
	limit   *limiter // nil: lookups are not rate-limited
	// memLocks hold the refresh leases of answers kept in this process's
	// memory (queries): a lock service shared by replicas (cfg.Locks) must
	// not stop one replica from refreshing its own copy.
	memLocks coord.LocalLocks
	// bgSlots bounds the background refreshes of this process: at most
	// maxBackground at once.
	bgSlots chan struct{}
	// hasher hashes, in the background, the zips stored without a
	// .ziphash because nothing verifies them (hasher.go).
	hasher *zipHasher

	// bg tracks background refreshes so Close can wait for them; closed,
	// under bgMu, stops new ones from starting once Close has begun.
	bgMu     sync.Mutex
	closed   bool
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

var _ protocol.Modules = (*Modules)(nil)

// New returns a cache over cfg.Store and cfg.Source.
func New(cfg Config) *Modules {
	return newModules(cfg, defaultLimits)
}

func newModules(cfg Config, lim limits) *Modules {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 10 * time.Minute
	}
	if cfg.Locks == nil {
		cfg.Locks = &coord.LocalLocks{}
	}
	tables := cfg.Tables
	if tables.NotFound == nil {
		tables.NotFound = newMemTable[NotFound](lim.negative)
	}
	if tables.Queries == nil {
		tables.Queries = newMemTable[QueryAnswer](lim.queries)
	}
	if tables.Invalidations == nil {
		tables.Invalidations = newMemInvalidations(defaultMaxInvalidations)
	}
	tlog := &tableLog{log: cfg.Logger}
	m := &Modules{cfg: cfg, log: cfg.Logger,
		flights: coord.NewGroup(flightConfig(cfg)),
		neg:     negativeCache{t: tables.NotFound, log: tlog},
		queries: queryCache{t: tables.Queries, keep: cfg.ListTTL + staleKeep, log: tlog},
		invalid: invalidations{t: tables.Invalidations, keep: max(cfg.ListTTL, cfg.NegativeTTL) + staleKeep, log: tlog},
		bgSlots: make(chan struct{}, maxBackground),
	}
	m.limit = newLimiter(cfg.UpstreamRate, cfg.UpstreamBurst, lim.clients, m.now)
	m.bgCtx, m.bgCancel = context.WithCancel(context.Background())
	m.hasher = newZipHasher(m)
	return m
}

// flightConfig is the configuration of the cache's single flights.
func flightConfig(cfg Config) coord.GroupConfig {
	g := coord.GroupConfig{Timeout: cfg.FetchTimeout, Logger: cfg.Logger, KeepAbandoned: true}
	if cfg.SharedFlights {
		g.Locks, g.Lease = cfg.Locks, cfg.Lease
	}
	return g
}

// Close stops background refreshes, fetches and zip hashing, and waits for
// them to end. Requests waiting for a fetch then fail; fetches asked for
// later fail at once. Zips still waiting for their hash are hashed when
// the hash is asked for.
func (m *Modules) Close() {
	m.bgMu.Lock()
	m.closed = true
	m.bgMu.Unlock()
	m.bgCancel()
	m.flights.Close()
	m.bg.Wait()
	m.hasher.stop() // after the fetches, which queue its jobs
}

func (m *Modules) now() time.Time {
	if m.cfg.Now != nil {
		return m.cfg.Now()
	}
	return time.Now()
}

// background runs fn detached from any request, bounded by FetchTimeout,
// unless maxBackground functions are running already or the cache is
// closed: then it reports false and does nothing.
func (m *Modules) background(fn func(ctx context.Context)) bool {
	select {
	case m.bgSlots <- struct{}{}:
	default:
		return false
	}
	m.bgMu.Lock()
	if m.closed {
		m.bgMu.Unlock()
		<-m.bgSlots
		return false
	}
	m.bg.Add(1) // not once Close waits: Add and Wait must not race
	m.bgMu.Unlock()
	go func() {
		defer func() { <-m.bgSlots; m.bg.Done() }()
		ctx, cancel := context.WithTimeout(m.bgCtx, m.cfg.FetchTimeout)
		defer cancel()
		fn(ctx)
	}()
	return true
}

// errClosed fails fetches asked for after Close.
var errClosed = errors.New("modgate is shutting down; try again")

// flight runs fn once for all concurrent callers of key in this process
// (m.flights) and gives each caller its result, which they share and must
// not modify. key is the storage key the fetch fills: module files and
// mutable answers have different keys (store.VersionKey, store.MetaKey).
//
// The fetch runs detached from its callers (keeping their context's values)
// and is not given up when they are (coord.GroupConfig.KeepAbandoned): a
// client that hangs up during a long zip download wastes nothing, as the
// file is stored for the next request, and the clients that joined
// meanwhile still get it. The fetch ends when fn returns, at FetchTimeout
// (the Group's timeout) or at Close; each caller stops waiting when its own
// ctx ends.
func flight[T any](ctx context.Context, m *Modules, key string, fn func(context.Context) (T, error)) (T, error) {
	v, err := coord.Shared(ctx, m.flights, key, fn)
	if errors.Is(err, coord.ErrClosed) {
		err = errClosed
	}
	return v, err
}

func observeFetch(kind string, start time.Time, err error) {
	metrics.UpstreamDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	outcome := "ok"
	var inv *protocol.InvalidError
	switch {
	case err == nil:
	case errors.Is(err, source.ErrNotFound):
		outcome = "not_found"
	case errors.As(err, &inv):
		outcome = "invalid"
	default:
		outcome = "error"
	}
	metrics.UpstreamFetches.WithLabelValues(kind, outcome).Inc()
}
