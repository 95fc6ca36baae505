package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// newLimitedCache is newTestCache with tables of the given sizes and the
// given rate limit (lookups per second; 0: unlimited).
func newLimitedCache(t *testing.T, src source.Source, negative, queries int, rate float64, burst int) (*Modules, *testenv.Clock, *store.Disk) {
	t.Helper()
	disk, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := testenv.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	m := NewWithLimits(Config{Store: disk, Source: src, ScratchDir: t.TempDir(), ListTTL: time.Minute,
		NegativeTTL: 10 * time.Second, FetchTimeout: 10 * time.Second, Now: clock.Now,
		UpstreamRate: rate, UpstreamBurst: burst}, negative, queries, 16)
	t.Cleanup(m.Close)
	return m, clock, disk
}

// storedKeys lists every key in the store.
func storedKeys(t *testing.T, st store.Store) []string {
	t.Helper()
	var keys []string
	if err := st.List(context.Background(), "", func(k string) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

func cacheCount(kind, result string) float64 {
	var m dto.Metric
	metrics.CacheResults.WithLabelValues(kind, result).Write(&m)
	return m.GetCounter().GetValue()
}

// TestNotFoundAnswersStayInMemory checks that not-found answers of every
// kind are remembered for NegativeTTL without writing anything to storage,
// and that the table holding them keeps at most its size, the most recently
// used entries winning.
func TestNotFoundAnswersStayInMemory(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{} // no module at all
	m, clock, disk := newLimitedCache(t, src, 8, 8, 0, 0)
	ask := func(i int) {
		path := fmt.Sprintf("example.com/missing%d", i)
		if _, err := m.List(ctx, path); !errors.Is(err, source.ErrNotFound) {
			t.Fatalf("List(%s) err = %v", path, err)
		}
	}
	for i := range 100 {
		ask(i)
	}
	if keys := storedKeys(t, disk); len(keys) != 0 {
		t.Fatalf("not-found lists were stored: %v", keys)
	}
	if n, _, _ := m.TableLens(); n != 8 {
		t.Fatalf("not-found table holds %d entries after 100 misses, want its size 8", n)
	}
	// The most recent answers are remembered; the oldest were evicted.
	before := src.Calls("list")
	ask(99)
	if n := src.Calls("list") - before; n != 0 {
		t.Errorf("a recent not-found list reached the source again (%d calls)", n)
	}
	ask(0)
	if n := src.Calls("list") - before; n != 1 {
		t.Errorf("an evicted not-found list reached the source %d times, want 1", n)
	}
	// Expiry is by Config.Now: past NegativeTTL the source is asked again.
	clock.Advance(11 * time.Second)
	ask(99)
	if n := src.Calls("list") - before; n != 2 {
		t.Errorf("after NegativeTTL the source was asked %d times in all, want 2", n)
	}

	// Not-found @latest, queries and immutable files: nothing stored either.
	if _, err := m.Latest(ctx, "example.com/missing"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("Latest err = %v", err)
	}
	src.set(func() { src.fail = &source.NotFoundError{Source: "scripted", Msg: "no such revision"} })
	if _, err := m.Info(ctx, "example.com/m", "no-such-branch"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("Info(branch) err = %v", err)
	}
	if _, err := m.GoMod(ctx, "example.com/m", "v1.0.0"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("GoMod err = %v", err)
	}
	if keys := storedKeys(t, disk); len(keys) != 0 {
		t.Fatalf("not-found answers were stored: %v", keys)
	}
}

// TestLegacyNegativeEntry checks a negative entry stored by an older
// modgate: it is not served, a positive answer replaces it, and a not-found
// answer deletes it.
func TestLegacyNegativeEntry(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{"v1.0.0"}}
	m, clock, disk := newTestCache(t, src)
	legacy, _ := json.Marshal(map[string]any{"fetched": clock.Now(), "not_found": "no such module"})
	for _, path := range []string{"example.com/m", "example.com/gone"} {
		key, _ := store.MetaKey(path, "list")
		if err := disk.Put(ctx, key, bytes.NewReader(legacy)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := m.List(ctx, "example.com/m")
	if err != nil || listed(got) != "v1.0.0" {
		t.Fatalf("List over a legacy negative entry = %q, %v; want the source's v1.0.0", listed(got), err)
	}
	key, _ := store.MetaKey("example.com/m", "list")
	if e := m.loadEntry(ctx, key); e == nil || e.NotFound != "" || string(e.Body) != "v1.0.0" {
		t.Fatalf("stored entry after the refresh = %+v, want the positive answer", e)
	}

	src.set(func() { src.versions = nil })
	if _, err := m.List(ctx, "example.com/gone"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("List(gone) err = %v", err)
	}
	goneKey, _ := store.MetaKey("example.com/gone", "list")
	if _, err := disk.Stat(ctx, goneKey); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("legacy negative entry still stored after a not-found answer: %v", err)
	}
}

// TestQueryAnswersInMemory checks that branch and commit query answers are
// kept in a bounded table and never in storage, with the list TTL's
// freshness rules, and that a restarted cache asks again.
func TestQueryAnswersInMemory(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{}}
	m, clock, disk := newLimitedCache(t, src, 8, 4, 0, 0)
	for i := range 20 {
		if _, err := m.Info(ctx, "example.com/m", fmt.Sprintf("branch%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range storedKeys(t, disk) {
		if strings.HasPrefix(k, "meta/") {
			t.Errorf("query answer stored: %s", k)
		}
	}
	if _, q, _ := m.TableLens(); q != 4 {
		t.Fatalf("query table holds %d answers after 20 queries, want its size 4", q)
	}
	// Fresh: served from memory.
	if _, err := m.Info(ctx, "example.com/m", "branch19"); err != nil {
		t.Fatal(err)
	}
	if n := src.Calls("info:branch19"); n != 1 {
		t.Fatalf("fresh query answer reached the source: %d calls", n)
	}
	// Stale with the source failing: still served, in this process.
	clock.Advance(2 * time.Minute)
	src.set(func() { src.fail = errors.New("connection refused") })
	data, err := m.Info(ctx, "example.com/m", "branch19")
	if err != nil || !strings.Contains(bodyOf(data), "v0.0.0-20240102030405-0123456789ab") {
		t.Fatalf("stale query answer with the source down = %s, %v", bodyOf(data), err)
	}
	m.Close() // waits for the background refresh
	// A new process over the same storage has no query answers.
	m2 := New(Config{Store: disk, Source: src, ScratchDir: t.TempDir(), ListTTL: time.Minute,
		NegativeTTL: 10 * time.Second, FetchTimeout: 10 * time.Second, Now: clock.Now})
	defer m2.Close()
	if _, err := m2.Info(ctx, "example.com/m", "branch19"); err == nil {
		t.Fatal("a restarted cache answered a query with the source down; query answers are memory-only")
	}
}

// blockingLister answers List only once released, counting the calls.
type blockingLister struct {
	scriptedSource
	release chan struct{}
	mu      sync.Mutex
	blocked bool
	calls   int
}

func (b *blockingLister) List(ctx context.Context, path string) ([]string, error) {
	b.mu.Lock()
	blocked := b.blocked
	b.calls++
	b.mu.Unlock()
	if blocked {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return []string{"v1.0.0"}, nil
}

func (b *blockingLister) Calls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// TestBackgroundRefreshesBounded checks that stale hits on many keys start at
// most maxBackground refreshes at once; the others are served stale without
// one.
func TestBackgroundRefreshesBounded(t *testing.T) {
	ctx := context.Background()
	src := &blockingLister{release: make(chan struct{})}
	m, clock, _ := newTestCache(t, src)
	const modules = maxBackground + 36
	for i := range modules {
		if _, err := m.List(ctx, fmt.Sprintf("example.com/m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Minute)
	src.mu.Lock()
	src.blocked = true
	src.mu.Unlock()
	before := src.Calls()
	for i := range modules {
		if got, err := m.List(ctx, fmt.Sprintf("example.com/m%d", i)); err != nil || listed(got) != "v1.0.0" {
			t.Fatalf("stale List = %q, %v", listed(got), err)
		}
	}
	// Every refresh that will ever start has started: each stale List
	// decided synchronously. Let them finish (without Close, which would
	// cancel those that have not reached the source yet), then count.
	close(src.release)
	m.bg.Wait()
	if n := src.Calls() - before; n != maxBackground {
		t.Errorf("%d stale keys started %d background refreshes, want at most %d", modules, n, maxBackground)
	}
}

// TestRateLimit checks the per-client limit on lookups that go to the
// source: misses and synchronous refreshes take a token, hits, remembered
// not-found answers and stale answers do not, lookups that find their
// module give the token back, clients do not share buckets, and requests
// without a client are not limited.
func TestRateLimit(t *testing.T) {
	src := &scriptedSource{versions: []string{"v1.0.0"}}
	m, clock, _ := newLimitedCache(t, src, 64, 8, 1, 3)
	a := protocol.WithClient(context.Background(), "192.0.2.1:40000")
	a2 := protocol.WithClient(context.Background(), "[::ffff:192.0.2.1]:50000") // the same IP
	b := protocol.WithClient(context.Background(), "192.0.2.2:40000")

	// Lookups that find their module do not use up the bucket.
	for i := range 10 {
		obj, err := m.GoMod(a, "example.com/m", fmt.Sprintf("v1.0.%d", i))
		if err != nil {
			t.Fatalf("found lookup %d: %v", i, err)
		}
		obj.Content.Close()
	}
	if _, err := m.List(a, "example.com/m"); err != nil {
		t.Fatal(err)
	}

	// Three not-found lookups empty the bucket of 3; the fourth is refused.
	src.set(func() { src.fail = &source.NotFoundError{Source: "scripted", Msg: "gone"} })
	for i := range 3 {
		if _, err := m.GoMod(a, "example.com/m", fmt.Sprintf("v2.0.%d", i)); !errors.Is(err, source.ErrNotFound) {
			t.Fatalf("miss %d: %v", i, err)
		}
	}
	calls := src.Calls("mod:v9.0.0")
	_, err := m.GoMod(a2, "example.com/m", "v9.0.0")
	var limited *protocol.RateLimitError
	if !errors.As(err, &limited) || limited.RetryAfter != time.Second || limited.Client != "192.0.2.1" {
		t.Fatalf("fourth miss: err = %#v, want a RateLimitError for 192.0.2.1 retrying after 1s", err)
	}
	if src.Calls("mod:v9.0.0") != calls {
		t.Fatal("a refused lookup reached the source")
	}
	_, err = m.Info(a, "example.com/m", "some-branch")
	if !errors.As(err, &limited) {
		t.Fatalf("query over the limit: err = %v, want a RateLimitError", err)
	}
	if _, err := m.Latest(a, "example.com/other"); !errors.As(err, &limited) {
		t.Fatalf("@latest over the limit: err = %v, want a RateLimitError", err)
	}

	// Not limited: hits, remembered not-found answers, other clients,
	// requests without a client.
	if obj, err := m.GoMod(a, "example.com/m", "v1.0.0"); err != nil {
		t.Fatalf("hit while limited: %v", err)
	} else {
		obj.Content.Close()
	}
	if _, err := m.GoMod(a, "example.com/m", "v2.0.0"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("remembered not-found while limited: %v", err)
	}
	if _, err := m.GoMod(b, "example.com/m", "v3.0.0"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("another client: %v", err)
	}
	if _, err := m.GoMod(context.Background(), "example.com/m", "v3.0.1"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("no client: %v", err)
	}
	// A stale list is served and refreshed behind, without a token. (One
	// second of the minute that makes it stale gives a token back: the
	// bucket is emptied again first.)
	clock.Advance(2 * time.Minute)
	for i := 0; ; i++ {
		if _, err := m.GoMod(a, "example.com/m", fmt.Sprintf("v4.0.%d", i)); errors.As(err, &limited) {
			break
		}
	}
	if _, err := m.List(a, "example.com/m"); err != nil {
		t.Fatalf("stale list while limited: %v", err)
	}

	// One second later the bucket holds one token again.
	clock.Advance(time.Second)
	if _, err := m.GoMod(a, "example.com/m", "v5.0.0"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("after a second: %v", err)
	}
	if _, err := m.GoMod(a, "example.com/m", "v5.0.1"); !errors.As(err, &limited) {
		t.Fatalf("second lookup after a second: %v, want a RateLimitError", err)
	}
}

// TestFetchesLogged checks that upstream fetches of lists, @latest and
// queries are logged at info like those of module files.
func TestFetchesLogged(t *testing.T) {
	ctx := context.Background()
	var buf testenv.SyncBuffer
	src := &scriptedSource{versions: []string{"v1.0.0"}, latest: "v1.0.0"}
	m, _, _ := newTestCache(t, src)
	m.log = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m.List(ctx, "example.com/m")
	m.Latest(ctx, "example.com/m")
	m.Info(ctx, "example.com/m", "main")
	src.set(func() { src.versions = nil })
	m.List(ctx, "example.com/missing")

	type line struct{ Level, Msg, Module, Version, File string }
	var got []line
	for _, l := range strings.Split(buf.String(), "\n") {
		if l == "" {
			continue
		}
		var x line
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		got = append(got, x)
	}
	want := []line{
		{"INFO", "fetched", "example.com/m", "", "list"},
		{"INFO", "fetched", "example.com/m", "", "latest"},
		{"INFO", "fetched", "example.com/m", "main", "query"},
		{"INFO", "fetch failed", "example.com/missing", "", "list"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logged\n%v\nwant\n%v", got, want)
	}
}

// TestDegradedAnswers checks which answers are degraded: a list or @latest
// made from stored files alone because the source failed and never
// answered; not a stale answer served because the source failed, nor a
// not-found list merged with stored versions.
func TestDegradedAnswers(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{"v1.0.0", "v1.1.0"}}
	m, clock, _ := newTestCache(t, src)
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		obj, err := m.Info(ctx, "example.com/m", v) // stored, list never fetched
		if err != nil {
			t.Fatal(err)
		}
		obj.Content.Close()
	}
	src.set(func() { src.fail = errors.New("dial tcp: connection refused") })

	list0, latest0 := cacheCount("list", "degraded"), cacheCount("latest", "degraded")
	got, err := m.List(ctx, "example.com/m")
	if err != nil || listed(got) != "v1.0.0 v1.1.0" || !got.Degraded {
		t.Fatalf("List from stored versions alone = %q degraded=%v, %v; want both versions, degraded", listed(got), got != nil && got.Degraded, err)
	}
	lat, err := m.Latest(ctx, "example.com/m")
	if err != nil || !strings.Contains(bodyOf(lat), `"v1.1.0"`) || !lat.Degraded {
		t.Fatalf("Latest from stored versions alone = %s degraded=%v, %v", bodyOf(lat), lat != nil && lat.Degraded, err)
	}
	if d := cacheCount("list", "degraded") - list0; d < 1 {
		t.Errorf("degraded lists counted %v times", d)
	}
	if d := cacheCount("latest", "degraded") - latest0; d != 1 {
		t.Errorf("degraded @latest counted %v times, want 1", d)
	}

	// Once the source answered, a stale answer with the source down is the
	// source's last word, not a degraded one.
	src.set(func() { src.fail = nil; src.latest = "v1.1.0" })
	clock.Advance(time.Hour) // past the negative TTL of nothing, and any TTL
	if got, err := m.List(ctx, "example.com/m"); err != nil || got.Degraded {
		t.Fatalf("List with the source up = %q degraded=%v, %v", listed(got), got != nil && got.Degraded, err)
	}
	if lat, err := m.Latest(ctx, "example.com/m"); err != nil || lat.Degraded {
		t.Fatalf("Latest with the source up = %s degraded=%v, %v", bodyOf(lat), lat != nil && lat.Degraded, err)
	}
	src.set(func() { src.fail = errors.New("dial tcp: connection refused") })
	clock.Advance(2 * time.Minute)
	if got, err := m.List(ctx, "example.com/m"); err != nil || got.Degraded || listed(got) != "v1.0.0 v1.1.0" {
		t.Fatalf("stale List with the source down = %q degraded=%v, %v", listed(got), got != nil && got.Degraded, err)
	}
	if lat, err := m.Latest(ctx, "example.com/m"); err != nil || lat.Degraded {
		t.Fatalf("stale Latest with the source down = %s degraded=%v, %v", bodyOf(lat), lat != nil && lat.Degraded, err)
	}

	// A source that says "no such module" has answered: the stored versions
	// merged with its empty answer are not degraded.
	src2 := &scriptedSource{versions: []string{"v0.1.0"}}
	m2, _, _ := newTestCache(t, src2)
	if obj, err := m2.GoMod(ctx, "example.com/n", "v0.1.0"); err != nil {
		t.Fatal(err)
	} else {
		obj.Content.Close()
	}
	src2.set(func() { src2.versions = nil })
	if got, err := m2.List(ctx, "example.com/n"); err != nil || got.Degraded || listed(got) != "v0.1.0" {
		t.Fatalf("List of a module the source no longer has = %q degraded=%v, %v", listed(got), got != nil && got.Degraded, err)
	}
}

// TestComputedLatestKept checks that @latest computed from the list, for a
// source without @latest of its own, is kept like the source's answer: a
// restarted cache serves it with the source down, without asking.
func TestComputedLatestKept(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{"v1.0.0", "v1.1.0"}} // no @latest
	m, clock, disk := newTestCache(t, src)
	if lat, err := m.Latest(ctx, "example.com/m"); err != nil || !strings.Contains(bodyOf(lat), `"v1.1.0"`) {
		t.Fatalf("Latest = %s, %v", bodyOf(lat), err)
	}
	m.Close()
	src.set(func() { src.fail = errors.New("connection refused") })
	before := src.Calls("latest") + src.Calls("list")
	m2 := New(Config{Store: disk, Source: src, ScratchDir: t.TempDir(), ListTTL: time.Minute,
		NegativeTTL: 10 * time.Second, FetchTimeout: 10 * time.Second, Now: clock.Now})
	defer m2.Close()
	lat, err := m2.Latest(ctx, "example.com/m")
	if err != nil || lat.Degraded || !strings.Contains(bodyOf(lat), `"v1.1.0"`) {
		t.Fatalf("Latest after a restart with the source down = %s degraded=%v, %v", bodyOf(lat), lat != nil && lat.Degraded, err)
	}
	if n := src.Calls("latest") + src.Calls("list") - before; n != 0 {
		t.Errorf("Latest after a restart asked the source %d times, want 0", n)
	}
}
