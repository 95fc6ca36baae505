package cache

// Tests of how the cache coordinates its work (package coord): fetches
// shared and outliving their clients, Close, background refreshes leased
// through Config.Locks as replicas over one storage would share them, and
// what the cache hands to storage.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/coord"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// blockingGoMod answers GoMod only once released (or its context ends),
// counting the calls.
type blockingGoMod struct {
	scriptedSource
	release chan struct{}
}

func (b *blockingGoMod) GoMod(ctx context.Context, path, version string) ([]byte, error) {
	if err := b.count("mod:" + version); err != nil {
		return nil, err
	}
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return []byte("module " + path + "\n"), nil
}

// TestFetchOutlivesItsClient checks that a fetch goes on when the only
// client waiting for it gives up: the next client gets the file from that
// same fetch, and the source is asked once.
func TestFetchOutlivesItsClient(t *testing.T) {
	src := &blockingGoMod{release: make(chan struct{})}
	m, _, _ := newTestCache(t, src)

	ctx, hangUp := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := m.GoMod(ctx, "example.com/m", "v1.0.0")
		first <- err
	}()
	waitFor(t, "the fetch to reach the source", func() bool { return src.Calls("mod:v1.0.0") == 1 })
	hangUp()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the client that hung up got %v, want context.Canceled", err)
	}

	second := make(chan error, 1)
	go func() {
		f, err := m.GoMod(context.Background(), "example.com/m", "v1.0.0")
		if err == nil {
			f.Content.Close()
		}
		second <- err
	}()
	close(src.release)
	if err := <-second; err != nil {
		t.Fatalf("the next client: %v", err)
	}
	if n := src.Calls("mod:v1.0.0"); n != 1 {
		t.Errorf("source asked %d times, want 1: the fetch was given up with its first client", n)
	}
}

// TestCloseEndsFetches checks that Close ends a running fetch and waits for
// it, so that nothing is stored after it, and that fetches asked for after
// it fail at once with the shutdown error.
func TestCloseEndsFetches(t *testing.T) {
	src := &blockingGoMod{release: make(chan struct{})}
	m, _, disk := newTestCache(t, src)
	defer close(src.release)

	running := make(chan error, 1)
	go func() {
		_, err := m.GoMod(context.Background(), "example.com/m", "v1.0.0")
		running <- err
	}()
	waitFor(t, "the fetch to reach the source", func() bool { return src.Calls("mod:v1.0.0") == 1 })
	m.Close()
	if err := <-running; err == nil {
		t.Fatal("a fetch running at Close succeeded")
	}
	if _, err := m.GoMod(context.Background(), "example.com/m", "v1.1.0"); !errors.Is(err, errClosed) {
		t.Errorf("GoMod after Close: %v, want %v", err, errClosed)
	}
	if n := src.Calls("mod:v1.1.0"); n != 0 {
		t.Errorf("source asked %d times after Close", n)
	}
	if keys := storedKeys(t, disk); len(keys) != 0 {
		t.Errorf("stored after Close: %v", keys)
	}
}

// newReplica returns a cache over st, as one replica of several sharing
// the storage, the lock service and the clock.
func newReplica(t *testing.T, st store.Store, src source.Source, locks coord.Locks, clock *testenv.Clock) *Modules {
	t.Helper()
	m := New(Config{Store: st, Source: src, ScratchDir: t.TempDir(), ListTTL: time.Minute,
		NegativeTTL: 10 * time.Second, FetchTimeout: 10 * time.Second, Now: clock.Now, Locks: locks})
	t.Cleanup(m.Close)
	return m
}

