package prefetch_test

// The prefetcher over a real cache on a real disk store, fetching from a
// fixture upstream over HTTP on 127.0.0.1. A recording wrapper between the
// two counts what reaches the cache.

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/prefetch"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
)

// mod is a fixture module "path@version" whose go.mod has the go
// directive goVersion ("" for none) and requires the "path@version"s.
func mod(pathVersion, goVersion string, requires ...string) testenv.Module {
	path, version, _ := strings.Cut(pathVersion, "@")
	var gm strings.Builder
	gm.WriteString("module " + path + "\n")
	if goVersion != "" {
		gm.WriteString("\ngo " + goVersion + "\n")
	}
	if len(requires) > 0 {
		gm.WriteString("\nrequire (\n")
		for _, r := range requires {
			gm.WriteString("\t" + strings.Replace(r, "@", " ", 1) + "\n")
		}
		gm.WriteString(")\n")
	}
	return testenv.Module{Path: path, Version: version, Files: map[string]string{"go.mod": gm.String(), "x.go": "package x\n"}}
}

// recording counts the calls that reach the Modules it wraps, by file and
// module version, and those still running.
type recording struct {
	protocol.Modules
	mu       sync.Mutex
	calls    map[string]int // "mod a.example/a@v1.0.0"
	inflight atomic.Int32
}

func (r *recording) enter(ext, path, version string) {
	r.inflight.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[ext+" "+path+"@"+version]++
}

func (r *recording) count(ext, pathVersion string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[ext+" "+pathVersion]
}

func (r *recording) GoMod(ctx context.Context, path, version string) (*protocol.File, error) {
	r.enter("mod", path, version)
	defer r.inflight.Add(-1)
	return r.Modules.GoMod(ctx, path, version)
}

func (r *recording) Info(ctx context.Context, path, query string) (*protocol.File, error) {
	r.enter("info", path, query)
	defer r.inflight.Add(-1)
	return r.Modules.Info(ctx, path, query)
}

func (r *recording) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
	r.enter("zip", path, version)
	defer r.inflight.Add(-1)
	return r.Modules.Zip(ctx, path, version)
}

type fixture struct {
	up   *testenv.Upstream
	disk *store.Disk
	rec  *recording // what reaches the cache
	pf   *prefetch.Modules
}

// newFixture serves mods from a fixture upstream through a cache wrapped
// in a recording and a prefetcher with opts. Cleanup closes the
// prefetcher, then the cache.
func newFixture(t *testing.T, mods []testenv.Module, opts prefetch.Options) *fixture {
	t.Helper()
	tree := t.TempDir()
	testenv.BuildTree(t, tree, mods)
	up := testenv.NewUpstream(t, tree)
	log := slog.New(slog.DiscardHandler)
	c, disk := cachetest.New(t, up.URL(), log)
	rec := &recording{Modules: c, calls: map[string]int{}}
	opts.Logger = log
	pf := prefetch.Wrap(rec, opts)
	t.Cleanup(pf.Close)
	return &fixture{up: up, disk: disk, rec: rec, pf: pf}
}

// clientCtx is the context of a client's request, as the HTTP layer makes it.
func clientCtx() context.Context {
	return protocol.WithClient(context.Background(), "127.0.0.1:40000")
}

// goMod asks the prefetcher for a go.mod as a client does and returns it.
func (f *fixture) goMod(t *testing.T, pathVersion string) string {
	t.Helper()
	path, version, _ := strings.Cut(pathVersion, "@")
	file, err := f.pf.GoMod(clientCtx(), path, version)
	if err != nil {
		t.Fatalf("GoMod(%s): %v", pathVersion, err)
	}
	defer file.Content.Close()
	b, err := io.ReadAll(file.Content)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitIdle waits until the prefetcher has nothing queued or running.
func (f *fixture) waitIdle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.pf.WaitIdle(ctx); err != nil {
		t.Fatalf("prefetches still running after a minute: %v", err)
	}
}

// stored reports whether storage holds the file ext of pathVersion.
func (f *fixture) stored(t *testing.T, pathVersion, ext string) bool {
	t.Helper()
	path, version, _ := strings.Cut(pathVersion, "@")
	key, err := store.VersionKey(path, version, ext)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.disk.Stat(context.Background(), key)
	return err == nil
}

