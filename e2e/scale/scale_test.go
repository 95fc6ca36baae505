// Package scale tests modgate as several replicas sharing one S3 bucket
// (versitygw) and one Redis, in front of a counting fixture upstream: one
// upstream fetch per file for the whole cluster, a replica killed in the
// middle of a fetch, a rolling restart under load, and serving with the
// upstream gone.
package scale

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/redisserver"
	"github.com/modgate/modgate/internal/testenv/s3server"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinary()
	os.Exit(code)
}

// modules are the fixture modules: a few small ones and a large one.
func modules() []testenv.Module {
	var mods []testenv.Module
	for i := range 5 {
		name := fmt.Sprintf("m%d", i)
		mods = append(mods, testenv.Module{Path: "example.com/" + name, Version: "v1.0.0", Files: map[string]string{
			name + ".go": "package " + name + "\n\n// " + strings.Repeat("filler ", 3000) + "\n",
		}})
	}
	mods = append(mods, testenv.Module{Path: "example.com/big", Version: "v1.0.0", Files: map[string]string{
		"big.go":  "package big\n",
		"data.go": "package big\n\n// " + strings.Repeat(fmt.Sprintf("%x", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Unix()), 400000) + "\n",
	}})
	return mods
}

// cluster is three modgate replicas over one bucket and one Redis.
type cluster struct {
	t      testing.TB
	up     *testenv.Upstream
	s3     *s3server.Server
	redis  *redisserver.Server
	bucket string
	dirs   []string
	procs  []*testenv.Proc
}

func newCluster(t testing.TB, n int) *cluster {
	return newClusterOf(t, n, modules())
}

// newClusterOf is newCluster in front of an upstream serving mods.
func newClusterOf(t testing.TB, n int, mods []testenv.Module) *cluster {
	t.Helper()
	tree := t.TempDir()
	testenv.BuildTree(t, tree, mods)
	c := &cluster{t: t, up: testenv.NewUpstream(t, tree), s3: s3server.Start(t), redis: redisserver.Start(t), bucket: "modules"}
	c.s3.CreateBucket(t, c.bucket)
	for i := range n {
		c.dirs = append(c.dirs, t.TempDir())
		c.procs = append(c.procs, nil)
		c.start(i)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range c.procs {
				if p != nil {
					t.Logf("replica %d logs:\n%s", i, p.Logs())
				}
			}
		}
	})
	return c
}

// start (re)starts replica i on its own scratch directory.
func (c *cluster) start(i int) {
	c.t.Helper()
	env := []string{"MODGATE_S3_ACCESS_KEY=" + c.s3.AccessKey, "MODGATE_S3_SECRET_KEY=" + c.s3.SecretKey}
	c.procs[i] = testenv.StartEnv(c.t, env, "--data-dir", c.dirs[i], "--upstream", c.up.URL(),
		"--storage", "s3", "--s3-endpoint", c.s3.Endpoint, "--s3-bucket", c.bucket, "--s3-prefix", "modgate/", "--s3-path-style",
		"--redis", c.redis.URL, "--lease", "2s", "--prefetch=false", "--upstream-rate", "0", "--log-format", "text")
}

func (c *cluster) url(i int, path, version, ext string) string {
	return fmt.Sprintf("%s/%s/@v/%s.%s", c.procs[i].URL, path, version, ext)
}

var client = &http.Client{Timeout: 2 * time.Minute}

