package access_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/modgate/modgate/internal/access"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
	"github.com/modgate/modgate/internal/testenv/s3server"
)

var start = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

var fixture = []testenv.Module{
	{Path: "example.com/Alpha", Version: "v1.0.0"},
	{Path: "example.com/Alpha", Version: "v1.1.0"},
	{Path: "example.com/beta", Version: "v0.1.0"},
}

// newCache is the real cache over a fixture upstream, and its disk store.
func newCache(t *testing.T) (protocol.Modules, *store.Disk, *testenv.Upstream) {
	t.Helper()
	dir := t.TempDir()
	testenv.BuildTree(t, dir, fixture)
	up := testenv.NewUpstream(t, dir)
	c, disk := cachetest.New(t, up.URL(), testenv.Logger(t, "cache"))
	return c, disk, up
}

// served returns a function that reads and closes an answer, failing the
// test on an error.
func served(t *testing.T) func(*protocol.File, error) {
	return func(f *protocol.File, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, f.Content)
		f.Content.Close()
	}
}

func read(t *testing.T, st store.Store, path string) map[string]access.Entry {
	t.Helper()
	entries, err := access.Read(t.Context(), st, path)
	if err != nil {
		t.Fatalf("Read(%s): %v", path, err)
	}
	return entries
}

// TestWrapRecords: what the wrapper counts of each kind of answer, and
// what a flush writes.
func TestWrapRecords(t *testing.T) {
	c, disk, up := newCache(t)
	clock := testenv.NewClock(start)
	var downloaded []string
	r := access.New(access.Config{Store: disk, Now: clock.Now, Logger: testenv.Logger(t, "recorder"),
		Downloaded: func(path string) { downloaded = append(downloaded, path) }})
	m := r.Wrap(c)
	get := served(t)
	ctx := t.Context()

	// Alpha v1.0.0: fetched by its .info, then its zip served twice.
	get(m.Info(ctx, "example.com/Alpha", "v1.0.0"))
	clock.Advance(time.Minute)
	get(m.Zip(ctx, "example.com/Alpha", "v1.0.0"))
	clock.Advance(time.Minute)
	get(m.Zip(ctx, "example.com/Alpha", "v1.0.0"))
	// v1.1.0 only through @latest: no access of it.
	get(m.Latest(ctx, "example.com/Alpha"))
	if _, err := m.List(ctx, "example.com/Alpha"); err != nil {
		t.Fatal(err)
	}
	// beta: its go.mod, and a zip that is not there is no download.
	get(m.GoMod(ctx, "example.com/beta", "v0.1.0"))
	if _, err := m.Zip(ctx, "example.com/beta", "v9.9.9"); err == nil {
		t.Fatal("zip of a missing version: no error")
	}
	if !r.Recent("example.com/Alpha", "v1.0.0") || r.Recent("example.com/Alpha", "v1.1.0") {
		t.Error("Recent: want Alpha v1.0.0 and not v1.1.0")
	}

	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	alpha := read(t, disk, "example.com/Alpha")
	if len(alpha) != 1 {
		t.Fatalf("Alpha's entries %+v, want v1.0.0 only", alpha)
	}
	e := alpha["v1.0.0"]
	if !e.Last.Equal(start.Add(2*time.Minute)) || e.Downloads != 2 || e.Origin != up.URL() || e.Fetched.IsZero() {
		t.Errorf("Alpha v1.0.0: %+v; want last %v, 2 downloads, origin %s and a fetch time", e, start.Add(2*time.Minute), up.URL())
	}
	beta := read(t, disk, "example.com/beta")["v0.1.0"]
	if !beta.Last.Equal(start.Add(2*time.Minute)) || beta.Downloads != 0 || beta.Origin != up.URL() {
		t.Errorf("beta v0.1.0: %+v", beta)
	}
	if got := strings.Join(downloaded, " "); got != "example.com/Alpha example.com/Alpha" {
		t.Errorf("Downloaded called with %q", got)
	}

	// Served from storage since: counts add up, the origin stays.
	clock.Advance(time.Hour)
	get(m.Zip(ctx, "example.com/Alpha", "v1.0.0"))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	e2 := read(t, disk, "example.com/Alpha")["v1.0.0"]
	if !e2.Last.Equal(start.Add(time.Hour+2*time.Minute)) || e2.Downloads != 3 || e2.Origin != e.Origin || !e2.Fetched.Equal(e.Fetched) {
		t.Errorf("after a stored zip: %+v; was %+v", e2, e)
	}
	// Nothing new: a flush writes nothing.
	key, _ := access.Key("example.com/Alpha")
	before, _ := disk.Stat(ctx, key)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if after, _ := disk.Stat(ctx, key); after.ETag != before.ETag {
		t.Error("a flush with nothing counted rewrote a document")
	}
}

