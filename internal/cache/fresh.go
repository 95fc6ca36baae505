package cache

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/modgate/modgate/internal/coord"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
)

// entry is a cached answer to a mutable question (@v/list, @latest, a
// branch or commit query). Lists and @latest are kept in storage, so that
// they survive restarts and are shared by replicas; query answers are kept
// in memory (queryCache).
type entry struct {
	Fetched time.Time `json:"fetched"`
	// NotFound is set in negative entries stored by modgate versions before
	// not-found answers moved to memory. Such entries are ignored, and
	// deleted when the source confirms the not-found answer.
	NotFound string `json:"not_found,omitempty"`
	Body     []byte `json:"body,omitempty"`
	// Version is the version a @latest or query answer names (its .info
	// body's Version); entries stored before it was kept lack it.
	Version string `json:"version,omitempty"`
	// Origin names the origin that sent the answer, when known.
	Origin string `json:"origin,omitempty"`
}

// fetcher asks the source for the answer to a mutable question: its Body,
// and the Version and Origin when known. fresh sets the time.
type fetcher func(context.Context) (*entry, error)

// question is one mutable question that fresh answers.
type question struct {
	kind    string // "list", "latest" or "query": metrics label and log field
	path    string // the module, for logs
	version string // the query for "query", else ""
	key     string // store.MetaKey; for queries store.QueryKey, used as a key in memory only
	// inMemory keeps the answer in the bounded query table instead of in
	// storage: its key is chosen by the client.
	inMemory bool
}

// Results of a lookup, the result label of modgate_cache_requests_total.
const (
	resultHit          = "hit"
	resultMiss         = "miss"
	resultStale        = "stale"
	resultStaleIfError = "stale_if_error"
	resultNegative     = "negative"
	resultDegraded     = "degraded"
	resultRateLimited  = "rate_limited"
)

func countResult(kind, result string) {
	metrics.CacheResults.WithLabelValues(kind, result).Inc()
}

// fresh answers a mutable question from its cached answer, using fetch to
// refresh it, and says how (one of the result constants; the caller counts
// it, because it may still turn the answer into a degraded one). The
// answer is shared: callers must not modify it.
//   - fresh answer (younger than ListTTL): served as is;
//   - stale answer: served at once, refreshed in the background
//     (stale-while-revalidate);
//   - no answer: a not-found answer remembered for less than NegativeTTL is
//     served; else, if the client's rate limit allows, fetched now (a hit
//     after all if the fetch finds that someone else just kept a fresh
//     answer, see refresh). If that fails and an expired not-found answer
//     is still remembered, that is served (stale-if-error).
func (m *Modules) fresh(ctx context.Context, q question, fetch fetcher) (*entry, string, error) {
	e, _ := m.loadAnswer(ctx, q)
	now := m.now()
	// An invalidated answer is not served while the source may have a
	// newer one: it is fetched now, and kept only for stale-if-error.
	outdated := e != nil && m.outdated(ctx, q.path, e.Fetched)
	if e != nil && !outdated {
		if m.isFresh(e, now) {
			return e, resultHit, nil
		}
		m.refreshBehind(ctx, q, fetch)
		return e, resultStale, nil
	}
	mk := newMemKey(q.key)
	live, negErr := m.neg.get(ctx, mk, now, m.invalid.since(ctx, q.path))
	if live {
		return nil, resultNegative, negErr
	}
	g, err := m.limit.allow(ctx)
	if err != nil {
		return nil, resultRateLimited, err
	}
	r, err := flight(ctx, m, q.key, func(fctx context.Context) (refreshed, error) {
		return m.refresh(fctx, q, fetch)
	})
	g.done(err == nil)
	if err != nil && !errors.Is(err, source.ErrNotFound) {
		switch {
		case outdated:
			m.log.Warn("source failed; serving the answer kept before the invalidation", "module", q.path, "file", q.kind, "err", err)
			return e, resultStaleIfError, nil
		case negErr != nil:
			m.log.Warn("upstream failed; serving the last not-found answer", "module", q.path, "file", q.kind, "err", err)
			return nil, resultStaleIfError, negErr
		}
	}
	if r.kept {
		return r.e, resultHit, nil
	}
	return r.e, resultMiss, err
}

// isFresh reports whether the kept answer e is younger than ListTTL at now.
func (m *Modules) isFresh(e *entry, now time.Time) bool {
	age := now.Sub(e.Fetched)
	return age >= 0 && age < m.cfg.ListTTL
}

// refreshBehind refreshes q in the background: one refresh per key at a
// time, however many stale hits arrive while it runs (later hits start
// nothing at all), and at most maxBackground refreshes in this process.
//
// The refresh holds the lease "refreshing/<key>" while it runs. The lease
// is not the flight's lock (the flight's key is the storage key): with one
// lock service for both, the refresh's own flight must not wait for it.
func (m *Modules) refreshBehind(ctx context.Context, q question, fetch fetcher) {
	locks := m.cfg.Locks
	if q.inMemory {
		locks = &m.memLocks
	}
	lease, ok, err := locks.TryLock(ctx, "refreshing/"+q.key, refreshLease(m.cfg.FetchTimeout))
	switch {
	case err != nil && ctx.Err() != nil:
		return // the client has gone; a later stale hit refreshes
	case err != nil:
		// Coordination saves work; it must not stop it.
		m.log.Warn("lock service failed; refreshing without a lease", "key", q.key, "err", err)
	case !ok:
		return // being refreshed, by this process or another one
	}
	started := m.background(func(bctx context.Context) {
		defer m.release(lease, q.key)
		_, err := coord.Shared(bctx, m.flights, q.key, func(fctx context.Context) (refreshed, error) {
			return m.refresh(fctx, q, fetch)
		})
		if err != nil && !errors.Is(err, source.ErrNotFound) && !errors.Is(err, context.Canceled) && !errors.Is(err, coord.ErrClosed) {
			m.log.Warn("background refresh failed; serving stale answer", "module", q.path, "file", q.kind, "err", err)
		}
	})
	if !started {
		m.release(lease, q.key)
	}
}

