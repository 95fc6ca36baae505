package cache_test

// Tests of the cache behind the real HTTP handler, on a disk store, fetching
// from fixture upstreams over HTTP through a source chain.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/dirhash"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/server"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

type stack struct {
	up      *testenv.Upstream
	dataDir string
	// modules is what the handler asks: the cache.
	modules protocol.Modules
	handler http.Handler
	url     string
}

func fixtureTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var mods []testenv.Module
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		mods = append(mods, testenv.Module{Path: "example.com/m", Version: v,
			Files: map[string]string{"m.go": "package m\n\nconst V = \"" + v + "\"\n"}})
	}
	testenv.BuildTree(t, dir, mods)
	return dir
}

// newStack serves modgate (server.New, Listen, Serve) over a fresh data
// dir, with the fixture upstream as its only upstream unless upstream (a
// GOPROXY list) is given, verification off and no upstream rate limit;
// edit, if set, changes that configuration before the server is built.
func newStack(t *testing.T, upstream string, edit func(*config.Config), opts ...server.Option) *stack {
	t.Helper()
	s := &stack{up: testenv.NewUpstream(t, fixtureTree(t)), dataDir: filepath.Join(t.TempDir(), "data")}
	if upstream == "" {
		upstream = s.up.URL()
	}
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = s.dataDir
	cfg.Upstream = upstream
	cfg.SumDB = "off"
	cfg.UpstreamRate = 0
	cfg.ListTTL, cfg.NegativeTTL, cfg.FetchTimeout = time.Minute, time.Minute, 30*time.Second
	if edit != nil {
		edit(cfg)
	}
	opts = append([]server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	srv, err := server.New(t.Context(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) // until srv.Close
	s.modules, s.handler, s.url = srv.Modules(), srv.Handler(), "http://"+ln.Addr().String()
	return s
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *stack) get(t *testing.T, path string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(body)}
}

// walk returns every file and directory under dir, relative to it.
func walk(t *testing.T, dir string) []string {
	t.Helper()
	var all []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		all = append(all, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func randomName() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TestRandomMissesLeaveNoStoredState is issue #6's disk and inode growth:
// thousands of requests for random missing modules, versions and branch
// names must leave the data directory exactly as it was, and the memory
// that remembers them bounded by its table size.
func TestRandomMissesLeaveNoStoredState(t *testing.T) {
	const negSize, querySize = 256, 16
	var c *cache.Modules
	s := newStack(t, "", nil, server.WithNewCache(func(cfg cache.Config) *cache.Modules {
		c = cache.NewWithLimits(cfg, negSize, querySize, 16)
		return c
	}))
	// A module that exists, fetched once: its files and list are stored.
	for _, p := range []string{"/example.com/m/@v/list", "/example.com/m/@latest",
		"/example.com/m/@v/v1.0.0.info", "/example.com/m/@v/v1.0.0.mod", "/example.com/m/@v/v1.0.0.zip"} {
		if r := s.get(t, p); r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	c.WaitHashed() // the zip's .ziphash, stored in the background
	before := walk(t, s.dataDir)

	const requests = 3000
	paths := make(chan string)
	go func() {
		defer close(paths)
		for i := range requests {
			mod := "example.com/" + randomName()
			switch i % 8 {
			case 0:
				paths <- "/" + mod + "/@v/list"
			case 1:
				paths <- "/" + mod + "/@latest"
			case 2:
				paths <- "/" + mod + "/@v/v1.0.0.info"
			case 3:
				paths <- "/" + mod + "/@v/v1.0.0.mod"
			case 4:
				paths <- "/" + mod + "/@v/v1.0.0.zip"
			case 5:
				paths <- "/" + mod + "/@v/" + randomName() + ".info" // a branch of a missing module
			case 6:
				paths <- "/example.com/m/@v/branch-" + randomName() + ".info" // a missing branch of a real one
			case 7:
				paths <- fmt.Sprintf("/example.com/m/@v/v1.9.%d.zip", i) // a missing version of a real one
			}
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range paths {
				if r := s.get(t, p); r.status != http.StatusNotFound {
					t.Errorf("GET %s: %d %s, want 404", p, r.status, r.body)
				}
			}
		}()
	}
	wg.Wait()

	// The usage record of the module that was served may be written
	// meanwhile (5 s after its first use); it is the only change allowed.
	unused := func(entries []string) []string {
		return slices.DeleteFunc(slices.Clone(entries), func(p string) bool { return p == "meta/example.com/m/@/access" })
	}
	if after := walk(t, s.dataDir); !slices.Equal(unused(before), unused(after)) {
		var added []string
		for _, p := range after {
			if !slices.Contains(before, p) {
				added = append(added, p)
			}
		}
		t.Errorf("%d requests for missing things added %d files and directories to the data dir, want none; e.g. %q",
			requests, len(added), added[:min(len(added), 5)])
	}
	neg, queries, _ := c.TableLens()
	if neg > negSize || queries > querySize {
		t.Errorf("in-memory tables hold %d not-found answers and %d queries, bounds %d and %d", neg, queries, negSize, querySize)
	}
	if neg != negSize {
		t.Errorf("not-found table holds %d entries after %d misses, want it full (%d): is it in use?", neg, requests, negSize)
	}
	// The module that exists is still served, from storage.
	if r := s.get(t, "/example.com/m/@v/v1.0.0.zip"); r.status != http.StatusOK {
		t.Errorf("stored zip after the misses: %d %s", r.status, r.body)
	}
}

// TestRateLimitOverHTTP checks the client's view of the upstream rate limit:
// 429 with Retry-After and one text/plain line saying what to do, for the
// connection's address whatever X-Forwarded-For says; stored files are
// still served; other addresses are not limited.
func TestRateLimitOverHTTP(t *testing.T) {
	clock := testenv.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newStack(t, "", func(cfg *config.Config) { cfg.UpstreamRate, cfg.UpstreamBurst = 1, 2 }, server.WithClock(clock.Now))
	if r := s.get(t, "/example.com/m/@v/v1.0.0.info"); r.status != http.StatusOK {
		t.Fatalf("found lookup: %d %s", r.status, r.body)
	}
	for i := range 2 {
		if r := s.get(t, fmt.Sprintf("/example.com/m/@v/v1.9.%d.info", i)); r.status != http.StatusNotFound {
			t.Fatalf("miss %d: %d %s", i, r.status, r.body)
		}
	}
	upstreamBefore := s.up.Total()
	for _, p := range []string{"/example.com/nope/@v/list", "/example.com/m/@v/main.info", "/example.com/m/@v/v1.9.9.zip"} {
		r := s.get(t, p, "X-Forwarded-For", "198.51.100.7")
		if r.status != http.StatusTooManyRequests {
			t.Fatalf("GET %s over the limit: %d %s, want 429", p, r.status, r.body)
		}
		if ra := r.header.Get("Retry-After"); ra != "1" {
			t.Errorf("GET %s: Retry-After %q, want 1", p, ra)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		if !strings.HasPrefix(r.body, "modgate: ") || strings.Count(r.body, "\n") != 1 ||
			!strings.Contains(r.body, "127.0.0.1") || !strings.Contains(r.body, "--upstream-rate") {
			t.Errorf("GET %s: body %q, want one line naming the client and what to do", p, r.body)
		}
	}
	if n := s.up.Total() - upstreamBefore; n != 0 {
		t.Errorf("refused lookups reached the upstream %d times", n)
	}
	// Stored files and remembered not-found answers are served as before.
	if r := s.get(t, "/example.com/m/@v/v1.0.0.info"); r.status != http.StatusOK {
		t.Errorf("stored file while limited: %d %s", r.status, r.body)
	}
	if r := s.get(t, "/example.com/m/@v/v1.9.0.info"); r.status != http.StatusNotFound {
		t.Errorf("remembered not-found while limited: %d %s", r.status, r.body)
	}
	// Another address has its own bucket.
	req := httptest.NewRequest(http.MethodGet, "/example.com/nope/@v/list", nil)
	req.RemoteAddr = "192.0.2.44:5555"
	w := httptest.NewRecorder()
	s.handler.ServeHTTP(w, req)
	if w.Code != http.StatusNotFound {
		t.Errorf("another client: %d %s, want 404", w.Code, w.Body)
	}
	// A second later, one more lookup.
	clock.Advance(time.Second)
	if r := s.get(t, "/example.com/m/@v/v1.9.3.info"); r.status != http.StatusNotFound {
		t.Errorf("a second later: %d %s, want 404", r.status, r.body)
	}
}

// TestDegradedAnswersNotCacheable checks that a @v/list or @latest made
// from stored files alone, while the upstream is down and never answered
// that question, is marked and not cacheable by clients; and that the
// answer is an ordinary one again once the upstream is back.
func TestDegradedAnswersNotCacheable(t *testing.T) {
	s := newStack(t, "", nil)
	for _, p := range []string{"/example.com/m/@v/v1.0.0.info", "/example.com/m/@v/v1.0.0.mod"} {
		if r := s.get(t, p); r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	s.up.SetDown(true)
	for _, tc := range []struct{ path, want string }{
		{"/example.com/m/@v/list", "v1.0.0\n"},
		{"/example.com/m/@latest", `"Version":"v1.0.0"`},
	} {
		r := s.get(t, tc.path)
		if r.status != http.StatusOK || !strings.Contains(r.body, tc.want) {
			t.Fatalf("GET %s with the upstream down: %d %q, want 200 with %q", tc.path, r.status, r.body, tc.want)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s made from stored files alone: Cache-Control %q, want no-store", tc.path, cc)
		}
		if r.header.Get("X-Modgate-Degraded") == "" {
			t.Errorf("GET %s made from stored files alone: no X-Modgate-Degraded header", tc.path)
		}
	}
	s.up.SetDown(false)
	for _, p := range []string{"/example.com/m/@v/list", "/example.com/m/@latest"} {
		r := s.get(t, p)
		if r.status != http.StatusOK || !strings.Contains(r.body, "v1.1.0") {
			t.Fatalf("GET %s with the upstream back: %d %q", p, r.status, r.body)
		}
		if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") || r.header.Get("X-Modgate-Degraded") != "" {
			t.Errorf("GET %s with the upstream back: Cache-Control %q, X-Modgate-Degraded %q", p, cc, r.header.Get("X-Modgate-Degraded"))
		}
	}
}

// TestInvalidAnswerNamesOrigin checks that an invalid file is blamed on the
// chain entry that sent it, not on the whole chain.
func TestInvalidAnswerNamesOrigin(t *testing.T) {
	empty := testenv.NewUpstream(t, t.TempDir()) // answers 404: the chain falls through
	liar := testenv.NewUpstream(t, fixtureTree(t))
	liar.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		// @latest falls back to the list's newest version, v1.1.0: its
		// .info is broken too, so that the answer is a 502 as well.
		case "/example.com/m/@v/v1.0.0.info", "/example.com/m/@v/v1.1.0.info", "/example.com/m/@v/main.info", "/example.com/m/@latest":
			fmt.Fprint(w, "<html>not json</html>")
		case "/example.com/m/@v/v1.0.0.mod":
			fmt.Fprint(w, "module example.com/m\nrequire ( {{\n")
		case "/example.com/m/@v/v1.0.0.zip":
			fmt.Fprint(w, "PK not a zip")
		default:
			return false
		}
		return true
	})
	s := newStack(t, empty.URL()+","+liar.URL(), nil)
	for _, p := range []string{"/example.com/m/@v/v1.0.0.info", "/example.com/m/@v/main.info",
		"/example.com/m/@v/v1.0.0.mod", "/example.com/m/@v/v1.0.0.zip", "/example.com/m/@latest"} {
		r := s.get(t, p)
		if r.status != http.StatusBadGateway {
			t.Errorf("GET %s: %d %q, want 502", p, r.status, r.body)
			continue
		}
		if !strings.Contains(r.body, liar.URL()+" sent an invalid") || strings.Contains(r.body, empty.URL()) {
			t.Errorf("GET %s: %q; want it to blame %s alone", p, r.body, liar.URL())
		}
	}
}

// TestProvenance checks what answers say about where they came from:
// fetched or stored, from which origin of the chain, when, and the h1: hash
// of go.mod and zip files, whether just fetched or stored before.
func TestProvenance(t *testing.T) {
	empty := testenv.NewUpstream(t, t.TempDir()) // answers 404: the chain falls through
	tree := fixtureTree(t)
	up := testenv.NewUpstream(t, tree)
	s := newStack(t, empty.URL()+","+up.URL(), nil)
	ctx := context.Background()
	before := time.Now().Add(-time.Second)

	zipH1, err := dirhash.HashZip(filepath.Join(tree, "example.com/m/@v/v1.0.0.zip"), dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(tree, "example.com/m/@v/v1.0.0.mod"))
	if err != nil {
		t.Fatal(err)
	}
	modH1, err := modcheck.HashGoMod(gomod)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		get  func() (*protocol.File, error)
		h1   string
	}{
		{"zip", func() (*protocol.File, error) { return s.modules.Zip(ctx, "example.com/m", "v1.0.0") }, zipH1},
		{"mod", func() (*protocol.File, error) { return s.modules.GoMod(ctx, "example.com/m", "v1.0.0") }, modH1},
		{"info", func() (*protocol.File, error) { return s.modules.Info(ctx, "example.com/m", "v1.0.0") }, ""},
	} {
		for round, stored := range []bool{false, true} {
			f, err := tc.get()
			if err != nil {
				t.Fatalf("%s round %d: %v", tc.name, round, err)
			}
			f.Content.Close()
			origin := up.URL()
			if stored {
				origin = "" // storage does not record it
			}
			if f.Stored != stored || f.Origin != origin || f.Fetched.Before(before) || !f.Fetched.Equal(f.ModTime) ||
				f.Version != "v1.0.0" || f.Mutable || f.Degraded || f.Size == 0 || f.ETag == "" {
				t.Errorf("%s round %d: %+v; want stored=%v from %q, immutable, with size, time and ETag", tc.name, round, f, stored, origin)
			}
			if tc.h1 == "" {
				if f.H1 != nil {
					t.Errorf("%s: has an H1", tc.name)
				}
				continue
			}
			if h1, err := f.H1(ctx); err != nil || h1 != tc.h1 {
				t.Errorf("%s round %d: H1 = %q, %v; want %s", tc.name, round, h1, err, tc.h1)
			}
		}
	}

	// Lists and @latest: the origin is kept with the answer, so a stored
	// answer names it too.
	var fetched time.Time
	for round, stored := range []bool{false, true} {
		vs, err := s.modules.List(ctx, "example.com/m")
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			fetched = vs.Fetched
		}
		if vs.Stored != stored || vs.Origin != up.URL() || vs.Fetched.Before(before) || !vs.Fetched.Equal(fetched) || vs.Degraded {
			t.Errorf("List round %d: %+v; want stored=%v from %s, fetched once", round, vs.Provenance, stored, up.URL())
		}
		// The fixture upstream has no @latest: it is computed from the list,
		// whose provenance it has.
		f, err := s.modules.Latest(ctx, "example.com/m")
		if err != nil {
			t.Fatal(err)
		}
		f.Content.Close()
		if f.Version != "v1.1.0" || !f.Mutable || f.Stored != stored || f.Origin != up.URL() || f.H1 != nil {
			t.Errorf("Latest round %d: %+v; want v1.1.0, mutable, stored=%v, from %s", round, f, stored, up.URL())
		}
	}
}

