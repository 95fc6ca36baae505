package access

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/store"
)

// RecentWindow is how long after a version's last access the Recorder
// still reports it as Recent: retention never removes a version used that
// recently (retention.RecentGuard is this window).
const RecentWindow = 10 * time.Minute

// Defaults of Config.
const (
	DefaultFlushEvery = time.Minute
	DefaultFlushNew   = 5 * time.Second
	DefaultMaxPending = 100_000
)

// flushWorkers is how many documents a flush writes at once: enough to
// hide an object store's round trips, few enough not to crowd the
// requests being served.
const flushWorkers = 4

// closeTimeout bounds the flush of Close.
const closeTimeout = 30 * time.Second

// Config configures a Recorder.
type Config struct {
	// Store holds the usage documents (the module store).
	Store store.Store
	// FlushEvery is how often Run writes what was counted;
	// DefaultFlushEvery when zero.
	FlushEvery time.Duration
	// FlushNew is how soon after the first access of a version it does
	// not remember Run writes it out, so that the other replicas'
	// retention learns quickly that a version they would remove is in use
	// here; DefaultFlushNew when zero. Under a steady stream of new
	// versions, Run writes at most that often.
	FlushNew time.Duration
	// MaxPending bounds the versions held in memory: those counted since
	// the last flush and those accessed within RecentWindow.
	// DefaultMaxPending when zero. When it is reached, a flush starts and
	// new versions are not recorded until it has made room (counted by
	// modgate_access_dropped_total).
	MaxPending int
	// Logger receives flush failures; slog.Default() when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Downloaded, when not nil, is called with the module path of every
	// zip the Recorder counts (the charts' top modules). It runs on the
	// request path and must be quick.
	Downloaded func(path string)
}

// Recorder counts accesses and downloads of module versions in memory and
// writes them to the store in batches. Build it with New, put it around
// the modules with Wrap, run Run in the background, and Close it.
type Recorder struct {
	cfg Config
	log *slog.Logger

	shards [32]shard
	seed   maphash.Seed
	// pending counts the entries of all shards.
	pending atomic.Int64

	// flushMu makes flushes one at a time: two at once could both take
	// an entry's counts, and restore them twice on failure.
	flushMu sync.Mutex
	// soon and full wake Run: a version was seen for the first time, or
	// MaxPending was reached.
	soon, full chan struct{}
}

type shard struct {
	mu sync.Mutex
	m  map[versionKey]*pending
}

type versionKey struct{ path, version string }

// pending is what a version's entry holds in memory: its last access, and
// what was counted since the last flush (dirty).
type pending struct {
	last      int64 // Unix nanoseconds
	downloads int64
	origin    string
	fetched   int64 // Unix nanoseconds; 0 with no fetch counted
	dirty     bool
}

// New returns a Recorder writing to cfg.Store.
func New(cfg Config) *Recorder {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = DefaultFlushEvery
	}
	if cfg.FlushNew <= 0 {
		cfg.FlushNew = DefaultFlushNew
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Recorder{cfg: cfg, log: cfg.Logger, seed: maphash.MakeSeed(),
		soon: make(chan struct{}, 1), full: make(chan struct{}, 1)}
	if r.log == nil {
		r.log = slog.Default()
	}
	for i := range r.shards {
		r.shards[i].m = map[versionKey]*pending{}
	}
	return r
}

// Wrap returns m with every successful answer for a canonical version
// recorded: an .info, go.mod or zip is an access, a zip also a download,
// and an answer fetched from an origin (not Stored) names that origin.
// Lists, @latest and queries (a branch, a commit prefix) are not accesses
// of a stored version. Put it inside the gate: a refused request is no use
// of the version.
func (r *Recorder) Wrap(m protocol.Modules) protocol.Modules {
	return &recorded{Modules: m, r: r}
}

type recorded struct {
	protocol.Modules // List and Latest pass through
	r                *Recorder
}

func (w *recorded) Info(ctx context.Context, path, query string) (*protocol.File, error) {
	f, err := w.Modules.Info(ctx, path, query)
	// A canonical version is answered with itself, and immutably; a query
	// that resolves to a version does not read that version's file.
	if err == nil && !f.Mutable && f.Version == query {
		w.r.record(path, query, false, f.Provenance)
	}
	return f, err
}

func (w *recorded) GoMod(ctx context.Context, path, version string) (*protocol.File, error) {
	f, err := w.Modules.GoMod(ctx, path, version)
	if err == nil {
		w.r.record(path, version, false, f.Provenance)
	}
	return f, err
}

func (w *recorded) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
	f, err := w.Modules.Zip(ctx, path, version)
	if err == nil {
		w.r.record(path, version, true, f.Provenance)
	}
	return f, err
}

func (r *Recorder) shard(path string) *shard {
	return &r.shards[maphash.String(r.seed, path)%uint64(len(r.shards))]
}

// record notes an access of path@version now.
func (r *Recorder) record(path, version string, download bool, p protocol.Provenance) {
	now := r.cfg.Now().UnixNano()
	sh := r.shard(path)
	sh.mu.Lock()
	e := sh.m[versionKey{path, version}]
	isNew := e == nil
	if isNew {
		if r.pending.Load() >= int64(r.cfg.MaxPending) {
			sh.mu.Unlock()
			metrics.AccessDropped.Inc()
			wake(r.full)
			return
		}
		e = &pending{}
		sh.m[versionKey{path, version}] = e
		r.pending.Add(1)
	}
	if now > e.last {
		e.last = now
	}
	if download {
		e.downloads++
	}
	if !p.Stored && p.Origin != "" {
		e.origin = p.Origin
		e.fetched = p.Fetched.UnixNano()
	}
	e.dirty = true
	sh.mu.Unlock()
	if isNew {
		wake(r.soon)
	}
	if download && r.cfg.Downloaded != nil {
		r.cfg.Downloaded(path)
	}
}

