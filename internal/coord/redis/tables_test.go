package coordredis_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/cache"
	coordredis "github.com/modgate/modgate/internal/coord/redis"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/redisserver"
)

const mod = "example.com/shared"

// replicas returns n caches over one storage and one fixture upstream, as
// replicas behind a load balancer are; tables gives each its tables.
func replicas(t *testing.T, up *testenv.Upstream, tables []cache.Tables) []*cache.Modules {
	t.Helper()
	disk, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]*cache.Modules, len(tables))
	for i, tb := range tables {
		m := cache.New(cache.Config{
			Store:        disk,
			Source:       source.NewUpstream(up.URL(), source.NewHTTPClient()),
			ScratchDir:   t.TempDir(),
			ListTTL:      time.Hour,
			NegativeTTL:  time.Hour,
			FetchTimeout: 10 * time.Second,
			Logger:       testenv.Logger(t, "replica"),
			Tables:       tb,
		})
		t.Cleanup(m.Close)
		ms[i] = m
	}
	return ms
}

// upstream serves mod v1.0.0 and a branch query "main" naming it.
func upstream(t *testing.T) *testenv.Upstream {
	dir := t.TempDir()
	testenv.BuildTree(t, dir, []testenv.Module{{Path: mod, Version: "v1.0.0", Files: map[string]string{"a.go": "package shared\n"}}})
	info, err := os.ReadFile(filepath.Join(dir, mod, "@v", "v1.0.0.info"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, mod, "@v", "main.info"), info, 0o644); err != nil {
		t.Fatal(err)
	}
	return testenv.NewUpstream(t, dir)
}

// TestSharedTables: what one replica learns is served by another without
// asking the source (a not-found answer, a query answer), and one
// replica's Invalidate makes the other ask again. A replica with tables
// of its own, in memory, asks for itself.
func TestSharedTables(t *testing.T) {
	srv := redisserver.Start(t)
	c := open(t, coordredis.Options{URL: srv.URL})
	pfx := prefix()
	shared := coordredis.NewTables(c, pfx)
	up := upstream(t)
	rs := replicas(t, up, []cache.Tables{shared, shared, {}})
	a, b, alone := rs[0], rs[1], rs[2]
	ctx := context.Background()
	missing := "/" + mod + "/@v/v9.9.9.mod"
	query := "/" + mod + "/@v/main.info"
	list := "/" + mod + "/@v/list"

	// Not-found answers.
	for i, m := range []*cache.Modules{a, b} {
		if _, err := m.GoMod(ctx, mod, "v9.9.9"); !errors.Is(err, source.ErrNotFound) {
			t.Fatalf("replica %d: GoMod(v9.9.9) = %v, want not found", i, err)
		}
	}
	if n := up.Count(missing); n != 1 {
		t.Errorf("two replicas sharing tables asked the upstream %d times for a missing version, want once", n)
	}
	alone.GoMod(ctx, mod, "v9.9.9")
	if n := up.Count(missing); n != 2 {
		t.Errorf("a replica with tables of its own did not ask for itself (%d requests, want 2)", n)
	}

	// Query answers.
	for i, m := range []*cache.Modules{a, b} {
		f, err := m.Info(ctx, mod, "main")
		if err != nil {
			t.Fatalf("replica %d: Info(main): %v", i, err)
		}
		if f.Version != "v1.0.0" {
			t.Errorf("replica %d: Info(main) names %s, want v1.0.0", i, f.Version)
		}
		f.Content.Close()
	}
	if n := up.Count(query); n != 1 {
		t.Errorf("two replicas sharing tables asked the upstream %d times for a query, want once", n)
	}

	// Invalidations: B asks again for the list (kept in the shared
	// storage) and the query once A has invalidated the module.
	if _, err := a.List(ctx, mod); err != nil {
		t.Fatal(err)
	}
	if _, err := b.List(ctx, mod); err != nil {
		t.Fatal(err)
	}
	if n := up.Count(list); n != 1 {
		t.Fatalf("list asked %d times before the invalidation, want once", n)
	}
	a.Invalidate(mod)
	if _, err := b.List(ctx, mod); err != nil {
		t.Fatal(err)
	}
	f, err := b.Info(ctx, mod, "main")
	if err != nil {
		t.Fatal(err)
	}
	f.Content.Close()
	if n := up.Count(list); n != 2 {
		t.Errorf("after A's Invalidate, B asked for the list %d times in all, want 2", n)
	}
	if n := up.Count(query); n != 2 {
		t.Errorf("after A's Invalidate, B asked for the query %d times in all, want 2", n)
	}

	// Every key is under the prefix, names no module, and expires.
	keys, err := c.Keys(ctx, pfx+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, k := range keys {
		kind, _, _ := strings.Cut(strings.TrimPrefix(k, pfx), ":")
		kinds[kind] = true
		if strings.Contains(k, "example.com") {
			t.Errorf("key %q names the module", k)
		}
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("key %q: PTTL %v, %v; want an expiry", k, ttl, err)
		}
	}
	for _, kind := range []string{"notfound", "query", "invalidated"} {
		if !kinds[kind] {
			t.Errorf("no %s key among %q", kind, keys)
		}
	}
}

