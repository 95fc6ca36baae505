// Package prefetch works ahead of the go command. When modgate serves a
// go.mod, the go command is very likely to ask next for the go.mod files
// (and, for `go mod download`, the .info files) of the modules that go.mod
// requires. It asks for them at most GOMAXPROCS at a time
// (cmd/go/internal/modload loads the module graph through a
// par.Queue(GOMAXPROCS)), so every round trip a cold request costs,
// upstream and to the checksum database, is paid again for each of the
// hundreds of go.mod files of a build, mostly in sequence. modgate is not
// bound by the client's parallelism: Modules, a protocol.Modules wrapper,
// fetches those files in the background, through the Modules it wraps
// (which checks, verifies and stores them), so that the client's next
// requests are storage hits.
//
// What it fetches, and what it never does:
//
//   - only .info and go.mod files, never zips: a zip is large, and the go
//     command asks for the zips of far fewer modules than it reads go.mod
//     files of;
//   - the requirements of a go.mod a client was served, and below them
//     (Options.Depth) only the requirements the go command itself walks:
//     those of go.mod files without module graph pruning (see follow);
//   - nothing about a path Options.Skip names (private modules);
//   - detached from the client's request and not charged to its rate limit
//     (the background context carries no protocol.WithClient);
//   - at most Options.Workers prefetches at once (each the go.mod and the
//     .info of one version), from a queue of at most Options.Queue; a
//     prefetch that finds the queue full, or the byte budget of the last
//     minute spent, is dropped, never waited for: under load, the
//     client's own requests come first;
//   - each module version once, as long as it is remembered
//     (Options.Remember).
//
// The client's answer is never touched: the go.mod it is served is read
// again in the background, from storage, to find its requirements.
package prefetch

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"

	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/protocol"
)

// Options configures a Modules. Zero fields take the defaults named.
type Options struct {
	// Workers is how many prefetches run at once, each fetching a go.mod
	// and an .info side by side (default 8): four times the go command's
	// own parallelism on a two-core machine, as many as on an eight-core
	// one. Fewer leave the client catching up with the prefetch on wide
	// graphs (BenchmarkColdGraph: 4 workers let about two thirds of the
	// go.mod requests wait for a fetch, 8 half); what an upstream sees
	// stays small: 16 requests for small files at once at most.
	Workers int
	// Queue is how many prefetches may wait for a worker (default 256);
	// more are dropped.
	Queue int
	// Depth is how many levels of requirements below a go.mod a client was
	// served are prefetched (default 2). Below the first level only the
	// requirements of unpruned go.mod files are followed (see follow).
	Depth int
	// Remember is how many module versions are remembered as prefetched,
	// so that a graph served again is not prefetched again (default 16384;
	// least recently scheduled forgotten first).
	Remember int
	// Timeout bounds one prefetch: a go.mod with its verification, and
	// the .info beside it (default 30s). A client asking for the same file meanwhile
	// shares the fetch (the cache's single flight), which this timeout
	// does not end.
	Timeout time.Duration
	// BytesPerMinute bounds what prefetches fetch from origins: once the
	// last minute's fetches (files not already stored) reach it, new
	// prefetches are dropped until the budget refills (default 16 MiB,
	// some thousands of go.mod files a minute).
	BytesPerMinute int64
	// Skip, if set, names paths never prefetched, nor read to find what
	// they require: private modules, whose fetches may be costly and whose
	// names must go nowhere they would not go anyway.
	Skip func(path string) bool
	// Logger receives failed prefetches at debug level; nil: slog.Default.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	defaultWorkers        = 8
	defaultQueue          = 256
	defaultDepth          = 2
	defaultRemember       = 1 << 14
	defaultTimeout        = 30 * time.Second
	defaultBytesPerMinute = 16 << 20
)

// The counters of modgate_prefetch_total, by result.
var (
	countedScheduled = metrics.Prefetches.WithLabelValues("scheduled")
	countedDropped   = metrics.Prefetches.WithLabelValues("dropped")
	countedOK        = metrics.Prefetches.WithLabelValues("ok")
	countedError     = metrics.Prefetches.WithLabelValues("error")
)

// maxPath bounds the module path of a prefetch: a queue of Options.Queue
// jobs holds at most Queue × maxPath bytes of paths, whatever go.mod files
// an origin sends. Real module paths are a small fraction of it.
const maxPath = 1 << 10

