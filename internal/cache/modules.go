// Package cache answers GOPROXY questions from storage, fetching from a
// source on a miss. It owns the rules of freshness: module files of a
// canonical version are immutable and kept forever; lists, @latest and
// branch/commit queries are cached with a TTL, refreshed in the background
// and served stale when the source fails. Concurrent identical misses share
// one fetch.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/modgate/modgate/internal/metrics"
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
	NegativeTTL time.Duration
	// FetchTimeout bounds one fetch from the source.
	FetchTimeout time.Duration
	Logger       *slog.Logger
	// Verifier, if set, checks every fetched go.mod and zip before it is
	// stored (a checksum database).
	Verifier Verifier
	// Now is the clock; nil means time.Now.
	Now func() time.Time
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

// Modules is the module cache.
type Modules struct {
	cfg    Config
	log    *slog.Logger
	flight singleflight.Group
	neg    negativeCache
	// refreshing holds the keys of mutable answers being refreshed in the
	// background.
	refreshing sync.Map

	// bg tracks background refreshes so Close can wait for them.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

// New returns a cache over cfg.Store and cfg.Source.
func New(cfg Config) *Modules {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 10 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Modules{cfg: cfg, log: cfg.Logger, bgCtx: ctx, bgCancel: cancel,
		neg: negativeCache{entries: map[string]negEntry{}}}
}

// Close stops background refreshes and waits for them to end.
func (m *Modules) Close() {
	m.bgCancel()
	m.bg.Wait()
}

func (m *Modules) now() time.Time {
	if m.cfg.Now != nil {
		return m.cfg.Now()
	}
	return time.Now()
}

// Object is a stored file ready to be served. The caller closes Content.
type Object struct {
	Content io.ReadSeekCloser
	store.Info
}

// InvalidError says that a source sent something that failed the checks and
// was therefore not stored.
type InvalidError struct {
	Source string
	What   string // "golang.org/x/mod@v0.1.0 .zip"
	Err    error
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s sent an invalid %s (not stored): %v", e.Source, e.What, e.Err)
}

func (e *InvalidError) Unwrap() error { return e.Err }

// background runs fn detached from any request, bounded by FetchTimeout.
func (m *Modules) background(fn func(ctx context.Context)) {
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		ctx, cancel := context.WithTimeout(m.bgCtx, m.cfg.FetchTimeout)
		defer cancel()
		fn(ctx)
	}()
}

// waitFlight runs fn once for all concurrent callers with the same key. The
// fetch is detached from the first caller's context (a client that hangs up
// must not fail the others), bounded by FetchTimeout; each caller stops
// waiting when its own context ends.
func (m *Modules) waitFlight(ctx context.Context, key string, fn func(context.Context) ([]byte, error)) ([]byte, error) {
	ch := m.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.FetchTimeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case r := <-ch:
		b, _ := r.Val.([]byte)
		return b, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func observeFetch(kind string, start time.Time, err error) {
	metrics.UpstreamDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	outcome := "ok"
	var inv *InvalidError
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

// negativeCache remembers, per process, that an immutable file was not found,
// so a burst of requests for a missing version does not hammer the source.
type negativeCache struct {
	mu      sync.Mutex
	entries map[string]negEntry
}

type negEntry struct {
	until time.Time
	err   error
}

const maxNegEntries = 100_000

func (n *negativeCache) get(key string, now time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.entries[key]
	if !ok {
		return nil
	}
	if now.After(e.until) {
		delete(n.entries, key)
		return nil
	}
	return e.err
}

func (n *negativeCache) put(key string, err error, until time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.entries) >= maxNegEntries {
		// Crude but bounded: drop everything rather than grow without limit.
		n.entries = map[string]negEntry{}
	}
	n.entries[key] = negEntry{until: until, err: err}
}