func fetch(url string) (int, []byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// fixture returns the upstream's bytes of a file.
func (c *cluster) fixture(path, version, ext string) []byte {
	b, err := os.ReadFile(c.up.FilePath(path, version, ext))
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// TestOneFetchForTheCluster: 100 concurrent cold requests for one zip,
// spread over three replicas, make exactly one upstream fetch, and every
// answer is the upstream's bytes; the same for an .info.
func TestOneFetchForTheCluster(t *testing.T) {
	c := newCluster(t, 3)
	// A slow upstream, so that every request arrives while the first
	// fetch runs.
	c.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, ".zip") || strings.HasSuffix(r.URL.Path, ".info") {
			time.Sleep(time.Second)
		}
		return false
	})
	for _, f := range []struct{ path, ext string }{{"example.com/big", "zip"}, {"example.com/m1", "info"}} {
		want := c.fixture(f.path, "v1.0.0", f.ext)
		var wg sync.WaitGroup
		var bad atomic.Int64
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, body, err := fetch(c.url(i%3, f.path, "v1.0.0", f.ext))
				if err != nil || status != 200 || !bytes.Equal(body, want) {
					bad.Add(1)
					t.Errorf("request %d for %s.%s: status %d, %d bytes, err %v", i, f.path, f.ext, status, len(body), err)
				}
			}()
		}
		wg.Wait()
		if n := c.up.Count("/" + f.path + "/@v/v1.0.0." + f.ext); n != 1 {
			t.Errorf("%s.%s: %d upstream fetches for 100 requests over 3 replicas, want 1", f.path, f.ext, n)
		}
	}
}

// TestReplicaKilledMidFetch: the replica fetching a slow zip is killed;
// another takes the fetch over once its lease expires, and every client
// of the survivors gets the right bytes; nothing corrupt is ever stored.
func TestReplicaKilledMidFetch(t *testing.T) {
	c := newCluster(t, 3)
	started := make(chan struct{}, 8)
	var slow atomic.Bool
	slow.Store(true)
	c.up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/big/@v/v1.0.0.zip") || !slow.Load() {
			return false
		}
		started <- struct{}{}
		// Half the zip, then silence until the client goes away.
		data, _ := os.ReadFile(c.up.FilePath("example.com/big", "v1.0.0", "zip"))
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(200)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	})
	want := c.fixture("example.com/big", "v1.0.0", "zip")
	go fetch(c.url(0, "example.com/big", "v1.0.0", "zip")) // replica 0 takes the fetch
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("replica 0 never fetched from the upstream")
	}
	type result struct {
		status int
		body   []byte
		err    error
	}
	results := make(chan result, 10)
	for i := range 10 {
		go func() {
			status, body, err := fetch(c.url(1+i%2, "example.com/big", "v1.0.0", "zip"))
			results <- result{status, body, err}
		}()
	}
	time.Sleep(500 * time.Millisecond) // they wait for replica 0's lock
	slow.Store(false)                  // the next fetch is served at full speed
	c.procs[0].Kill()                  // kill -9 while it holds the lock, mid-download
	for range 10 {
		r := <-results
		if r.err != nil || r.status != 200 || !bytes.Equal(r.body, want) {
			t.Errorf("a survivor's client got status %d, %d bytes (want %d), err %v", r.status, len(r.body), len(want), r.err)
		}
	}
	if n := c.up.Count("/example.com/big/@v/v1.0.0.zip"); n != 2 {
		t.Errorf("upstream fetches of the zip: %d, want 2 (the killed one, then one takeover)", n)
	}
	c.start(0)
	if status, body, err := fetch(c.url(0, "example.com/big", "v1.0.0", "zip")); err != nil || status != 200 || !bytes.Equal(body, want) {
		t.Errorf("the restarted replica serves status %d, %d bytes, err %v", status, len(body), err)
	}
}

// balancer is a load balancer in front of the replicas: round robin, and
// a GET that cannot reach one replica (stopped, restarting, or closing the
// connection) is sent to the next, as a cloud load balancer retries an
// idempotent request on another backend.
type balancer struct {
	mu       sync.Mutex
	backends []string
	next     int
	tr       *http.Transport
}

