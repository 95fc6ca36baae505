package prefetch_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/prefetch"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	sumdbv "github.com/modgate/modgate/internal/sumdb"
	"github.com/modgate/modgate/internal/testenv"
)

const (
	// benchModules is the size of the fixture graph.
	benchModules = 31
	// benchLatency is added to every request to the upstream and to the
	// checksum database: a nearby network, not the internet.
	benchLatency = 5 * time.Millisecond
	// clientParallelism is how many requests the go command keeps in
	// flight on a two-core machine (GOMAXPROCS, cmd/go/internal/modload).
	clientParallelism = 2
	benchDBName       = "sumdb.bench.example"
)

// BenchmarkColdGraph times a client walking a module graph it has never
// fetched through a cold modgate, as the go command does for `go mod
// download`: the go.mod files of the graph (clientParallelism at a time,
// each go.mod's requirements queued as it is read), then the .info and zip
// of every module. The upstream and the checksum database answer after
// benchLatency. Compare prefetch=on with prefetch=off for the ratio.
//
// Shapes (benchModules modules, each requiring two others as a binary
// tree):
//
//   - unpruned: go.mod files at go 1.16, the main module requiring the
//     root: the go command walks the whole tree, one level after another;
//   - pruned: go.mod files at go 1.21, the main module requiring every
//     module (as a tidy go.mod lists them): the go command reads each
//     module's go.mod, in path order, and walks no further.
//
// Verification: off (--sumdb off), or on against an in-process checksum
// database over HTTP, tree state cold like a fresh install.
func BenchmarkColdGraph(b *testing.B) {
	for _, shape := range []string{"unpruned", "pruned"} {
		g := newBenchGraph(b, shape)
		for _, verify := range []bool{false, true} {
			for _, on := range []bool{false, true} {
				name := fmt.Sprintf("%s/verify=%v/prefetch=%v", shape, onOff(verify), onOff(on))
				b.Run(name, func(b *testing.B) { g.run(b, verify, on) })
			}
		}
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

type benchGraph struct {
	mods   []testenv.Module
	roots  []module.Version // the main module's requirements
	walk   bool             // the client follows requirements
	up     *testenv.Upstream
	db     sumdbv.DB
	client *http.Client
}

func newBenchGraph(b *testing.B, shape string) *benchGraph {
	goVersion := map[string]string{"unpruned": "1.16", "pruned": "1.21"}[shape]
	name := func(i int) string { return fmt.Sprintf("bench.example/m%02d@v1.0.0", i) }
	g := &benchGraph{walk: shape == "unpruned"}
	for i := range benchModules {
		var reqs []string
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < benchModules {
				reqs = append(reqs, name(c))
			}
		}
		m := mod(name(i), goVersion, reqs...)
		g.mods = append(g.mods, m)
		if g.walk && i > 0 {
			continue
		}
		g.roots = append(g.roots, module.Version{Path: m.Path, Version: m.Version})
	}
	tree := b.TempDir()
	testenv.BuildTree(b, tree, g.mods)
	g.up = testenv.NewUpstream(b, tree)
	g.up.SetHook(func(http.ResponseWriter, *http.Request) bool {
		time.Sleep(benchLatency)
		return false
	})
	g.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	// The checksum database, holding every module's hashes.
	gosum := map[string]string{}
	for _, m := range g.mods {
		zh, err := dirhash.HashZip(g.up.FilePath(m.Path, m.Version, "zip"), dirhash.Hash1)
		if err != nil {
			b.Fatal(err)
		}
		mh, err := modcheck.HashGoMod([]byte(m.GoMod()))
		if err != nil {
			b.Fatal(err)
		}
		gosum[m.Path+"@"+m.Version] = fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", m.Path, m.Version, zh, m.Path, m.Version, mh)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, benchDBName)
	if err != nil {
		b.Fatal(err)
	}
	dbHandler := sumdb.NewServer(sumdb.NewTestServer(skey, func(path, vers string) ([]byte, error) {
		if lines, ok := gosum[path+"@"+vers]; ok {
			return []byte(lines), nil
		}
		return nil, os.ErrNotExist
	}))
	dbsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(benchLatency)
		dbHandler.ServeHTTP(w, r)
	}))
	b.Cleanup(dbsrv.Close)
	g.db = sumdbv.DB{Name: benchDBName, Key: vkey, URL: dbsrv.URL}
	for _, m := range g.mods { // the database's own first lookup of a record is not modgate's cost
		if _, err := get(g.client, dbsrv.URL+"/lookup/"+m.Path+"@"+m.Version); err != nil {
			b.Fatal(err)
		}
	}
	return g
}