// upstreamCount returns how many requests for the file ext of pathVersion
// reached the upstream.
func (f *fixture) upstreamCount(pathVersion, ext string) int {
	path, version, _ := strings.Cut(pathVersion, "@")
	return f.up.Count("/" + path + "/@v/" + version + "." + ext)
}

// upstreamZips returns how many zip requests reached the upstream.
func (f *fixture) upstreamZips(mods []testenv.Module) int {
	n := 0
	for _, m := range mods {
		n += f.upstreamCount(m.Path+"@"+m.Version, "zip")
	}
	return n
}

func prefetchCount(result string) float64 {
	var m dto.Metric
	metrics.Prefetches.WithLabelValues(result).Write(&m)
	return m.GetCounter().GetValue()
}

// holdUpstream makes the upstream hold requests for urlPath until release
// is called (or the test ends), and returns a channel that receives when
// one arrives.
func holdUpstream(t *testing.T, up *testenv.Upstream, urlPath string) (arrived <-chan struct{}, release func()) {
	ch := make(chan struct{}, 16)
	released := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != urlPath {
			return false
		}
		ch <- struct{}{}
		<-released
		return false
	})
	// Registered after the fixture: runs before the cache and the
	// upstream are closed, which wait for held requests.
	t.Cleanup(release)
	return ch, release
}

// await fails the test if nothing arrives on ch within a minute (a bound
// on a hang, not a timing).
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("%s never happened", what)
	}
}

// TestServedGoModPrefetchesRequirements: serving a.example/a's go.mod over
// HTTP, unchanged, makes the .info and go.mod of what it requires arrive in
// storage without a client asking, and, below them, only what the go
// command would walk: the requirements of an unpruned go.mod (go 1.16),
// not those of a pruned one (go 1.21), and nothing deeper than Depth. A
// client then asking for a prefetched go.mod moves the prefetch down with
// it. No zip is ever fetched.
func TestServedGoModPrefetchesRequirements(t *testing.T) {
	mods := []testenv.Module{
		mod("a.example/a@v1.0.0", "1.21", "b.example/b@v1.0.0", "c.example/c@v1.1.0"),
		mod("b.example/b@v1.0.0", "1.16", "d.example/d@v1.0.0"), // unpruned: walked
		mod("c.example/c@v1.1.0", "1.21", "e.example/e@v1.0.0"), // pruned
		mod("d.example/d@v1.0.0", "", "f.example/f@v1.0.0"),     // no go directive: unpruned
		mod("e.example/e@v1.0.0", "1.21"),
		mod("f.example/f@v1.0.0", "1.16"),
	}
	f := newFixture(t, mods, prefetch.Options{Depth: 2})
	srv := httptest.NewServer(goproxy.Instrument(slog.New(slog.DiscardHandler), &goproxy.Handler{Modules: f.pf}))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/a.example/a/@v/v1.0.0.mod")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != mods[0].GoMod() {
		t.Fatalf("a's go.mod = %d %q, %v; want it unchanged", resp.StatusCode, body, err)
	}
	f.waitIdle(t)
	for _, pv := range []string{"b.example/b@v1.0.0", "c.example/c@v1.1.0", "d.example/d@v1.0.0"} {
		for _, ext := range []string{"mod", "info"} {
			if !f.stored(t, pv, ext) {
				t.Errorf("%s .%s was not prefetched into storage", pv, ext)
			}
		}
	}
	for pv, why := range map[string]string{
		"e.example/e@v1.0.0": "it is required by a pruned go.mod below the first level",
		"f.example/f@v1.0.0": "it is deeper than Depth",
	} {
		if n := f.rec.count("mod", pv); n != 0 {
			t.Errorf("%s's go.mod was asked for %d times; want none: %s", pv, n, why)
		}
	}
	if f.stored(t, "a.example/a@v1.0.0", "info") {
		t.Errorf("a's .info was prefetched; the client asked for its go.mod only")
	}

	// The client reaches d (a hit now): d's requirement is prefetched.
	f.goMod(t, "d.example/d@v1.0.0")
	f.waitIdle(t)
	if !f.stored(t, "f.example/f@v1.0.0", "mod") || !f.stored(t, "f.example/f@v1.0.0", "info") {
		t.Errorf("serving d's go.mod did not prefetch f")
	}
	if n := f.upstreamZips(mods); n != 0 {
		t.Errorf("%d zips were fetched; want none", n)
	}
	for _, m := range mods {
		if f.stored(t, m.Path+"@"+m.Version, "zip") {
			t.Errorf("%s@%s .zip is stored; prefetch never fetches zips", m.Path, m.Version)
		}
	}
}