// TestRefreshLeasedAcrossReplicas checks that a stale answer is refreshed
// once among replicas sharing a lock service: while one replica refreshes
// it, stale hits on another serve it without a refresh of their own, and
// then find the refreshed answer in storage.
func TestRefreshLeasedAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	disk, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := testenv.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	locks := &coord.LocalLocks{Now: clock.Now}
	srcA := &blockingLister{release: make(chan struct{})}
	srcB := &scriptedSource{versions: []string{"v1.0.0"}}
	a := newReplica(t, disk, srcA, locks, clock)
	b := newReplica(t, disk, srcB, locks, clock)

	if _, err := a.List(ctx, "example.com/m"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.List(ctx, "example.com/m"); err != nil || listed(got) != "v1.0.0" || !got.Stored {
		t.Fatalf("replica B: %v, %v; want A's stored answer", got, err)
	}

	clock.Advance(2 * time.Minute)
	srcA.mu.Lock()
	srcA.blocked = true
	srcA.mu.Unlock()
	if _, err := a.List(ctx, "example.com/m"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica A's refresh to reach its source", func() bool { return srcA.Calls() == 2 })
	for range 3 {
		if got, err := b.List(ctx, "example.com/m"); err != nil || listed(got) != "v1.0.0" {
			t.Fatalf("replica B, stale: %v, %v", got, err)
		}
	}
	b.bg.Wait() // any refresh B started has ended
	if n := srcB.Calls("list"); n != 0 {
		t.Errorf("replica B refreshed %d times while A held the refresh lease", n)
	}

	close(srcA.release)
	a.bg.Wait()
	if got, err := b.List(ctx, "example.com/m"); err != nil || listed(got) != "v1.0.0" || !got.Fetched.Equal(clock.Now()) {
		t.Fatalf("replica B after A's refresh: %+v, %v; want the answer A fetched now", got, err)
	}
	if n := srcB.Calls("list"); n != 0 {
		t.Errorf("replica B asked its source %d times; A's refresh was in storage", n)
	}
	key, _ := store.MetaKey("example.com/m", "list")
	if _, ok, _ := locks.TryLock(ctx, "refreshing/"+key, time.Second); !ok {
		t.Error("the refresh lease is still held after the refresh ended")
	}
}

// TestQueryRefreshNotLeasedAcrossReplicas checks that a stale query answer,
// kept in each replica's memory, is refreshed by each replica: another
// replica holding the lease of the same query refreshes its own copy only.
func TestQueryRefreshNotLeasedAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	disk, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := testenv.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	locks := &coord.LocalLocks{Now: clock.Now}
	src := &scriptedSource{versions: []string{}}
	m := newReplica(t, disk, src, locks, clock)
	if _, err := m.Info(ctx, "example.com/m", "main"); err != nil {
		t.Fatal(err)
	}
	key, _ := store.QueryKey("example.com/m", "main")
	if _, ok, err := locks.TryLock(ctx, "refreshing/"+key, time.Hour); !ok || err != nil {
		t.Fatalf("the other replica's lease: %v, %v", ok, err)
	}
	clock.Advance(2 * time.Minute)
	if _, err := m.Info(ctx, "example.com/m", "main"); err != nil {
		t.Fatal(err)
	}
	m.bg.Wait()
	if n := src.Calls("info:main"); n != 2 {
		t.Errorf("source asked %d times for the query, want 2: the stale answer kept in this process was not refreshed", n)
	}
}

// hookedStore runs after once, right after the first Open of key, before
// that Open returns: what another replica does between a read and what
// follows from it.
type hookedStore struct {
	store.Store
	key   string
	once  sync.Once
	after func()
}

func (h *hookedStore) Open(ctx context.Context, key string) (io.ReadSeekCloser, store.Info, error) {
	rc, info, err := h.Store.Open(ctx, key)
	if key == h.key {
		h.once.Do(h.after)
	}
	return rc, info, err
}

// TestRefreshFindsAnswerRefreshedMeanwhile checks that a refresh, whether
// of a stale answer in the background or of a missing one while the client
// waits, first looks at storage: when another replica stored a fresh
// answer after this one read a stale or missing one, that answer is served
// and the source is not asked.
func TestRefreshFindsAnswerRefreshedMeanwhile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale bool // an answer is stored, stale, when B reads it
	}{{"stale", true}, {"missing", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			disk, err := store.NewDisk(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			clock := testenv.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
			locks := &coord.LocalLocks{Now: clock.Now}
			srcA := &scriptedSource{versions: []string{"v1.0.0"}}
			srcB := &scriptedSource{versions: []string{"v1.0.0"}}
			a := newReplica(t, disk, srcA, locks, clock)
			key, _ := store.MetaKey("example.com/m", "list")
			if tc.stale {
				if _, err := a.List(ctx, "example.com/m"); err != nil {
					t.Fatal(err)
				}
				clock.Advance(2 * time.Minute)
			}
			// A refreshes the list just after B has read it.
			hooked := &hookedStore{Store: disk, key: key, after: func() {
				srcA.set(func() { srcA.versions = []string{"v1.0.0", "v1.1.0"} })
				if _, err := a.List(ctx, "example.com/m"); err != nil {
					t.Error(err)
				}
				a.bg.Wait()
			}}
			b := newReplica(t, hooked, srcB, locks, clock)

			got, err := b.List(ctx, "example.com/m")
			b.bg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if n := srcB.Calls("list"); n != 0 {
				t.Errorf("replica B asked its source %d times for an answer A had just stored", n)
			}
			if tc.stale {
				// Served stale at once; the refresh found A's answer.
				if got, err = b.List(ctx, "example.com/m"); err != nil {
					t.Fatal(err)
				}
			}
			if listed(got) != "v1.0.0 v1.1.0" || !got.Stored || got.Origin != "scripted" {
				t.Errorf("replica B: %q, %+v; want A's refreshed answer, stored", listed(got), got.Provenance)
			}
			if n := srcB.Calls("list"); n != 0 {
				t.Errorf("replica B asked its source %d times in all", n)
			}
		})
	}
}