// release ends the refresh lease of key, if there is one. The refresh may
// have ended with its context, so the release gets its own.
func (m *Modules) release(lease coord.Lease, key string) {
	if lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := lease.Release(ctx); err != nil {
		m.log.Warn("cannot release refresh lease; it frees itself when it expires", "key", key, "lease", refreshLease(m.cfg.FetchTimeout), "err", err)
	}
}

// refreshed is the outcome of refresh: the answer, and whether it was
// found kept and fresh rather than fetched.
type refreshed struct {
	e    *entry
	kept bool
}

// refresh fetches the answer to q and keeps it: a positive answer where q
// keeps its answers, a not-found answer in memory (for NegativeTTL), after
// dropping the previous answer if there is one: the source now says the
// module (or query) does not exist, and that must not be served stale later.
//
// It first looks at what is kept: an answer found missing or stale by the
// caller may have been refreshed since, by a flight that ended just before
// this one or, with replicas over one storage, by another replica. A fresh
// one is answered without asking the source.
func (m *Modules) refresh(ctx context.Context, q question, fetch fetcher) (refreshed, error) {
	kept, legacy := m.loadAnswer(ctx, q)
	if kept != nil && m.isFresh(kept, m.now()) && !m.outdated(ctx, q.path, kept.Fetched) {
		return refreshed{e: kept, kept: true}, nil
	}
	// The answer is as old as the moment it was asked for: a fetch that
	// began before an invalidation is outdated by it, however long it ran.
	asked := m.now()
	start := time.Now()
	e, err := fetch(ctx)
	observeFetch(q.kind, start, err)
	m.logFetch(q.path, q.version, q.kind, start, err)
	mk := newMemKey(q.key)
	switch {
	case err == nil:
		m.neg.remove(ctx, mk)
		e.Fetched = asked
		m.saveAnswer(ctx, q, e)
		return refreshed{e: e}, nil
	case errors.Is(err, source.ErrNotFound):
		if m.cfg.NegativeTTL > 0 {
			m.neg.put(ctx, mk, err, asked, m.now().Add(m.cfg.NegativeTTL))
		}
		if kept != nil || legacy {
			m.dropAnswer(ctx, q)
		}
		return refreshed{}, err
	default:
		return refreshed{}, err
	}
}

// logFetch logs one fetch from the source at info: fetches are rare (at most
// one per question per TTL) and are what an operator asks about first.
func (m *Modules) logFetch(path, version, file string, start time.Time, err error) {
	attrs := []any{"module", path}
	if version != "" {
		attrs = append(attrs, "version", version)
	}
	attrs = append(attrs, "file", file)
	if err != nil {
		m.log.Info("fetch failed", append(attrs, "err", err)...)
		return
	}
	m.log.Info("fetched", append(attrs, "seconds", time.Since(start).Seconds())...)
}

// loadAnswer returns the kept answer to q, or nil. legacy reports a
// negative entry stored by an older modgate, which is not served.
func (m *Modules) loadAnswer(ctx context.Context, q question) (e *entry, legacy bool) {
	if q.inMemory {
		return m.queries.get(ctx, newMemKey(q.key)), false
	}
	e = m.loadEntry(ctx, q.key)
	if e != nil && e.NotFound != "" {
		return nil, true
	}
	return e, false
}

func (m *Modules) saveAnswer(ctx context.Context, q question, e *entry) {
	if q.inMemory {
		m.queries.put(ctx, newMemKey(q.key), e)
		return
	}
	if err := m.storeEntry(ctx, q.key, e); err != nil {
		m.log.Error("cannot store cached answer", "key", q.key, "err", err)
	}
}

func (m *Modules) dropAnswer(ctx context.Context, q question) {
	if q.inMemory {
		m.queries.remove(ctx, newMemKey(q.key))
		return
	}
	if err := m.cfg.Store.Delete(ctx, q.key); err != nil {
		m.log.Warn("cannot delete cached answer", "key", q.key, "err", err)
	}
}

func (m *Modules) loadEntry(ctx context.Context, key string) *entry {
	rc, info, err := m.cfg.Store.Open(ctx, key)
	if err != nil {
		if !errors.Is(err, store.ErrNotExist) {
			m.log.Warn("cannot read cached answer", "key", key, "err", err)
		}
		return nil
	}
	defer rc.Close()
	if info.Size > maxEntrySize {
		m.log.Warn("ignoring cached answer larger than any answer", "key", key, "size", info.Size)
		return nil
	}
	data := make([]byte, info.Size)
	if _, err := io.ReadFull(rc, data); err != nil {
		m.log.Warn("cannot read cached answer", "key", key, "err", err)
		return nil
	}
	var e entry
	if err := json.Unmarshal(data, &e); err != nil {
		m.log.Warn("ignoring corrupt cached answer", "key", key, "err", err)
		return nil
	}
	return &e
}

// maxEntrySize bounds a stored answer: a list of the largest size an
// upstream may send, base64-encoded in its JSON document, is far smaller.
const maxEntrySize = 32 << 20

func (m *Modules) storeEntry(ctx context.Context, key string, e *entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return m.put(ctx, key, data)
}
