package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/semver"

	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// scriptedSource is an in-process origin whose answers the test sets and
// whose calls it counts.
type scriptedSource struct {
	mu       sync.Mutex
	versions []string
	latest   string // "" answers not found
	fail     error  // when set, every call fails with it
	calls    map[string]int
}

func (s *scriptedSource) count(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[op]++
	return s.fail
}

func (s *scriptedSource) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *scriptedSource) set(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

func (s *scriptedSource) String() string { return "scripted" }

func (s *scriptedSource) List(ctx context.Context, path string) ([]string, error) {
	if err := s.count("list"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.versions == nil {
		return nil, &source.NotFoundError{Source: "scripted", Msg: "no such module"}
	}
	return append([]string(nil), s.versions...), nil
}

func (s *scriptedSource) Latest(ctx context.Context, path string) ([]byte, error) {
	if err := s.count("latest"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == "" {
		return nil, &source.NotFoundError{Source: "scripted", Msg: "no @latest here"}
	}
	return []byte(fmt.Sprintf(`{"Version":%q}`, s.latest)), nil
}

func (s *scriptedSource) Info(ctx context.Context, path, query string) ([]byte, error) {
	if err := s.count("info:" + query); err != nil {
		return nil, err
	}
	v := query
	if !semver.IsValid(query) {
		v = "v0.0.0-20240102030405-0123456789ab" // every branch is at this commit
	}
	return []byte(fmt.Sprintf(`{"Version":%q,"Time":"2024-01-02T03:04:05Z"}`, v)), nil
}

func (s *scriptedSource) GoMod(ctx context.Context, path, version string) ([]byte, error) {
	if err := s.count("mod:" + version); err != nil {
		return nil, err
	}
	return []byte("module " + path + "\n"), nil
}

func (s *scriptedSource) Zip(ctx context.Context, path, version string) (io.ReadCloser, error) {
	return nil, s.count("zip:" + version)
}

func newTestCache(t *testing.T, src source.Source) (*Modules, *testenv.Clock, store.Store) {
	t.Helper()
	disk, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := testenv.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	m := New(Config{Store: disk, Source: src, ScratchDir: t.TempDir(), ListTTL: time.Minute,
		NegativeTTL: 10 * time.Second, FetchTimeout: 10 * time.Second, Now: clock.Now})
	t.Cleanup(m.Close)
	return m, clock, disk
}

// listed returns the tagged versions of a list answer, space-separated.
func listed(v *protocol.Versions) string {
	if v == nil {
		return "<nil>"
	}
	var s []string
	for _, t := range v.Tagged {
		s = append(s, t.Version)
	}
	return strings.Join(s, " ")
}

// bodyOf returns the content of an answer held in memory (@latest, a
// query), from its start, however often it is asked.
func bodyOf(f *protocol.File) string {
	if f == nil {
		return "<nil>"
	}
	if _, err := f.Content.Seek(0, io.SeekStart); err != nil {
		return err.Error()
	}
	b, err := io.ReadAll(f.Content)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// waitFor polls cond until it holds; the deadline is only for a test that
// would otherwise hang, far beyond what a loaded machine takes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestListFreshStaleAndStaleIfError(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{"v1.0.0", "v1.1.0", "v1.1.1-0.20240102030405-0123456789ab", "v2.0.0", "junk"}}
	m, clock, _ := newTestCache(t, src)

	for i := 0; i < 5; i++ {
		got, err := m.List(ctx, "example.com/m")
		if err != nil || listed(got) != "v1.0.0 v1.1.0" {
			t.Fatalf("List = %v, %v (pseudo, v2 on a v1 path and junk must be dropped)", got, err)
		}
	}
	if n := src.Calls("list"); n != 1 {
		t.Fatalf("source asked %d times within the TTL, want 1", n)
	}

	// Past the TTL: the stale list is served at once and refreshed behind.
	src.set(func() { src.versions = append(src.versions, "v1.2.0") })
	clock.Advance(2 * time.Minute)
	got, _ := m.List(ctx, "example.com/m")
	if listed(got) != "v1.0.0 v1.1.0" {
		t.Fatalf("stale-while-revalidate served %v, want the stale list", got)
	}
	waitFor(t, "background refresh", func() bool {
		got, _ := m.List(ctx, "example.com/m")
		return listed(got) == "v1.0.0 v1.1.0 v1.2.0"
	})

	// Past the TTL with the source failing: the last good list stays.
	src.set(func() { src.fail = errors.New("connection refused") })
	clock.Advance(2 * time.Minute)
	for i := 0; i < 3; i++ {
		got, err := m.List(ctx, "example.com/m")
		if err != nil || listed(got) != "v1.0.0 v1.1.0 v1.2.0" {
			t.Fatalf("stale-if-error: List = %v, %v", got, err)
		}
	}
}

func TestListNegativeCache(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{}
	m, clock, _ := newTestCache(t, src)
	for i := 0; i < 10; i++ {
		if _, err := m.List(ctx, "example.com/missing"); !errors.Is(err, source.ErrNotFound) {
			t.Fatalf("err = %v, want not found", err)
		}
	}
	if n := src.Calls("list"); n != 1 {
		t.Fatalf("source asked %d times within the negative TTL, want 1", n)
	}
	// After the negative TTL the module is asked again, synchronously: a
	// module published meanwhile shows up at once.
	src.set(func() { src.versions = []string{"v0.1.0"} })
	clock.Advance(11 * time.Second)
	got, err := m.List(ctx, "example.com/missing")
	if err != nil || listed(got) != "v0.1.0" {
		t.Fatalf("after negative TTL: %v, %v", got, err)
	}
}

func TestListIncludesStoredVersionsWhenSourceDown(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{"v1.0.0"}}
	m, _, _ := newTestCache(t, src)
	if obj, err := m.GoMod(ctx, "example.com/m", "v1.3.0"); err != nil {
		t.Fatal(err)
	} else {
		obj.Content.Close()
	}
	src.set(func() { src.fail = errors.New("dial tcp: connection refused") })
	got, err := m.List(ctx, "example.com/m")
	if err != nil || listed(got) != "v1.3.0" {
		t.Fatalf("List with source down and nothing cached = %v, %v; want stored versions", got, err)
	}
}

func TestLatestFallsBackToList(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{"v1.0.0", "v1.1.0", "v1.2.0-rc.1"}}
	m, _, _ := newTestCache(t, src)
	data, err := m.Latest(ctx, "example.com/m")
	if err != nil || !strings.Contains(bodyOf(data), `"v1.1.0"`) {
		t.Fatalf("Latest = %s, %v; want the highest release v1.1.0", bodyOf(data), err)
	}

	src2 := &scriptedSource{versions: []string{"v1.0.0-alpha", "v1.0.0-beta"}}
	m2, _, _ := newTestCache(t, src2)
	data, err = m2.Latest(ctx, "example.com/m")
	if err != nil || !strings.Contains(bodyOf(data), `"v1.0.0-beta"`) {
		t.Fatalf("Latest = %s, %v; want the highest pre-release", bodyOf(data), err)
	}

	// A module without tags: the newest pseudo-version.
	src4 := &scriptedSource{versions: []string{"v0.0.0-20230101000000-abcdefabcdef", "v0.0.0-20240102030405-0123456789ab"}}
	m4, _, _ := newTestCache(t, src4)
	data, err = m4.Latest(ctx, "example.com/m")
	if err != nil || !strings.Contains(bodyOf(data), `"v0.0.0-20240102030405-0123456789ab"`) {
		t.Fatalf("Latest = %s, %v; want the newest pseudo-version", bodyOf(data), err)
	}

	src3 := &scriptedSource{versions: []string{"v1.0.0"}, latest: "v1.5.0"}
	m3, _, _ := newTestCache(t, src3)
	data, err = m3.Latest(ctx, "example.com/m")
	if err != nil || !strings.Contains(bodyOf(data), `"v1.5.0"`) {
		t.Fatalf("Latest = %s, %v; want the source's own @latest", bodyOf(data), err)
	}
}

func TestQueryResolvesAndStoresCanonicalInfo(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{}}
	m, _, disk := newTestCache(t, src)
	const commit = "v0.0.0-20240102030405-0123456789ab"
	data, err := m.Info(ctx, "example.com/m", "main")
	if err != nil || !data.Mutable || data.Version != commit || !strings.Contains(bodyOf(data), commit) {
		t.Fatalf("Info(main) = %s, %+v, %v; want a mutable answer naming %s", bodyOf(data), data, err, commit)
	}
	if data.Stored || data.Origin != "scripted" || data.Fetched.IsZero() {
		t.Errorf("Info(main) fetched now: provenance %+v, want not stored, from scripted, with a time", data.Provenance)
	}
	key, _ := store.VersionKey("example.com/m", commit, "info")
	if _, err := disk.Stat(ctx, key); err != nil {
		t.Fatalf("canonical .info learned from the query was not stored: %v", err)
	}
	// The query again: from memory.
	if again, err := m.Info(ctx, "example.com/m", "main"); err != nil || !again.Stored || again.Version != commit || again.Origin != "scripted" {
		t.Fatalf("Info(main) again = %+v, %v; want the kept answer", again, err)
	}
	// The canonical request is then served without asking the source.
	obj, err := m.Info(ctx, "example.com/m", commit)
	if err != nil {
		t.Fatal(err)
	}
	obj.Content.Close()
	if n := src.Calls("info:" + commit); n != 0 {
		t.Fatalf("source asked %d times for a stored .info", n)
	}
	if obj.Mutable || !obj.Stored || obj.Version != commit || obj.H1 != nil {
		t.Errorf("stored canonical .info: %+v; want immutable, stored, no h1", obj)
	}
}