// TestServingAGraphAgainPrefetchesNothing: a go.mod served twice is read
// for its requirements once, and each requirement is prefetched once.
func TestServingAGraphAgainPrefetchesNothing(t *testing.T) {
	mods := []testenv.Module{
		mod("a.example/a@v1.0.0", "1.21", "b.example/b@v1.0.0", "c.example/c@v1.0.0"),
		mod("b.example/b@v1.0.0", "1.16", "c.example/c@v1.0.0"),
		mod("c.example/c@v1.0.0", "1.21"),
	}
	f := newFixture(t, mods, prefetch.Options{})
	for range 3 {
		f.goMod(t, "a.example/a@v1.0.0")
		f.waitIdle(t)
	}
	// 3 client requests, 1 read by the prefetcher.
	if n := f.rec.count("mod", "a.example/a@v1.0.0"); n != 4 {
		t.Errorf("a's go.mod was asked for %d times, want 4", n)
	}
	for _, pv := range []string{"b.example/b@v1.0.0", "c.example/c@v1.0.0"} {
		if n := f.rec.count("mod", pv); n != 1 {
			t.Errorf("%s's go.mod was asked for %d times, want 1", pv, n)
		}
		if n := f.rec.count("info", pv); n != 1 {
			t.Errorf("%s's .info was asked for %d times, want 1", pv, n)
		}
	}
}

// TestShallowerLevelJoinsTheRunningPrefetch: c, prefetched two levels
// below the client (where its requirements are not followed), is asked
// for one level below the client while its fetch is still running: the
// running prefetch follows c's requirements from the shallower level, and
// c is not asked for twice.
func TestShallowerLevelJoinsTheRunningPrefetch(t *testing.T) {
	mods := []testenv.Module{
		mod("a.example/a@v1.0.0", "1.21", "b.example/b@v1.0.0"),
		mod("b.example/b@v1.0.0", "1.16", "c.example/c@v1.0.0"),
		mod("c.example/c@v1.0.0", "1.16", "d.example/d@v1.0.0"),
		mod("d.example/d@v1.0.0", "1.16"),
	}
	f := newFixture(t, mods, prefetch.Options{Depth: 2})
	held, release := holdUpstream(t, f.up, "/c.example/c/@v/v1.0.0.mod")
	ok := prefetchCount("ok")
	f.goMod(t, "a.example/a@v1.0.0") // b at level 1, c at level 2
	await(t, held, "the prefetch of c")
	waitCount(t, "ok", ok+2) // a's and b's prefetches are done, c's is held

	f.goMod(t, "b.example/b@v1.0.0") // c is now one level below the client
	waitCount(t, "ok", ok+3)         // b's prefetch has asked for c again
	release()
	f.waitIdle(t)
	if n := f.rec.count("mod", "c.example/c@v1.0.0"); n != 1 {
		t.Errorf("c's go.mod was asked for %d times, want 1", n)
	}
	if !f.stored(t, "d.example/d@v1.0.0", "mod") {
		t.Errorf("d, required by c at level 1, was not prefetched")
	}
}

// waitCount waits until modgate_prefetch_total{result} reaches want: an
// event in the workers the test cannot see otherwise.
func waitCount(t *testing.T, result string, want float64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); prefetchCount(result) < want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("modgate_prefetch_total{result=%q} = %v after a minute, want %v", result, prefetchCount(result), want)
		}
	}
}