// run times cold walks, each through a fresh modgate over empty storage.
func (g *benchGraph) run(b *testing.B, verify, prefetchOn bool) {
	log := slog.New(slog.DiscardHandler)
	chain, err := source.ParseList(g.up.URL(), func(base string) source.Source {
		return source.NewUpstream(base, source.NewHTTPClient())
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	upstream := 0
	var graph, download time.Duration
	for b.Loop() {
		b.StopTimer()
		disk, err := store.NewDisk(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		cfg := cache.Config{Store: disk, Source: chain, ScratchDir: disk.StagingDir(), Logger: log}
		var verifier *sumdbv.Verifier
		if verify {
			verifier = sumdbv.NewVerifier(sumdbv.Config{DB: g.db, Store: disk, Remote: sumdbv.NewRemote(g.db, nil, g.client), Logger: log})
			cfg.Verifier = verifier
		}
		c := cache.New(cfg)
		var modules protocol.Modules = c
		var pf *prefetch.Modules
		if prefetchOn {
			pf = prefetch.Wrap(c, prefetch.Options{Logger: log})
			modules = pf
		}
		srv := httptest.NewServer(&goproxy.Handler{Modules: modules})
		before := g.up.Total()
		b.StartTimer()

		g1, d1, err := g.walkGraph(ctx, srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		graph += g1
		download += d1

		b.StopTimer()
		srv.Close()
		if pf != nil {
			pf.Close()
		}
		c.Close()
		if verifier != nil {
			verifier.Close()
		}
		upstream += g.up.Total() - before
		b.StartTimer()
	}
	b.ReportMetric(float64(upstream)/float64(b.N), "upstream-requests/op")
	b.ReportMetric(float64(graph.Milliseconds())/float64(b.N), "graph-ms/op")
	b.ReportMetric(float64(download.Milliseconds())/float64(b.N), "download-ms/op")
}

// walkGraph does what the go command does for `go mod download` in a
// module requiring g.roots: load the module graph (go.mod files,
// clientParallelism at a time, following requirements when g.walk), then
// download the .info and zip of every module in it. It returns the time
// each of the two phases took.
func (g *benchGraph) walkGraph(ctx context.Context, base string) (graph, download time.Duration, err error) {
	start := time.Now()
	var (
		mu       sync.Mutex
		firstErr error
		seen     = map[module.Version]bool{}
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	q := newWorkQueue(clientParallelism)
	var load func(m module.Version)
	load = func(m module.Version) {
		mu.Lock()
		dup := seen[m]
		seen[m] = true
		mu.Unlock()
		if dup {
			return
		}
		q.add(func() {
			data, err := get(g.client, fileURL(base, m, "mod"))
			if err != nil {
				fail(err)
				return
			}
			if !g.walk {
				return
			}
			mf, err := modfile.ParseLax("go.mod", data, nil)
			if err != nil {
				fail(err)
				return
			}
			for _, r := range mf.Require {
				load(r.Mod)
			}
		})
	}
	for _, m := range g.roots {
		load(m)
	}
	q.wait()
	if firstErr != nil {
		return 0, 0, firstErr
	}
	graph = time.Since(start)
	start = time.Now()

	var list []module.Version
	for m := range seen {
		list = append(list, m)
	}
	slices.SortFunc(list, func(a, b module.Version) int { return strings.Compare(a.Path, b.Path) })
	q = newWorkQueue(clientParallelism)
	for _, m := range list {
		q.add(func() {
			for _, ext := range []string{"info", "zip"} {
				if _, err := get(g.client, fileURL(base, m, ext)); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	q.wait()
	return graph, time.Since(start), firstErr
}

func fileURL(base string, m module.Version, ext string) string {
	ep, _ := module.EscapePath(m.Path)
	ev, _ := module.EscapeVersion(m.Version)
	return base + "/" + ep + "/@v/" + ev + "." + ext
}

func get(client *http.Client, url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", url, resp.Status, data)
	}
	return data, err
}

// workQueue runs functions at most n at a time, in the order they were
// added, like the go command's par.Queue.
type workQueue struct {
	mu      sync.Mutex
	pending []func()
	running int
	n       int
	wg      sync.WaitGroup
}

func newWorkQueue(n int) *workQueue { return &workQueue{n: n} }

func (q *workQueue) add(f func()) {
	q.wg.Add(1)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, f)
	if q.running < q.n {
		q.running++
		go q.drain()
	}
}

// drain runs pending functions until none is left.
func (q *workQueue) drain() {
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.running--
			q.mu.Unlock()
			return
		}
		f := q.pending[0]
		q.pending = q.pending[1:]
		q.mu.Unlock()
		f()
		q.wg.Done()
	}
}

func (q *workQueue) wait() { q.wg.Wait() }