// TestTablesRedisDown: with the shared tables unreachable, a replica still
// answers, asking the source.
func TestTablesRedisDown(t *testing.T) {
	srv := redisserver.Start(t)
	c := open(t, coordredis.Options{URL: srv.URL + "?max_retries=0&pool_size=1"})
	up := upstream(t)
	m := replicas(t, up, []cache.Tables{coordredis.NewTables(c, prefix())})[0]
	srv.Kill()
	ctx := context.Background()
	f, err := m.Info(ctx, mod, "main")
	if err != nil {
		t.Fatalf("Info(main) with Redis down: %v", err)
	}
	f.Content.Close()
	if _, err := m.GoMod(ctx, mod, "v9.9.9"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("GoMod(v9.9.9) with Redis down = %v, want not found", err)
	}
	m.Invalidate(mod) // logged, not fatal
	if _, err := m.List(ctx, mod); err != nil {
		t.Fatalf("List with Redis down: %v", err)
	}
}

// TestTableValues: each table gives back what it was given, and an
// invalidation never moves back in time.
func TestTableValues(t *testing.T) {
	srv := redisserver.Start(t)
	c := open(t, coordredis.Options{URL: srv.URL})
	tb := coordredis.NewTables(c, prefix())
	ctx := context.Background()
	key := cache.TableKey{7}
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

	nf := cache.NotFound{At: at, Until: at.Add(time.Minute), Msg: "no such version"}
	if err := tb.NotFound.Put(ctx, key, nf, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, ok, err := tb.NotFound.Get(ctx, key)
	if err != nil || !ok || !got.At.Equal(nf.At) || !got.Until.Equal(nf.Until) || got.Msg != nf.Msg {
		t.Errorf("NotFound: got %+v, %v, %v; want %+v", got, ok, err, nf)
	}
	if err := tb.NotFound.Remove(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := tb.NotFound.Get(ctx, key); ok || err != nil {
		t.Errorf("NotFound after Remove: %v, %v", ok, err)
	}

	qa := cache.QueryAnswer{Fetched: at, Body: []byte(`{"Version":"v1.0.0"}`), Version: "v1.0.0", Origin: "upstream"}
	if err := tb.Queries.Put(ctx, key, qa, time.Hour); err != nil {
		t.Fatal(err)
	}
	ga, ok, err := tb.Queries.Get(ctx, key)
	if err != nil || !ok || !ga.Fetched.Equal(at) || string(ga.Body) != string(qa.Body) || ga.Version != qa.Version || ga.Origin != qa.Origin {
		t.Errorf("Queries: got %+v, %v, %v; want %+v", ga, ok, err, qa)
	}

	if err := tb.Invalidations.Put(ctx, key, at, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := tb.Invalidations.Put(ctx, key, at.Add(-time.Nanosecond), time.Hour); err != nil {
		t.Fatal(err)
	}
	if gt, err := tb.Invalidations.Get(ctx, key); err != nil || !gt.Equal(at) {
		t.Errorf("an earlier invalidation replaced a later one: %v, %v; want %v", gt, err, at)
	}
	if err := tb.Invalidations.Put(ctx, key, at.Add(time.Nanosecond), time.Hour); err != nil {
		t.Fatal(err)
	}
	if gt, _ := tb.Invalidations.Get(ctx, key); !gt.Equal(at.Add(time.Nanosecond)) {
		t.Errorf("a later invalidation did not replace an earlier one: %v", gt)
	}
	if gt, err := tb.Invalidations.Get(ctx, cache.TableKey{8}); err != nil || !gt.IsZero() {
		t.Errorf("an invalidation never made: %v, %v", gt, err)
	}

}