func (b *balancer) set(i int, url string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.backends) <= i {
		b.backends = append(b.backends, "")
	}
	b.backends[i] = url
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	order := make([]string, 0, len(b.backends))
	for k := range b.backends {
		if u := b.backends[(b.next+k)%len(b.backends)]; u != "" {
			order = append(order, u)
		}
	}
	b.next++
	b.mu.Unlock()
	var lastErr error
	for _, base := range order {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), nil)
		req.Header = r.Header.Clone()
		resp, err := b.tr.RoundTrip(req)
		if err != nil {
			lastErr = err
			continue
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	http.Error(w, fmt.Sprintf("no replica answered: %v", lastErr), http.StatusBadGateway)
}

// TestRollingRestartUnderLoad: while go mod download runs in a loop
// through a load balancer, every replica is restarted in turn (SIGTERM,
// drain, start): not one download fails. Then the upstream goes away, and
// every replica serves everything byte for byte from the bucket; no
// replica holds a module file on its own disk.
func TestRollingRestartUnderLoad(t *testing.T) {
	c := newCluster(t, 3)
	lb := &balancer{tr: &http.Transport{}}
	for i, p := range c.procs {
		lb.set(i, p.URL)
	}
	front := newServer(t, lb)

	var mods []string
	for _, m := range modules() {
		mods = append(mods, m.Path+"@"+m.Version)
	}
	stop := make(chan struct{})
	var runs, failures atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				home := filepath.Join(t.TempDir(), fmt.Sprintf("w%d-%d", w, n))
				env := append(testenv.GoEnv(home, front), "GOSUMDB=off")
				out, err := testenv.Go(t, t.TempDir(), env, append([]string{"mod", "download"}, mods...)...)
				runs.Add(1)
				if err != nil {
					failures.Add(1)
					t.Errorf("go mod download failed during the rolling restart: %v\n%s", err, out)
				}
			}
		}()
	}
	// Downloads run before the first restart and go on after each one:
	// rather than sleeping for a guess at how long one takes, wait until
	// the count of finished downloads has grown.
	grown := func(what string) bool {
		n := runs.Load()
		deadline := time.Now().Add(2 * time.Minute)
		for runs.Load() == n {
			if time.Now().After(deadline) {
				t.Errorf("no go mod download finished in 2 minutes %s", what)
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
		return true
	}
	if grown("before the first restart") {
		for i := range c.procs {
			lb.set(i, "") // the load balancer drains it first, as readiness would
			c.procs[i].Stop(t)
			c.start(i)
			lb.set(i, c.procs[i].URL)
			if !grown(fmt.Sprintf("after replica %d restarted", i)) {
				break
			}
		}
	}
	close(stop)
	wg.Wait()
	if runs.Load() < 3 {
		t.Errorf("only %d downloads ran during the restarts", runs.Load())
	}
	t.Logf("%d go mod download runs, %d failed", runs.Load(), failures.Load())

	// The upstream gone: every replica serves every file from the bucket.
	c.up.SetDown(true)
	for i := range c.procs {
		for _, m := range modules() {
			for _, ext := range []string{"info", "mod", "zip"} {
				status, body, err := fetch(c.url(i, m.Path, m.Version, ext))
				if err != nil || status != 200 || !bytes.Equal(body, c.fixture(m.Path, m.Version, ext)) {
					t.Errorf("replica %d, upstream down: %s@%s.%s: status %d, err %v", i, m.Path, m.Version, ext, status, err)
				}
			}
		}
	}
	for i, dir := range c.dirs {
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() && (strings.HasSuffix(p, ".zip") || strings.HasSuffix(p, ".mod")) {
				t.Errorf("replica %d keeps a module file on its own disk: %s", i, p)
			}
			return nil
		})
	}
	if n := countFiles(t, c.s3.Dir, ".zip"); n < len(modules()) {
		t.Errorf("the bucket holds %d zips, want %d", n, len(modules()))
	}
}

func countFiles(t *testing.T, dir, suffix string) int {
	n := 0
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, suffix) {
			n++
		}
		return nil
	})
	return n
}

// newServer serves h on 127.0.0.1 until the test ends and returns its URL.
func newServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