// TestListKeepsTimes checks that the times an upstream gives in its
// @v/list lines are kept, in the list answer, in the stored list (so a new
// process serves them), and in the @v/list served, while times that are not
// RFC 3339 and further fields are dropped.
func TestListKeepsTimes(t *testing.T) {
	tree := fixtureTree(t)
	up := testenv.NewUpstream(t, tree)
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/example.com/m/@v/list" {
			return false
		}
		fmt.Fprint(w, "v1.1.0 2021-06-07T08:09:10+02:00 more fields\n\n  v1.0.0\t2019-03-01T12:00:00Z\nv1.2.0 yesterday\n")
		return true
	})
	s := newStack(t, up.URL(), nil)
	const want = "v1.0.0 2019-03-01T12:00:00Z\nv1.1.0 2021-06-07T08:09:10+02:00\nv1.2.0\n"
	for round := range 2 {
		r := s.get(t, "/example.com/m/@v/list")
		if r.status != http.StatusOK || r.body != want {
			t.Errorf("round %d: @v/list = %d %q, want %q", round, r.status, r.body, want)
		}
	}
	// A new process over the same storage, with the upstream down.
	up.SetDown(true)
	disk, err := store.NewDisk(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	m := cache.New(cache.Config{Store: disk, Source: source.NewUpstream(up.URL(), nil), ListTTL: time.Hour})
	defer m.Close()
	vs, err := m.List(context.Background(), "example.com/m")
	if err != nil || vs.Degraded || len(vs.Tagged) != 3 {
		t.Fatalf("List after a restart = %+v, %v", vs, err)
	}
	wantTimes := []time.Time{time.Date(2019, 3, 1, 12, 0, 0, 0, time.UTC), time.Date(2021, 6, 7, 6, 9, 10, 0, time.UTC), {}}
	for i, v := range vs.Tagged {
		if !v.Time.Equal(wantTimes[i]) {
			t.Errorf("after a restart: %s at %v, want %v", v.Version, v.Time, wantTimes[i])
		}
	}
}