// TestRecent: a version stays Recent for RecentWindow after its last
// access, flushed or not, and is forgotten after.
func TestRecent(t *testing.T) {
	c, disk, _ := newCache(t)
	clock := testenv.NewClock(start)
	r := access.New(access.Config{Store: disk, Now: clock.Now})
	m := r.Wrap(c)
	get := served(t)
	get(m.GoMod(t.Context(), "example.com/beta", "v0.1.0"))
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(access.RecentWindow - time.Second)
	if !r.Recent("example.com/beta", "v0.1.0") {
		t.Error("not Recent within the window after a flush")
	}
	clock.Advance(time.Second)
	if r.Recent("example.com/beta", "v0.1.0") {
		t.Error("Recent after the window")
	}
}

// TestFlushFailureKeepsCounts: a document that cannot be written keeps
// its counts in memory until a flush succeeds; the others are written.
func TestFlushFailureKeepsCounts(t *testing.T) {
	c, disk, _ := newCache(t)
	clock := testenv.NewClock(start)
	r := access.New(access.Config{Store: disk, Now: clock.Now})
	m := r.Wrap(c)
	get := served(t)
	ctx := t.Context()
	// A file where beta's meta directory would be: its document cannot
	// be written.
	if err := disk.Put(ctx, "meta/example.com/beta/@", strings.NewReader("in the way")); err != nil {
		t.Fatal(err)
	}
	get(m.Zip(ctx, "example.com/beta", "v0.1.0"))
	get(m.Zip(ctx, "example.com/Alpha", "v1.0.0"))
	before := counterValue(metrics.AccessFlushErrors)
	err := r.Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), "meta/example.com/beta/@/access") {
		t.Fatalf("Flush: %v; want an error naming beta's document", err)
	}
	if n := counterValue(metrics.AccessFlushErrors) - before; n != 1 {
		t.Errorf("flush errors counted: %v, want 1", n)
	}
	if got := read(t, disk, "example.com/Alpha")["v1.0.0"].Downloads; got != 1 {
		t.Errorf("Alpha's downloads %d, want 1 (written despite beta)", got)
	}
	// More counted meanwhile, then the way is clear.
	clock.Advance(time.Minute)
	get(m.Zip(ctx, "example.com/beta", "v0.1.0"))
	if err := disk.Delete(ctx, "meta/example.com/beta/@"); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	e := read(t, disk, "example.com/beta")["v0.1.0"]
	if e.Downloads != 2 || !e.Last.Equal(start.Add(time.Minute)) || e.Origin == "" {
		t.Errorf("beta after the retry: %+v; want 2 downloads, the later access, the origin", e)
	}
	if got := read(t, disk, "example.com/Alpha")["v1.0.0"].Downloads; got != 1 {
		t.Errorf("Alpha's downloads %d after the retry, want still 1", got)
	}
}

// TestMaxPending: beyond MaxPending versions, new ones are dropped and
// counted; a flush makes room once their window has passed.
func TestMaxPending(t *testing.T) {
	c, disk, _ := newCache(t)
	clock := testenv.NewClock(start)
	r := access.New(access.Config{Store: disk, Now: clock.Now, MaxPending: 2})
	m := r.Wrap(c)
	get := served(t)
	ctx := t.Context()
	before := counterValue(metrics.AccessDropped)
	get(m.GoMod(ctx, "example.com/Alpha", "v1.0.0"))
	get(m.GoMod(ctx, "example.com/Alpha", "v1.1.0"))
	get(m.GoMod(ctx, "example.com/beta", "v0.1.0"))  // the third: dropped
	get(m.GoMod(ctx, "example.com/Alpha", "v1.0.0")) // known: counted
	if n := counterValue(metrics.AccessDropped) - before; n != 1 {
		t.Errorf("dropped %v accesses, want 1", n)
	}
	if r.Recent("example.com/beta", "v0.1.0") {
		t.Error("a dropped access is Recent")
	}
	clock.Advance(access.RecentWindow)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	get(m.GoMod(ctx, "example.com/beta", "v0.1.0"))
	if !r.Recent("example.com/beta", "v0.1.0") {
		t.Error("after a flush made room: beta not recorded")
	}
}

