package retention_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/retention"
	"github.com/modgate/modgate/internal/store"
)

// now is the time the tests plan at; fixture times are relative to it.
var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// fixture is a stored version: the sizes of its files and their times.
type fixture struct {
	path, version string
	sizes         map[string]int // ext -> bytes
	written       time.Duration  // mtime, before now
	read          time.Duration  // atime, before now (0: same as written)
}

func (f fixture) size() int64 {
	var n int64
	for _, s := range f.sizes {
		n += int64(s)
	}
	return n
}

func (f fixture) id() string { return f.path + "@" + f.version }

// fill stores the fixtures in a new disk store, with their times.
func fill(t *testing.T, fixtures ...fixture) *store.Disk {
	t.Helper()
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtures {
		put(t, d, f)
	}
	return d
}

func put(t *testing.T, d *store.Disk, f fixture) {
	t.Helper()
	for ext, n := range f.sizes {
		key, err := store.VersionKey(f.path, f.version, ext)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Put(t.Context(), key, strings.NewReader(strings.Repeat("x", n))); err != nil {
			t.Fatal(err)
		}
		read := f.read
		if read == 0 {
			read = f.written
		}
		if err := os.Chtimes(filepath.Join(d.Root(), filepath.FromSlash(key)), now.Add(-read), now.Add(-f.written)); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(vs []retention.Version) []string {
	var s []string
	for _, v := range vs {
		s = append(s, v.String())
	}
	return s
}

// stored returns the module@version of every module file in d.
func stored(t *testing.T, d store.Store) []string {
	t.Helper()
	var s []string
	err := d.List(t.Context(), "mod/", func(key string) error {
		p, v, _, err := store.ParseVersionKey(key)
		if err == nil && !slices.Contains(s, p+"@"+v) {
			s = append(s, p+"@"+v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(s)
	return s
}

const day = 24 * time.Hour

var (
	// Written long ago, read an hour ago: used most recently.
	aOld = fixture{"example.com/a", "v1.0.0", map[string]int{"info": 50, "mod": 30, "zip": 1000}, 30 * day, time.Hour}
	// Written 3 days ago, never read since: least recently used.
	bMid = fixture{"example.com/b", "v1.2.0", map[string]int{"info": 50, "mod": 40, "zip": 2000}, 3 * day, 0}
	// Written 2 days ago, read a day ago.
	cNew = fixture{"example.com/C", "v0.1.0", map[string]int{"info": 60, "mod": 20, "zip": 500, "ziphash": 47}, 2 * day, day}
	// Only a go.mod, written 5 days ago, read 2 days ago.
	dMod = fixture{"example.com/d", "v2.0.0+incompatible", map[string]int{"info": 40, "mod": 100}, 5 * day, 2 * day}
)

func TestPlanOrder(t *testing.T) {
	d := fill(t, aOld, bMid, cNew, dMod)
	total := aOld.size() + bMid.size() + cNew.size() + dMod.size()
	for _, tc := range []struct {
		max  int64
		want []string
	}{
		{total, nil},
		{total + 1, nil},
		{total - 1, []string{bMid.id()}},
		{total - bMid.size(), []string{bMid.id()}},
		{total - bMid.size() - 1, []string{bMid.id(), dMod.id()}},
		{aOld.size(), []string{bMid.id(), dMod.id(), cNew.id()}},
		{0, []string{bMid.id(), dMod.id(), cNew.id(), aOld.id()}},
	} {
		e, err := retention.Plan(t.Context(), d, tc.max, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(e.Remove); !slices.Equal(got, tc.want) {
			t.Errorf("max %d: remove %q, want %q", tc.max, got, tc.want)
		}
		var removed int64
		for _, v := range e.Remove {
			removed += v.Size
		}
		if e.Versions != 4 || e.Total != total || e.Removed != removed || !e.Fits() || e.Recent != 0 {
			t.Errorf("max %d: plan %+v; want 4 versions, total %d, removed %d, fits", tc.max, e, total, removed)
		}
	}

	e, _ := retention.Plan(t.Context(), d, 0, now)
	for _, v := range e.Remove {
		if v.String() == cNew.id() {
			if v.Size != cNew.size() || len(v.Keys) != 4 || !v.Written.Equal(now.Add(-cNew.written)) || !v.LastAccess.Equal(now.Add(-cNew.read)) {
				t.Errorf("version %s = %+v; want size %d, 4 keys, written %v, accessed %v", v, v, cNew.size(), now.Add(-cNew.written), now.Add(-cNew.read))
			}
		}
	}
}

// hidden is the disk store seen through the plain Store interface only, as
// a store without access times (S3) is.
type hidden struct{ store.Store }

func TestPlanWithoutAccessTimes(t *testing.T) {
	d := fill(t, aOld, bMid, cNew, dMod)
	e, err := retention.Plan(t.Context(), hidden{d}, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	// By modification time alone, a (written 30 days ago) goes first.
	want := []string{aOld.id(), dMod.id(), bMid.id(), cNew.id()}
	if got := ids(e.Remove); !slices.Equal(got, want) {
		t.Errorf("remove %q, want %q", got, want)
	}
}

func TestRecentGuard(t *testing.T) {
	fetching := fixture{"example.com/new", "v1.0.0", map[string]int{"info": 50, "mod": 50}, time.Minute, 0}
	// Written long ago, but read within the guard: being served.
	serving := fixture{"example.com/hot", "v1.0.0", map[string]int{"mod": 10, "zip": 4000}, 40 * day, 5 * time.Minute}
	// Read just outside the guard.
	justOut := fixture{"example.com/warm", "v1.0.0", map[string]int{"mod": 10, "zip": 300}, 40 * day, retention.RecentGuard + time.Second}
	d := fill(t, fetching, serving, justOut, bMid)

	e, err := retention.Plan(t.Context(), d, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(e.Remove), []string{bMid.id(), justOut.id()}; !slices.Equal(got, want) {
		t.Errorf("remove %q, want %q", got, want)
	}
	if e.Recent != 2 || e.Fits() || e.After() != fetching.size()+serving.size() {
		t.Errorf("plan %+v: want 2 recent versions kept, over the limit by %d", e, fetching.size()+serving.size())
	}
	if err := retention.Apply(t.Context(), d, e, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{serving.id(), fetching.id()}
	slices.Sort(want)
	if got := stored(t, d); !slices.Equal(got, want) {
		t.Errorf("after Apply: stored %q, want %q", got, want)
	}
}

func TestApply(t *testing.T) {
	d := fill(t, aOld, bMid, cNew, dMod)
	// Not module files: left alone, not counted.
	others := []string{"meta/example.com/b/@/list", "mod/example.com/b/@v/list", "mod/README"}
	for _, key := range others {
		if err := d.Put(t.Context(), key, strings.NewReader("keep me")); err != nil {
			t.Fatal(err)
		}
	}
	e, err := retention.Plan(t.Context(), d, aOld.size()+cNew.size(), now)
	if err != nil {
		t.Fatal(err)
	}
	if e.Versions != 4 || e.Total != aOld.size()+bMid.size()+cNew.size()+dMod.size() {
		t.Errorf("plan counts other files: %+v", e)
	}
	// Planning removes nothing (what --dry-run relies on).
	if got := stored(t, d); len(got) != 4 {
		t.Fatalf("after Plan: stored %q, want all 4", got)
	}
	var called []string
	if err := retention.Apply(t.Context(), d, e, func(v retention.Version) { called = append(called, v.String()) }); err != nil {
		t.Fatal(err)
	}
	if want := []string{bMid.id(), dMod.id()}; !slices.Equal(called, want) {
		t.Errorf("removed %q, want %q", called, want)
	}
	want := []string{cNew.id(), aOld.id()}
	if got := stored(t, d); !slices.Equal(got, want) {
		t.Errorf("after Apply: stored %q, want %q", got, want)
	}
	// No file of a removed version is left behind.
	for _, f := range []fixture{bMid, dMod} {
		prefix, _ := store.VersionPrefix(f.path)
		d.List(t.Context(), prefix, func(key string) error {
			if _, v, _, err := store.ParseVersionKey(key); err == nil && v == f.version {
				t.Errorf("%s left behind", key)
			}
			return nil
		})
	}
	for _, key := range others {
		if _, err := d.Stat(t.Context(), key); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	// Planned again, the store fits: nothing more to remove.
	if e, _ := retention.Plan(t.Context(), d, aOld.size()+cNew.size(), now); len(e.Remove) != 0 || !e.Fits() {
		t.Errorf("second plan: %+v", e)
	}
}

func TestApplyLeavesRewritten(t *testing.T) {
	d := fill(t, aOld, bMid, cNew)
	e, err := retention.Plan(t.Context(), d, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	// Between plan and apply, b's zip is written again and a gains a
	// file it did not have (a fetch in progress): both stay, c goes.
	key, _ := store.VersionKey(bMid.path, bMid.version, "zip")
	if err := d.Put(t.Context(), key, strings.NewReader("new")); err != nil {
		t.Fatal(err)
	}
	fresh := fixture{aOld.path, aOld.version, map[string]int{"ziphash": 10}, aOld.written, 0}
	put(t, d, fresh) // old times: only the new key tells
	if err := retention.Apply(t.Context(), d, e, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{aOld.id(), bMid.id()}
	if got := stored(t, d); !slices.Equal(got, want) {
		t.Errorf("after Apply: stored %q, want %q", got, want)
	}
}

func TestApplyCanceled(t *testing.T) {
	d := fill(t, aOld, bMid)
	e, err := retention.Plan(t.Context(), d, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := retention.Apply(ctx, d, e, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a canceled context: %v", err)
	}
	if got := stored(t, d); len(got) != 2 {
		t.Errorf("after a canceled Apply: stored %q", got)
	}
}

func TestPlanNegativeLimit(t *testing.T) {
	if _, err := retention.Plan(t.Context(), fill(t), -1, now); err == nil {
		t.Error("Plan with a negative limit: no error")
	}
}
