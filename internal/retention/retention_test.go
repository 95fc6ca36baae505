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

	"github.com/modgate/modgate/internal/access"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/retention"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv/s3server"
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
		e, err := retention.Plan(t.Context(), d, tc.max, now, retention.Options{})
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

	e, _ := retention.Plan(t.Context(), d, 0, now, retention.Options{})
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
	e, err := retention.Plan(t.Context(), hidden{d}, 0, now, retention.Options{})
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

	e, err := retention.Plan(t.Context(), d, 0, now, retention.Options{})
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
	e, err := retention.Plan(t.Context(), d, aOld.size()+cNew.size(), now, retention.Options{})
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
	if e, _ := retention.Plan(t.Context(), d, aOld.size()+cNew.size(), now, retention.Options{}); len(e.Remove) != 0 || !e.Fits() {
		t.Errorf("second plan: %+v", e)
	}
}

func TestApplyLeavesRewritten(t *testing.T) {
	d := fill(t, aOld, bMid, cNew)
	e, err := retention.Plan(t.Context(), d, 0, now, retention.Options{})
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
	e, err := retention.Plan(t.Context(), d, 0, now, retention.Options{})
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
	if _, err := retention.Plan(t.Context(), fill(t), -1, now, retention.Options{}); err == nil {
		t.Error("Plan with a negative limit: no error")
	}
}

// served answers every zip as a stored file: enough for a recorder to
// count an access.
type served struct{ protocol.Modules }

func (served) Zip(_ context.Context, _, version string) (*protocol.File, error) {
	f := protocol.BytesFile(nil)
	f.Version, f.Stored = version, true
	return f, nil
}