// wake signals c without blocking: one signal pending is enough.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Recent reports whether path@version was accessed within RecentWindow,
// as far as this process knows (counted or not yet written). Retention
// asks it so as never to remove a version being served.
func (r *Recorder) Recent(path, version string) bool {
	sh := r.shard(path)
	sh.mu.Lock()
	e := sh.m[versionKey{path, version}]
	var last int64
	if e != nil {
		last = e.last
	}
	sh.mu.Unlock()
	return e != nil && r.cfg.Now().UnixNano()-last < int64(RecentWindow)
}

// Run flushes every FlushEvery, FlushNew after a version was first seen,
// and at once when MaxPending is reached, until ctx is done. Failures are
// logged and their counts written at the next flush.
func (r *Recorder) Run(ctx context.Context) {
	every := time.NewTicker(r.cfg.FlushEvery)
	defer every.Stop()
	// newTimer runs while a flush for new versions is due; nil otherwise.
	var newTimer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.soon:
			if newTimer == nil {
				newTimer = time.After(r.cfg.FlushNew)
			}
			continue
		case <-newTimer:
		case <-every.C:
		case <-r.full:
		}
		newTimer = nil
		r.flushAndLog(ctx)
	}
}

// flushAndLog flushes and logs a failure, which Flush has kept the counts
// of for the next time.
func (r *Recorder) flushAndLog(ctx context.Context) {
	if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
		r.log.Warn("access records: writing usage documents failed; their counts are kept for the next try", "err", err)
	}
}

// Close writes what was counted and not yet written, within a bounded
// time, logging a failure. Call it once nothing is served any more.
func (r *Recorder) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		r.log.Error("access records: the last write of usage documents failed; the counts since the previous one are lost", "err", err)
	}
}

// Flush merges what was counted since the last flush into the store, one
// document per module, and forgets the versions not accessed within
// RecentWindow. What fails to be written is kept for the next flush; the
// error names the documents (storage keys, nothing secret) and the first
// cause.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	batch := r.take()
	if len(batch) == 0 {
		return nil
	}

	type result struct {
		path string
		err  error
	}
	work := make(chan string)
	results := make(chan result)
	var wg sync.WaitGroup
	for range min(flushWorkers, len(batch)) {
		wg.Go(func() {
			for path := range work {
				replaced, err := merge(ctx, r.cfg.Store, path, batch[path])
				if replaced {
					key, _ := Key(path)
					r.log.Warn("access records: a usage document could not be read and was replaced", "key", key)
				}
				results <- result{path, err}
			}
		})
	}
	go func() {
		for path := range batch {
			work <- path
		}
		close(work)
		wg.Wait()
		close(results)
	}()
	var failed []string
	var first error
	for res := range results {
		if errors.Is(res.err, store.ErrInvalidKey) {
			// A path with no key stays so: its counts cannot be kept.
			continue
		}
		if res.err != nil {
			failed = append(failed, res.path)
			metrics.AccessFlushErrors.Inc()
			if first == nil {
				first = res.err
			}
			r.restore(res.path, batch[res.path])
		}
	}
	if first == nil {
		return nil
	}
	if len(failed) == 1 {
		return first
	}
	return errors.Join(first, fmt.Errorf("and the usage documents of %d more modules", len(failed)-1))
}

// take returns what was counted since the last flush, by module and
// version, and marks it written; it forgets the entries that hold nothing
// to write and were not accessed within RecentWindow.
func (r *Recorder) take() map[string]map[string]Entry {
	batch := map[string]map[string]Entry{}
	old := r.cfg.Now().UnixNano() - int64(RecentWindow)
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.dirty {
				// The origin's name is credential-free already
				// (protocol.Provenance); it is made sure of before it is
				// stored and shown.
				d := Entry{Last: time.Unix(0, e.last).UTC(), Downloads: e.downloads,
					Origin: redact.Line(e.origin, maxOrigin-len("..."))}
				if e.fetched != 0 {
					d.Fetched = time.Unix(0, e.fetched).UTC()
				}
				if batch[k.path] == nil {
					batch[k.path] = map[string]Entry{}
				}
				batch[k.path][k.version] = d
				e.downloads, e.origin, e.fetched, e.dirty = 0, "", 0, false
			}
			if e.last <= old {
				delete(sh.m, k)
				r.pending.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
	return batch
}

// restore puts back the counts of path that a flush failed to write.
func (r *Recorder) restore(path string, delta map[string]Entry) {
	sh := r.shard(path)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for v, d := range delta {
		e := sh.m[versionKey{path, v}]
		if e == nil {
			// Over MaxPending for a moment rather than losing counts.
			e = &pending{}
			sh.m[versionKey{path, v}] = e
			r.pending.Add(1)
		}
		if last := d.Last.UnixNano(); last > e.last {
			e.last = last
		}
		e.downloads += d.Downloads
		if d.Origin != "" && e.origin == "" { // a newer fetch counted since wins
			e.origin, e.fetched = d.Origin, d.Fetched.UnixNano()
		}
		e.dirty = true
	}
}