// TestRun: a version seen for the first time is written FlushNew later,
// without waiting for FlushEvery.
func TestRun(t *testing.T) {
	c, disk, _ := newCache(t)
	r := access.New(access.Config{Store: disk, FlushEvery: time.Hour, FlushNew: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	served(t)(r.Wrap(c).Zip(t.Context(), "example.com/beta", "v0.1.0"))
	for {
		entries, err := access.Read(t.Context(), disk, "example.com/beta")
		if err != nil {
			t.Fatal(err)
		}
		if entries["v0.1.0"].Downloads == 1 {
			return
		}
		select {
		case <-t.Context().Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestConcurrentFlushes: recorders in several processes (here: two
// recorders) merging into the same documents lose no counts, on each
// store that replicas share.
func TestConcurrentFlushes(t *testing.T) {
	t.Run("disk", func(t *testing.T) {
		d, err := store.NewDisk(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		concurrentFlushes(t, d)
	})
	t.Run("s3", func(t *testing.T) {
		concurrentFlushes(t, newS3(t))
	})
}

func newS3(t *testing.T) *store.S3 {
	t.Helper()
	srv := s3server.Start(t)
	srv.CreateBucket(t, "usage")
	st, err := store.NewS3(t.Context(), store.S3Config{Endpoint: srv.Endpoint, Bucket: "usage", PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// stored answers every canonical request from nothing, as a stored file:
// the recorder's tests of counting need no real files.
type stored struct{ protocol.Modules }

func (stored) Zip(_ context.Context, _, version string) (*protocol.File, error) {
	f := protocol.BytesFile(nil)
	f.Version, f.Stored = version, true
	return f, nil
}

func concurrentFlushes(t *testing.T, st store.Store) {
	const (
		modules   = 4
		versions  = 3
		rounds    = 5
		perRound  = 7 // downloads of each version by each recorder per round
		recorders = 2
	)
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range recorders {
		r := access.New(access.Config{Store: st, Logger: testenv.Logger(t, fmt.Sprint("recorder ", i))})
		m := r.Wrap(stored{})
		wg.Go(func() {
			for range rounds {
				for mod := range modules {
					for v := range versions {
						for range perRound {
							f, _ := m.Zip(ctx, fmt.Sprintf("example.com/m%d", mod), fmt.Sprintf("v1.%d.0", v))
							f.Content.Close()
						}
					}
				}
				// A flush that loses every race keeps its counts: flush
				// until one succeeds, as Run would a minute later.
				for r.Flush(ctx) != nil {
					if ctx.Err() != nil {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for mod := range modules {
		entries := read(t, st, fmt.Sprintf("example.com/m%d", mod))
		for v := range versions {
			if got, want := entries[fmt.Sprintf("v1.%d.0", v)].Downloads, int64(rounds*perRound*recorders); got != want {
				t.Errorf("m%d v1.%d.0: %d downloads, want %d", mod, v, got, want)
			}
		}
	}
}

// TestBrokenDocuments: what Read and a flush make of documents they did
// not write.
func TestBrokenDocuments(t *testing.T) {
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	put := func(path, body string) {
		t.Helper()
		key, _ := access.Key(path)
		if err := d.Put(ctx, key, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("x", 600)
	put("example.com/a", `{"versions":{
		"v1.0.0":{"last":"2026-01-02T03:04:05Z","downloads":3,"origin":"https://proxy.example"},
		"v1.0":{"downloads":1},
		"v2.0.0":{"downloads":1},
		"v1.1.0":{"downloads":-5},
		"v1.2.0":{"downloads":1,"origin":"`+long+`"},
		"v1.3.0":{"downloads":1,"origin":"a\u0007b"}}}`)
	got := read(t, d, "example.com/a")
	if len(got) != 1 || got["v1.0.0"].Downloads != 3 || got["v1.0.0"].Origin != "https://proxy.example" {
		t.Errorf("Read kept %+v; want only v1.0.0 (the others are not valid entries)", got)
	}

	put("example.com/b", "not json")
	put("example.com/c", `{"versions":{"v1.0.0":{"downloads":1,"origin":"`+strings.Repeat("y", 3<<20)+`"}}}`)
	for _, path := range []string{"example.com/b", "example.com/c"} {
		if _, err := access.Read(ctx, d, path); err == nil {
			t.Errorf("Read(%s): no error", path)
		}
	}
	if entries, err := access.Read(ctx, d, "example.com/none"); err != nil || len(entries) != 0 {
		t.Errorf("Read of a module without a document: %v, %v", entries, err)
	}

	// A flush replaces a broken document with its own counts.
	r := access.New(access.Config{Store: d, Now: testenv.NewClock(start).Now, Logger: testenv.Logger(t, "recorder")})
	f, _ := r.Wrap(stored{}).Zip(ctx, "example.com/b", "v1.0.0")
	f.Content.Close()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if e := read(t, d, "example.com/b")["v1.0.0"]; e.Downloads != 1 || !e.Last.Equal(start) {
		t.Errorf("after a flush over a broken document: %+v", e)
	}
}

// TestDocumentBounds: a module keeps the entries of its MaxVersions most
// recently used versions.
func TestDocumentBounds(t *testing.T) {
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := testenv.NewClock(start)
	r := access.New(access.Config{Store: d, Now: clock.Now})
	m := r.Wrap(stored{})
	const extra = 10
	for i := range access.MaxVersions + extra {
		clock.Advance(time.Second)
		f, _ := m.Zip(t.Context(), "example.com/many", fmt.Sprintf("v0.0.%d", i))
		f.Content.Close()
	}
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := read(t, d, "example.com/many")
	if len(got) != access.MaxVersions {
		t.Fatalf("%d entries, want %d", len(got), access.MaxVersions)
	}
	for i := range extra {
		if _, ok := got[fmt.Sprintf("v0.0.%d", i)]; ok {
			t.Errorf("v0.0.%d, among the least recently used, was kept", i)
		}
	}
	key, _ := access.Key("example.com/many")
	info, _ := d.Stat(t.Context(), key)
	t.Logf("document of %d versions: %d bytes", access.MaxVersions, info.Size)
}

// TestForget: the entries of removed versions go; the others and a
// concurrent writer's counts stay.
func TestForget(t *testing.T) {
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	r := access.New(access.Config{Store: d})
	m := r.Wrap(stored{})
	for _, v := range []string{"v1.0.0", "v1.1.0", "v1.2.0"} {
		f, _ := m.Zip(ctx, "example.com/f", v)
		f.Content.Close()
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := access.Forget(ctx, d, "example.com/f", "v1.0.0", "v1.2.0", "v9.0.0"); err != nil {
		t.Fatal(err)
	}
	got := read(t, d, "example.com/f")
	if len(got) != 1 || got["v1.1.0"].Downloads != 1 {
		t.Errorf("after Forget: %+v; want v1.1.0 alone", got)
	}
	// Forgetting in a module without a document writes none.
	if err := access.Forget(ctx, d, "example.com/none", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	key, _ := access.Key("example.com/none")
	if _, err := d.Stat(ctx, key); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Forget created a document: %v", err)
	}
}

// TestDocumentFormat: the stored JSON, which other tools may read.
func TestDocumentFormat(t *testing.T) {
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := access.New(access.Config{Store: d, Now: testenv.NewClock(start).Now})
	f, _ := r.Wrap(stored{}).Zip(t.Context(), "example.com/Fmt", "v1.0.0")
	f.Content.Close()
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	rc, _, err := d.Open(t.Context(), "meta/example.com/!fmt/@/access")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var raw map[string]map[string]map[string]any
	if err := json.NewDecoder(rc).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	e := raw["versions"]["v1.0.0"]
	if e["last"] != "2026-03-04T05:06:07Z" || e["downloads"] != float64(1) || len(e) != 2 {
		t.Errorf("stored entry %v; want last and downloads only", e)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// fetched answers every zip as just fetched from an origin whose name
// carries credentials, which no origin name should.
type fetched struct{ protocol.Modules }

func (fetched) Zip(_ context.Context, _, version string) (*protocol.File, error) {
	f := protocol.BytesFile(nil)
	f.Version, f.Origin, f.Fetched = version, "https://user:s3cret@proxy.example/go", start
	return f, nil
}

// TestOriginsCarryNoCredentials: an origin's name is stored and read
// without credentials, whoever wrote the document.
func TestOriginsCarryNoCredentials(t *testing.T) {
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	r := access.New(access.Config{Store: d, Now: testenv.NewClock(start).Now})
	f, _ := r.Wrap(fetched{}).Zip(ctx, "example.com/a", "v1.0.0")
	f.Content.Close()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	key, _ := access.Key("example.com/a")
	rc, _, err := d.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if strings.Contains(string(raw), "s3cret") || !strings.Contains(string(raw), "proxy.example") {
		t.Errorf("stored document: %s", raw)
	}

	key, _ = access.Key("example.com/b")
	if err := d.Put(ctx, key, strings.NewReader(`{"versions":{"v1.0.0":{"origin":"https://user:s3cret@proxy.example/go"}}}`)); err != nil {
		t.Fatal(err)
	}
	if o := read(t, d, "example.com/b")["v1.0.0"].Origin; strings.Contains(o, "s3cret") || !strings.Contains(o, "proxy.example") {
		t.Errorf("origin read: %q", o)
	}
}