func TestImmutableNegativeCache(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{fail: &source.NotFoundError{Source: "scripted", Msg: "gone"}}
	m, clock, _ := newTestCache(t, src)
	for i := 0; i < 5; i++ {
		if _, err := m.GoMod(ctx, "example.com/m", "v1.0.0"); !errors.Is(err, source.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := src.Calls("mod:v1.0.0"); n != 1 {
		t.Fatalf("source asked %d times, want 1", n)
	}
	clock.Advance(11 * time.Second)
	m.GoMod(ctx, "example.com/m", "v1.0.0")
	if n := src.Calls("mod:v1.0.0"); n != 2 {
		t.Fatalf("after the negative TTL the source was asked %d times in all, want 2", n)
	}
}

func TestLatestUsesStoredVersionWhenSourceDown(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{"v1.0.0"}}
	m, clock, _ := newTestCache(t, src)
	obj, err := m.Info(ctx, "example.com/m", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	obj.Content.Close()
	if _, err := m.List(ctx, "example.com/m"); err != nil {
		t.Fatal(err)
	}
	// v1.1.0 is published and listed, then the source goes down before its
	// .info is ever fetched.
	src.set(func() { src.versions = []string{"v1.0.0", "v1.1.0"} })
	clock.Advance(2 * time.Minute)
	m.List(ctx, "example.com/m") // stale answer, refreshes behind
	waitFor(t, "list refresh", func() bool {
		got, _ := m.List(ctx, "example.com/m")
		return listed(got) == "v1.0.0 v1.1.0"
	})
	src.set(func() { src.fail = errors.New("connection refused") })
	data, err := m.Latest(ctx, "example.com/m")
	if err != nil || !strings.Contains(bodyOf(data), `"v1.0.0"`) {
		t.Fatalf("Latest with source down = %s, %v; want the newest stored v1.0.0", bodyOf(data), err)
	}
}