// Modules is a protocol.Modules that prefetches the requirements of every
// go.mod it serves. Close it before the Modules it wraps.
type Modules struct {
	protocol.Modules // List, Latest, Info and Zip pass through
	opts             Options
	log              *slog.Logger
	queue            chan job
	// budget holds the bytes prefetches may still fetch; fetches are
	// charged after the fact, so it may go below zero by what the running
	// workers fetch (a few go.mod files).
	budget *rate.Limiter

	mu sync.Mutex
	// scheduled holds what was scheduled of each module version (by
	// key), the most recently scheduled ones.
	scheduled *simplelru.LRU[versionKey, scheduling]
	pending   int           // jobs queued or running
	idle      chan struct{} // closed when pending is zero (waitIdle)

	ctx     context.Context // ended by Close
	cancel  context.CancelFunc
	workers sync.WaitGroup
}

var _ protocol.Modules = (*Modules)(nil)

// job is one prefetch: the go.mod of path@version, its requirements when
// its level allows, and, unless the go.mod was a client's (level 0), its
// .info.
type job struct {
	path, version string
	// level is the number of requirement edges between the go.mod a
	// client was served and this one: 0 for that go.mod itself, which is
	// only read again (a storage hit) to find its requirements.
	level int
}

// scheduling is what was scheduled of one module version.
type scheduling struct {
	// level is the shallowest level it was asked for at: asking again at
	// that level or deeper would do nothing new; at a shallower one, its
	// go.mod may lead to more requirements.
	level int
	// read reports that a job has read its go.mod at level. Until then a
	// shallower level needs no job of its own: the job queued or running
	// follows the requirements from the level it finds here (claim).
	read bool
}

// versionKey is a fixed-size key for path@version: what the dedup table
// holds does not grow with the paths an origin's go.mod files name.
type versionKey [sha256.Size]byte

func newVersionKey(path, version string) versionKey {
	return sha256.Sum256([]byte(path + "@" + version))
}

// Wrap returns inner with prefetching: each go.mod it serves schedules the
// prefetch of what that go.mod requires. The workers start at once; Close
// stops them.
func Wrap(inner protocol.Modules, opts Options) *Modules {
	if opts.Workers <= 0 {
		opts.Workers = defaultWorkers
	}
	if opts.Queue <= 0 {
		opts.Queue = defaultQueue
	}
	if opts.Depth <= 0 {
		opts.Depth = defaultDepth
	}
	if opts.Remember <= 0 {
		opts.Remember = defaultRemember
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.BytesPerMinute <= 0 {
		opts.BytesPerMinute = defaultBytesPerMinute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	scheduled, err := simplelru.NewLRU[versionKey, scheduling](opts.Remember, nil)
	if err != nil {
		panic(err) // Remember is positive
	}
	m := &Modules{
		Modules:   inner,
		opts:      opts,
		log:       opts.Logger,
		queue:     make(chan job, opts.Queue),
		budget:    rate.NewLimiter(rate.Limit(float64(opts.BytesPerMinute)/60), int(min(opts.BytesPerMinute, 1<<30))),
		scheduled: scheduled,
		idle:      make(chan struct{}),
	}
	close(m.idle)
	// The background context carries no client (protocol.WithClient):
	// prefetches are not charged to anyone's rate limit.
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.workers.Add(opts.Workers)
	for range opts.Workers {
		go m.work()
	}
	return m
}

// Close stops prefetching: it ends the running prefetches, drops the
// queued ones and waits for the workers to return. Fetches a running
// prefetch started in the wrapped Modules may go on there (a client may
// share them); closing that Modules ends them.
func (m *Modules) Close() {
	m.cancel()
	m.workers.Wait()
}

// GoMod serves the go.mod of path@version and, once it is served,
// schedules the prefetch of its requirements.
func (m *Modules) GoMod(ctx context.Context, path, version string) (*protocol.File, error) {
	f, err := m.Modules.GoMod(ctx, path, version)
	if err == nil {
		m.schedule(job{path: path, version: version})
	}
	return f, err
}

// schedule queues j unless its path is skipped, it was queued at its
// level or a shallower one already, a job of it that has not read its
// go.mod yet can take j's level instead, the byte budget is spent or the
// queue is full. It never waits.
func (m *Modules) schedule(j job) {
	if m.ctx.Err() != nil || len(j.path) > maxPath || (m.opts.Skip != nil && m.opts.Skip(j.path)) {
		return
	}
	k := newVersionKey(j.path, j.version)
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.scheduled.Get(k)
	if ok && s.level <= j.level {
		return
	}
	if ok && !s.read {
		// Another worker would only wait for the same fetch.
		m.scheduled.Add(k, scheduling{level: j.level})
		return
	}
	if m.budget.Tokens() < 1 { // not a byte left
		countedDropped.Inc()
		return
	}
	select {
	case m.queue <- j:
	default:
		countedDropped.Inc()
		return
	}
	m.scheduled.Add(k, scheduling{level: j.level})
	if m.pending == 0 {
		m.idle = make(chan struct{})
	}
	m.pending++
	countedScheduled.Inc()
}

// work runs queued prefetches until Close.
func (m *Modules) work() {
	defer m.workers.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case j := <-m.queue:
			m.run(j)
		}
	}
}

