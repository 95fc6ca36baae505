package cache

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/source"
)

// TestInvalidate: after Invalidate, a module's list, @latest, queries and
// not-found answers are asked of the source again at once, within their
// TTLs, and nothing is served stale in between; other modules keep theirs.
func TestInvalidate(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{"v1.0.0"}, latest: "v1.0.0"}
	m, clock, _ := newTestCache(t, src)
	const mod, other = "example.com/m", "example.com/other"

	ask := func() (list, latest string) {
		t.Helper()
		l, err := m.List(ctx, mod)
		if err != nil {
			t.Fatal(err)
		}
		f, err := m.Latest(ctx, mod)
		if err != nil {
			t.Fatal(err)
		}
		return listed(l), bodyOf(f)
	}
	ask()
	m.List(ctx, other)
	if _, err := m.Info(ctx, mod, "main"); err != nil {
		t.Fatal(err)
	}
	src.set(func() { src.fail = &source.NotFoundError{Source: "scripted", Msg: "no v1.1.0 yet"} })
	if _, err := m.GoMod(ctx, mod, "v1.1.0"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("GoMod(v1.1.0) = %v, want not found", err)
	}

	// A tag is pushed: within every TTL, nothing changes without an
	// invalidation.
	src.set(func() {
		src.fail = nil
		src.versions = []string{"v1.0.0", "v1.1.0"}
		src.latest = "v1.1.0"
	})
	clock.Advance(time.Second)
	if list, latest := ask(); list != "v1.0.0" || !strings.Contains(latest, "v1.0.0") {
		t.Fatalf("within the TTL: list %q, latest %s; want the kept answers", list, latest)
	}
	if _, err := m.GoMod(ctx, mod, "v1.1.0"); !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("GoMod(v1.1.0) within the negative TTL = %v, want the kept not-found answer", err)
	}
	calls := func() [4]int {
		return [4]int{src.Calls("list"), src.Calls("latest"), src.Calls("info:main"), src.Calls("mod:v1.1.0")}
	}
	before := calls()

	m.Invalidate(mod)
	if list, latest := ask(); list != "v1.0.0 v1.1.0" || !strings.Contains(latest, "v1.1.0") {
		t.Fatalf("after Invalidate: list %q, latest %s; want the new answers at once", list, latest)
	}
	if _, err := m.Info(ctx, mod, "main"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.GoMod(ctx, mod, "v1.1.0"); err != nil {
		t.Fatalf("GoMod(v1.1.0) after Invalidate = %v, want it fetched", err)
	}
	after := calls()
	for i, name := range []string{"list", "latest", "query", "not-found .mod"} {
		if after[i] != before[i]+1 {
			t.Errorf("%s: source asked %d times after Invalidate, want once", name, after[i]-before[i])
		}
	}
	// The refetched answers are fresh again; the other module was never
	// touched.
	ask()
	if got := calls(); got[0] != after[0] || got[1] != after[1] {
		t.Errorf("answers fetched after Invalidate were not kept: calls %v, then %v", after, got)
	}
	if n := src.Calls("list"); n != after[0] {
		t.Errorf("source asked again: %d", n)
	}
	otherBefore := src.Calls("list")
	m.List(ctx, other)
	if src.Calls("list") != otherBefore {
		t.Error("invalidating one module refetched another's list")
	}
}

// TestInvalidateStaleIfError: when the source fails right after an
// invalidation, the answer kept from before is served rather than an error.
func TestInvalidateStaleIfError(t *testing.T) {
	ctx := context.Background()
	src := &scriptedSource{versions: []string{"v1.0.0"}}
	m, clock, _ := newTestCache(t, src)
	if _, err := m.List(ctx, "example.com/m"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	m.Invalidate("example.com/m")
	src.set(func() { src.fail = errors.New("git server down") })
	got, err := m.List(ctx, "example.com/m")
	if err != nil || listed(got) != "v1.0.0" {
		t.Fatalf("List = %v, %v; want the kept list while the source fails", got, err)
	}
	if n := src.Calls("list"); n != 2 {
		t.Fatalf("source asked %d times, want 2 (the invalidated answer is not served without asking)", n)
	}
}