// record writes usage records of the fixtures, accessed at at, as a
// serving modgate's recorder does.
func record(t *testing.T, st store.Store, at time.Time, fs ...fixture) {
	t.Helper()
	r := access.New(access.Config{Store: st, Now: func() time.Time { return at }})
	m := r.Wrap(served{})
	for _, f := range fs {
		if _, err := m.Zip(t.Context(), f.path, f.version); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestPlanByRecords: the usage records order the versions where the files'
// times say otherwise; a record's time in the future is not taken.
func TestPlanByRecords(t *testing.T) {
	d := fill(t, aOld, bMid, cNew, dMod)
	// By the files: b, d, c, a (read an hour ago). Recorded: b used 5
	// minutes ago (kept), c half an hour ago, d "tomorrow" (a clock
	// ahead: ignored).
	record(t, d, now.Add(-5*time.Minute), bMid)
	record(t, d, now.Add(-30*time.Minute), cNew)
	record(t, d, now.Add(day), dMod)
	e, err := retention.Plan(t.Context(), d, 0, now, retention.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(e.Remove), []string{dMod.id(), aOld.id(), cNew.id()}; !slices.Equal(got, want) {
		t.Errorf("remove %q, want %q", got, want)
	}
	if e.Recent != 1 {
		t.Errorf("%d kept as recent, want 1 (b)", e.Recent)
	}
	// Under the limit, no record is read: the plan is the listing alone.
	key, _ := access.Key(bMid.path)
	if err := d.Put(t.Context(), key, strings.NewReader("{broken")); err != nil {
		t.Fatal(err)
	}
	if e, err := retention.Plan(t.Context(), d, e.Total, now, retention.Options{}); err != nil || len(e.Remove) != 0 {
		t.Errorf("plan under the limit: %+v, %v", e, err)
	}
	// A broken record is ignored: b is ordered by its files again.
	e, err = retention.Plan(t.Context(), d, 0, now, retention.Options{})
	if got, want := ids(e.Remove), []string{bMid.id(), dMod.id(), aOld.id(), cNew.id()}; err != nil || !slices.Equal(got, want) {
		t.Errorf("with b's record broken: remove %q, %v; want %q", got, err, want)
	}
}

// TestPlanRecent: what the serving process says it served recently
// (Options.Recent) is never removed, by Plan nor by Apply.
func TestPlanRecent(t *testing.T) {
	d := fill(t, aOld, bMid, cNew)
	inUse := map[string]bool{bMid.id(): true}
	recent := func(path, version string) bool { return inUse[path+"@"+version] }
	e, err := retention.Plan(t.Context(), d, 0, now, retention.Options{Recent: recent})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(e.Remove), []string{cNew.id(), aOld.id()}; !slices.Equal(got, want) || e.Recent != 1 {
		t.Errorf("remove %q (recent %d), want %q (recent 1)", got, e.Recent, want)
	}
	// Served between the plan and its application: kept.
	inUse[cNew.id()] = true
	if err := retention.Apply(t.Context(), d, e, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := stored(t, d), []string{cNew.id(), bMid.id()}; !slices.Equal(got, want) {
		t.Errorf("after Apply: stored %q, want %q", got, want)
	}
}

// TestApplyAccessedSincePlan: a version whose record says it was used
// after the plan (by another replica) is left.
func TestApplyAccessedSincePlan(t *testing.T) {
	d := fill(t, aOld, bMid)
	e, err := retention.Plan(t.Context(), d, 0, now, retention.Options{})
	if err != nil {
		t.Fatal(err)
	}
	record(t, d, now.Add(-time.Second), aOld)
	if err := retention.Apply(t.Context(), d, e, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := stored(t, d), []string{aOld.id()}; !slices.Equal(got, want) {
		t.Errorf("after Apply: stored %q, want %q", got, want)
	}
}

// TestApplyLeavesNothingBehind: the store holds no file of a removed
// version (its .ziphash included), no directory the removal left empty,
// and no entry of it in its module's usage record; the module's other
// versions, their record entries and directories stay.
func TestApplyLeavesNothingBehind(t *testing.T) {
	b2 := fixture{bMid.path, "v1.3.0", map[string]int{"mod": 10, "zip": 10, "ziphash": 47}, day, 0}
	d := fill(t, aOld, bMid, b2, cNew)
	record(t, d, now.Add(-2*day), aOld, bMid, b2, cNew)
	// Records of the week before for b and c, more recent for a: b then
	// c go, a and b2 (the newest write) fit.
	record(t, d, now.Add(-time.Hour), aOld)
	e, err := retention.Plan(t.Context(), d, aOld.size()+b2.size(), now, retention.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(e.Remove), []string{bMid.id(), cNew.id()}; !slices.Equal(got, want) {
		t.Fatalf("remove %q, want %q", got, want)
	}
	if err := retention.Apply(t.Context(), d, e, nil); err != nil {
		t.Fatal(err)
	}
	var files, dirs []string
	root := filepath.Join(d.Root(), "mod")
	filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(d.Root(), p)
		if e.IsDir() {
			if entries, _ := os.ReadDir(p); len(entries) == 0 {
				dirs = append(dirs, filepath.ToSlash(rel))
			}
			return nil
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	wantFiles := []string{
		"mod/example.com/a/@v/v1.0.0.info", "mod/example.com/a/@v/v1.0.0.mod", "mod/example.com/a/@v/v1.0.0.zip",
		"mod/example.com/b/@v/v1.3.0.mod", "mod/example.com/b/@v/v1.3.0.zip", "mod/example.com/b/@v/v1.3.0.ziphash",
	}
	if !slices.Equal(files, wantFiles) || len(dirs) != 0 {
		t.Errorf("after Apply: files %q\nwant %q\nempty directories %q", files, wantFiles, dirs)
	}
	for _, f := range []fixture{aOld, bMid, b2, cNew} {
		entries, err := access.Read(t.Context(), d, f.path)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := entries[f.version]
		if kept := f.id() == aOld.id() || f.id() == b2.id(); ok != kept {
			t.Errorf("%s: record entry present %v, want %v", f.id(), ok, kept)
		}
	}

	// A version stored again into the directories removed: the store
	// makes them again.
	put(t, d, cNew)
	if got := stored(t, d); !slices.Contains(got, cNew.id()) {
		t.Errorf("after storing c again: %q", got)
	}
}

// TestPlanApplyS3: on an object store, with no access times and every
// object's time its upload, the usage records decide.
func TestPlanApplyS3(t *testing.T) {
	srv := s3server.Start(t)
	srv.CreateBucket(t, "retention")
	st, err := store.NewS3(t.Context(), store.S3Config{Endpoint: srv.Endpoint, Bucket: "retention", Prefix: "modgate/",
		PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	// Uploaded in the order a, b, c: by their times, a would go first.
	for _, f := range []fixture{aOld, bMid, cNew} {
		for ext, n := range f.sizes {
			key, _ := store.VersionKey(f.path, f.version, ext)
			if err := st.Put(t.Context(), key, strings.NewReader(strings.Repeat("x", n))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The plan is made a day later (nothing is within the guard by its
	// upload time); c was used the most recently, then a, b not at all.
	later := time.Now().Add(day)
	record(t, st, later.Add(-2*time.Hour), aOld)
	record(t, st, later.Add(-time.Hour), cNew)
	e, err := retention.Plan(t.Context(), st, cNew.size(), later, retention.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(e.Remove), []string{bMid.id(), aOld.id()}; !slices.Equal(got, want) || !e.Fits() {
		t.Fatalf("remove %q (fits %v), want %q", got, e.Fits(), want)
	}
	if err := retention.Apply(t.Context(), st, e, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := stored(t, st), []string{cNew.id()}; !slices.Equal(got, want) {
		t.Errorf("after Apply: stored %q, want %q", got, want)
	}
	if entries, err := access.Read(t.Context(), st, aOld.path); err != nil || len(entries) != 0 {
		t.Errorf("a's record after its removal: %v, %v", entries, err)
	}
}