// TestFullQueueDropsInsteadOfBlocking: with the one worker held by a slow
// upstream and the queue full, a client's go.mod is served at once and its
// prefetch dropped; what was queued before runs once the worker is free.
func TestFullQueueDropsInsteadOfBlocking(t *testing.T) {
	mods := []testenv.Module{
		mod("a.example/a@v1.0.0", "1.21", "b.example/b@v1.0.0"),
		mod("b.example/b@v1.0.0", "1.21"),
		mod("x.example/x@v1.0.0", "1.21", "y.example/y@v1.0.0"),
		mod("y.example/y@v1.0.0", "1.21"),
		mod("z.example/z@v1.0.0", "1.21", "w.example/w@v1.0.0"),
		mod("w.example/w@v1.0.0", "1.21"),
	}
	f := newFixture(t, mods, prefetch.Options{Workers: 1, Queue: 1})
	held, release := holdUpstream(t, f.up, "/b.example/b/@v/v1.0.0.mod")

	f.goMod(t, "a.example/a@v1.0.0")
	await(t, held, "the prefetch of b") // the worker is held; the queue is empty
	f.goMod(t, "x.example/x@v1.0.0")    // queued
	dropped := prefetchCount("dropped")
	served := make(chan struct{})
	go func() { // queue full: served at once, prefetch dropped
		defer close(served)
		file, err := f.pf.GoMod(clientCtx(), "z.example/z", "v1.0.0")
		if err != nil {
			t.Errorf("z's go.mod: %v", err)
			return
		}
		file.Content.Close()
	}()
	await(t, served, "serving z's go.mod while the queue is full")
	if d := prefetchCount("dropped") - dropped; d != 1 {
		t.Errorf("dropped prefetches went up by %v, want 1", d)
	}

	// Let b through: x's prefetch runs, z's never does.
	release()
	f.waitIdle(t)
	if !f.stored(t, "y.example/y@v1.0.0", "mod") {
		t.Errorf("y, required by the queued x, was not prefetched")
	}
	if n := f.rec.count("mod", "w.example/w@v1.0.0"); n != 0 {
		t.Errorf("w, required by z whose prefetch was dropped, was asked for %d times", n)
	}
}

// TestSkippedPathsAreNeverPrefetched: Skip names paths the prefetcher
// never asks about, neither as requirements nor as go.mod files to read.
func TestSkippedPathsAreNeverPrefetched(t *testing.T) {
	mods := []testenv.Module{
		mod("a.example/a@v1.0.0", "1.21", "pub.example/p@v1.0.0", "corp.example/secret@v1.0.0"),
		mod("pub.example/p@v1.0.0", "1.21"),
		mod("corp.example/secret@v1.0.0", "1.21"),
		mod("corp.example/x@v1.0.0", "1.21", "pub.example/q@v1.0.0"),
		mod("pub.example/q@v1.0.0", "1.21"),
	}
	skip := func(path string) bool { return strings.HasPrefix(path, "corp.example/") }
	f := newFixture(t, mods, prefetch.Options{Skip: skip})
	f.goMod(t, "a.example/a@v1.0.0")
	f.goMod(t, "corp.example/x@v1.0.0") // a client may ask; the prefetcher does not read it
	f.waitIdle(t)
	if !f.stored(t, "pub.example/p@v1.0.0", "mod") {
		t.Errorf("pub.example/p was not prefetched")
	}
	for _, ext := range []string{"mod", "info", "zip"} {
		if n := f.upstreamCount("corp.example/secret@v1.0.0", ext); n != 0 {
			t.Errorf("the upstream was asked %d times for the skipped corp.example/secret .%s", n, ext)
		}
	}
	if n := f.rec.count("mod", "corp.example/x@v1.0.0"); n != 1 {
		t.Errorf("corp.example/x's go.mod was asked for %d times, want 1 (the client's)", n)
	}
	if n := f.rec.count("mod", "pub.example/q@v1.0.0"); n != 0 {
		t.Errorf("pub.example/q, required by the skipped corp.example/x, was prefetched")
	}
}