// run does one prefetch and counts its result.
func (m *Modules) run(j job) {
	defer m.finished()
	if m.ctx.Err() != nil {
		return // closing: the job is dropped with the rest of the queue
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.opts.Timeout)
	defer cancel()
	if err := m.prefetch(ctx, j); err != nil {
		countedError.Inc()
		m.log.Debug("prefetch failed", "module", j.path, "version", j.version, "err", err)
		return
	}
	countedOK.Inc()
}

// prefetch gets the go.mod of j (a fetch, or a storage hit) and schedules
// the requirements to follow from it, and, beside it, gets the .info.
func (m *Modules) prefetch(ctx context.Context, j job) error {
	if j.level == 0 {
		// The client's own module: its go.mod is stored, and the client
		// asks for its .info itself if it wants it.
		return m.goMod(ctx, j)
	}
	// The two at once: the .info is not worth a round trip of the
	// worker's, which the go.mod files below this one wait for.
	var infoErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		infoErr = m.info(ctx, j)
	}()
	err := m.goMod(ctx, j)
	<-done
	return errors.Join(err, infoErr)
}

// goMod gets the go.mod of j and schedules the requirements to follow
// from it, at the level j was last asked for.
func (m *Modules) goMod(ctx context.Context, j job) error {
	f, err := m.Modules.GoMod(ctx, j.path, j.version)
	j.level = m.claim(j)
	if err != nil {
		return err
	}
	m.charge(f)
	var next []job
	if j.level < m.opts.Depth {
		next, err = follow(f, j)
	}
	f.Content.Close()
	for _, n := range next {
		m.schedule(n)
	}
	return err
}

// info gets the .info of j.
func (m *Modules) info(ctx context.Context, j job) error {
	f, err := m.Modules.Info(ctx, j.path, j.version)
	if err != nil {
		return err
	}
	m.charge(f)
	return f.Content.Close()
}

// claim returns the level to follow j's requirements from: j's own, or a
// shallower one asked for while j was queued or running. From now on,
// asking for a shallower level needs a new job.
func (m *Modules) claim(j job) int {
	k := newVersionKey(j.path, j.version)
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.scheduled.Peek(k)
	if !ok { // forgotten meanwhile
		return j.level
	}
	s.level = min(s.level, j.level)
	s.read = true
	m.scheduled.Add(k, s)
	return s.level
}

// charge takes what was fetched for f from the byte budget: nothing for a
// file that was already stored.
func (m *Modules) charge(f *protocol.File) {
	if f.Stored || f.Size <= 0 {
		return
	}
	// Past the bucket's size the reservation would fail without taking
	// anything; the whole bucket is the most one file takes.
	m.budget.ReserveN(time.Now(), int(min(f.Size, int64(m.budget.Burst()))))
}

// finished counts one job as done.
func (m *Modules) finished() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending--
	if m.pending == 0 {
		close(m.idle)
	}
}

// waitIdle waits until no prefetch is queued or running, or ctx ends. The
// requirements a prefetch schedules are queued before it counts as done,
// so idle means the whole walk is over. After Close, queued jobs never
// run: only tests, before Close, use it.
func (m *Modules) waitIdle(ctx context.Context) error {
	m.mu.Lock()
	idle := m.idle
	m.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