// sizedOnly is a store without optional capabilities but SizedPutter (as
// an object store), recording how each object was put.
type sizedOnly struct {
	store.Store
	mu      sync.Mutex
	sizes   map[string]int64 // announced, by key
	unsized []string         // keys put without a size
}

func (s *sizedOnly) Put(ctx context.Context, key string, r io.Reader) error {
	s.mu.Lock()
	s.unsized = append(s.unsized, key)
	s.mu.Unlock()
	return s.Store.Put(ctx, key, r)
}

func (s *sizedOnly) PutSized(ctx context.Context, key string, r io.Reader, size int64) error {
	s.mu.Lock()
	s.sizes[key] = size
	s.mu.Unlock()
	return store.PutSized(ctx, s.Store, key, r, size)
}

// zipSource serves the zips it has, by version.
type zipSource struct {
	scriptedSource
	zips map[string][]byte
}

func (z *zipSource) Zip(ctx context.Context, path, version string) (io.ReadCloser, error) {
	if err := z.count("zip:" + version); err != nil {
		return nil, err
	}
	data, ok := z.zips[version]
	if !ok {
		return nil, &source.NotFoundError{Source: "scripted", Msg: "no such zip"}
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func closeFile(f *protocol.File) {
	if f != nil {
		f.Content.Close()
	}
}

// TestStoredWithKnownSize checks that every object the cache stores is
// handed to storage with its size, so that an object store can upload it
// without buffering: module files (the zip from its scratch file, when the
// store cannot take files), hashes and kept answers.
func TestStoredWithKnownSize(t *testing.T) {
	ctx := context.Background()
	disk, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &sizedOnly{Store: disk, sizes: map[string]int64{}}
	const path, version = "example.com/m", "v1.0.0"
	src := &zipSource{scriptedSource: scriptedSource{versions: []string{version}, latest: version},
		zips: map[string][]byte{version: testenv.MakeZip(t, path, version, map[string]string{"m.go": "package m\n"})}}
	m := New(Config{Store: st, Source: src, ScratchDir: t.TempDir(), ListTTL: time.Minute, FetchTimeout: 10 * time.Second})
	defer m.Close()

	for _, ask := range []func() error{
		func() error { _, err := m.List(ctx, path); return err },
		func() error { _, err := m.Latest(ctx, path); return err },
		func() error { _, err := m.Info(ctx, path, "main"); return err },
		func() error { f, err := m.Info(ctx, path, version); closeFile(f); return err },
		func() error { f, err := m.GoMod(ctx, path, version); closeFile(f); return err },
		func() error { f, err := m.Zip(ctx, path, version); closeFile(f); return err },
	} {
		if err := ask(); err != nil {
			t.Fatal(err)
		}
	}
	m.WaitHashed() // the zip's .ziphash, stored in the background
	if len(st.unsized) > 0 {
		t.Errorf("put without a size: %v", st.unsized)
	}
	keys := storedKeys(t, disk)
	for _, k := range keys {
		info, err := disk.Stat(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := st.sizes[k]; !ok || got != info.Size {
			t.Errorf("%s: announced size %d (announced: %v), stored %d", k, got, ok, info.Size)
		}
	}
	zipKey, _ := store.VersionKey(path, version, "zip")
	if _, ok := st.sizes[zipKey]; !ok {
		t.Errorf("the zip was not stored with its size; stored: %v", keys)
	}
}