// TestReplacedRequirements: the go command ignores a dependency's replace
// directives, so a requirement replaced by another module is prefetched
// under its own name (not the replacement), and one replaced by a
// directory, a placeholder, is not prefetched at all.
func TestReplacedRequirements(t *testing.T) {
	a := testenv.Module{Path: "a.example/a", Version: "v1.0.0", Files: map[string]string{"go.mod": `module a.example/a

go 1.21

require (
	a.example/a/sub v0.0.0
	r.example/r v1.0.0
)

replace a.example/a/sub => ./sub

replace r.example/r v1.0.0 => fork.example/r v1.0.1
`}}
	mods := []testenv.Module{a, mod("r.example/r@v1.0.0", "1.21"), mod("fork.example/r@v1.0.1", "1.21")}
	f := newFixture(t, mods, prefetch.Options{})
	f.goMod(t, "a.example/a@v1.0.0")
	f.waitIdle(t)
	if !f.stored(t, "r.example/r@v1.0.0", "mod") {
		t.Errorf("r.example/r, replaced by a module in a dependency's go.mod, was not prefetched")
	}
	if n := f.rec.count("mod", "fork.example/r@v1.0.1"); n != 0 {
		t.Errorf("the replacement fork.example/r was prefetched")
	}
	if n := f.rec.count("mod", "a.example/a/sub@v0.0.0") + f.rec.count("info", "a.example/a/sub@v0.0.0"); n != 0 {
		t.Errorf("a.example/a/sub, replaced by a directory, was prefetched")
	}
}

// TestByteBudget: once the budget is spent, prefetches are dropped: with a
// budget of one byte a minute, b's go.mod spends it and c, below b, is
// never fetched.
func TestByteBudget(t *testing.T) {
	mods := []testenv.Module{
		mod("a.example/a@v1.0.0", "1.21", "b.example/b@v1.0.0"),
		mod("b.example/b@v1.0.0", "1.16", "c.example/c@v1.0.0"),
		mod("c.example/c@v1.0.0", "1.16"),
	}
	f := newFixture(t, mods, prefetch.Options{BytesPerMinute: 1})
	dropped := prefetchCount("dropped")
	f.goMod(t, "a.example/a@v1.0.0")
	f.waitIdle(t)
	if !f.stored(t, "b.example/b@v1.0.0", "mod") {
		t.Errorf("b was not prefetched: the budget was not spent yet")
	}
	if n := f.rec.count("mod", "c.example/c@v1.0.0"); n != 0 {
		t.Errorf("c was prefetched after the budget was spent")
	}
	if d := prefetchCount("dropped") - dropped; d != 1 {
		t.Errorf("dropped prefetches went up by %v, want 1 (c)", d)
	}
}

// TestCloseWaitsForWorkers: Close ends a prefetch held by the upstream and
// returns only once no worker is inside the wrapped Modules; after it,
// served go.mod files schedule nothing, and the wrapper still serves.
func TestCloseWaitsForWorkers(t *testing.T) {
	mods := []testenv.Module{
		mod("a.example/a@v1.0.0", "1.21", "b.example/b@v1.0.0"),
		mod("b.example/b@v1.0.0", "1.21"),
		mod("x.example/x@v1.0.0", "1.21", "y.example/y@v1.0.0"),
		mod("y.example/y@v1.0.0", "1.21"),
	}
	f := newFixture(t, mods, prefetch.Options{})
	held, _ := holdUpstream(t, f.up, "/b.example/b/@v/v1.0.0.mod")
	f.goMod(t, "a.example/a@v1.0.0")
	await(t, held, "the prefetch of b")

	f.pf.Close()
	if n := f.rec.inflight.Load(); n != 0 {
		t.Errorf("Close returned with %d calls of a worker still running", n)
	}
	scheduled := prefetchCount("scheduled")
	if got := f.goMod(t, "x.example/x@v1.0.0"); got != mods[2].GoMod() {
		t.Errorf("after Close, x's go.mod = %q", got)
	}
	if d := prefetchCount("scheduled") - scheduled; d != 0 {
		t.Errorf("after Close, serving x's go.mod scheduled %v prefetches", d)
	}
	f.pf.Close() // twice is harmless (Cleanup closes it again)
}
