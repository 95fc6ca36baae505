package history_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modgate/modgate/internal/history"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// start is on an hour, plus a few seconds, as a sampler's first sample.
var start = time.Date(2026, 5, 6, 10, 0, 3, 0, time.UTC)

// counters are the metrics the History reads, in a registry of the test's
// own, named and labelled as package metrics has them.
type counters struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	cache    *prometheus.CounterVec
	upstream *prometheus.CounterVec
}

func newCounters() *counters {
	c := &counters{
		reg:      prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modgate_http_requests_total", Help: "h"}, []string{"endpoint", "code"}),
		bytes:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modgate_http_response_bytes_total", Help: "h"}, []string{"endpoint"}),
		cache:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modgate_cache_requests_total", Help: "h"}, []string{"kind", "result"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modgate_upstream_fetches_total", Help: "h"}, []string{"kind", "outcome"}),
	}
	c.reg.MustRegister(c.requests, c.bytes, c.cache, c.upstream)
	return c
}

// traffic counts one minute's worth of answers: n of each kind.
func (c *counters) traffic(n float64) {
	c.requests.WithLabelValues("zip", "200").Add(n)
	c.requests.WithLabelValues("mod", "404").Add(n)      // not found: no error
	c.requests.WithLabelValues("info", "403").Add(n)     // refused: an error
	c.requests.WithLabelValues("list", "502").Add(n)     // failed: a server error
	c.requests.WithLabelValues("ops", "200").Add(10 * n) // health checks: not charted
	c.requests.WithLabelValues("other", "200").Add(n)    // admin API, UI: not charted
	c.bytes.WithLabelValues("zip").Add(1000 * n)
	c.bytes.WithLabelValues("ops").Add(1000 * n)
	c.cache.WithLabelValues("zip", "hit").Add(n)
	c.cache.WithLabelValues("list", "stale").Add(n)
	c.cache.WithLabelValues("mod", "miss").Add(n)
	c.cache.WithLabelValues("zip", "rate_limited").Add(n)
	c.upstream.WithLabelValues("mod", "ok").Add(n)
	c.upstream.WithLabelValues("zip", "error").Add(n)
	c.upstream.WithLabelValues("zip", "invalid").Add(n)
	c.upstream.WithLabelValues("list", "not_found").Add(n)
}

// want is what traffic(n) and d downloads make a bucket hold.
func want(n, d int64) history.Figures {
	return history.Figures{Requests: 4 * n, Hits: 2 * n, Misses: n, Bytes: 1000 * n,
		UpstreamFetches: 4 * n, UpstreamErrors: 2 * n, Errors: 2 * n, ServerErrors: n, Downloads: d}
}

func newDisk(t *testing.T) *store.Disk {
	t.Helper()
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newHistory(t *testing.T, st store.Store, c *counters, clock *testenv.Clock, replica string) *history.History {
	t.Helper()
	return history.New(t.Context(), history.Config{Gatherer: c.reg, Store: st, Replica: replica,
		Now: clock.Now, Logger: testenv.Logger(t, "history "+replica)})
}

// ask serves GET /admin/v1/history?<query> and decodes the answer,
// refusing fields the documented shape does not have.
func ask(t *testing.T, h *history.History, query string) history.Answer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/v1/history?"+query, nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET ?%s: %d %s %s", query, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var a history.Answer
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatal(err)
	}
	return a
}

// bucket returns the figures of the bucket starting at at.
func bucket(t *testing.T, a history.Answer, at time.Time) history.Figures {
	t.Helper()
	for _, b := range a.Buckets {
		if b.T.Equal(at) {
			return b.Figures
		}
	}
	t.Fatalf("no bucket at %v in %s answer", at, a.Range)
	return history.Figures{}
}

func total(a history.Answer) history.Figures {
	var f history.Figures
	for _, b := range a.Buckets {
		f.Requests += b.Requests
		f.Downloads += b.Downloads
		f.Bytes += b.Bytes
	}
	return f
}

// TestSample: what one sample counts, and into which buckets.
func TestSample(t *testing.T) {
	c := newCounters()
	c.traffic(100) // before the History: not counted
	clock := testenv.NewClock(start)
	h := newHistory(t, newDisk(t), c, clock, "a")

	c.traffic(3)
	h.Download("example.com/a")
	clock.Advance(time.Minute)
	h.Sample()
	c.traffic(5)
	clock.Advance(time.Minute)
	h.Sample()
	h.Sample() // nothing since: adds nothing

	hours := ask(t, h, "range=hours")
	if got := bucket(t, hours, start.Truncate(10*time.Minute)); got != want(8, 1) {
		t.Errorf("10-minute bucket: %+v\nwant %+v", got, want(8, 1))
	}
	days := ask(t, h, "range=days")
	if got := bucket(t, days, start.Truncate(time.Hour)); got != want(8, 1) {
		t.Errorf("hour bucket: %+v\nwant %+v", got, want(8, 1))
	}
	if total(hours) != total(days) || total(hours).Requests != 32 {
		t.Errorf("totals: hours %+v, days %+v", total(hours), total(days))
	}
}

// TestCounterReset: a counter that starts again from zero (its process
// restarted, or it was made anew) grew by its new value, never by a
// negative amount.
func TestCounterReset(t *testing.T) {
	c := newCounters()
	clock := testenv.NewClock(start)
	h := newHistory(t, newDisk(t), c, clock, "a")
	c.traffic(10)
	clock.Advance(time.Minute)
	h.Sample()

	// The counters are made anew and count 2 of each.
	c.reg.Unregister(c.requests)
	c.reg.Unregister(c.upstream)
	fresh := newCounters()
	c.requests, c.upstream = fresh.requests, fresh.upstream
	c.reg.MustRegister(c.requests, c.upstream)
	c.traffic(2)
	// The bytes and cache counters went on: 10+2.
	clock.Advance(time.Minute)
	h.Sample()

	got := ask(t, h, "range=hours")
	f := bucket(t, got, start.Truncate(10*time.Minute))
	w := want(12, 0)
	if f != w {
		t.Errorf("after a reset: %+v\nwant %+v", f, w)
	}
}

// TestRestart: a History saved and built again over the same store (the
// process restarted, its counters from zero) goes on from the saved
// series.
func TestRestart(t *testing.T) {
	st := newDisk(t)
	clock := testenv.NewClock(start)
	c := newCounters()
	h := newHistory(t, st, c, clock, "a")
	c.traffic(4)
	h.Download("example.com/a")
	h.Download("example.com/b")
	h.Download("example.com/a")
	clock.Advance(time.Minute)
	h.Close()

	c2 := newCounters() // a new process: counters from zero
	clock.Advance(time.Minute)
	h2 := newHistory(t, st, c2, clock, "a")
	c2.traffic(1)
	h2.Download("example.com/b")
	h2.Download("example.com/b")
	clock.Advance(time.Minute)
	h2.Sample()

	a := ask(t, h2, "range=days")
	if got := bucket(t, a, start.Truncate(time.Hour)); got != want(5, 5) {
		t.Errorf("after a restart: %+v\nwant %+v", got, want(5, 5))
	}
	if got := fmt.Sprint(a.TopModules); got != "[{example.com/b 3} {example.com/a 2}]" {
		t.Errorf("top modules %s", got)
	}
}

// TestReplicas: the answer sums every replica's series, its own from
// memory and the others' from their saved files.
func TestReplicas(t *testing.T) {
	st := newDisk(t)
	clock := testenv.NewClock(start)
	ca, cb := newCounters(), newCounters()
	a := newHistory(t, st, ca, clock, "Pod_A")
	b := newHistory(t, st, cb, clock, "pod-b")
	ca.traffic(1)
	cb.traffic(2)
	a.Download("example.com/a")
	b.Download("example.com/b")
	b.Download("example.com/b")
	clock.Advance(time.Minute)
	a.Sample()
	b.Sample()
	// An hour later, more on b (sampled every minute meanwhile: a
	// sample's figures go to the minute its interval began in).
	clock.Advance(time.Hour)
	b.Sample()
	cb.traffic(3)
	b.Download("example.com/a")
	b.Download("example.com/a")
	clock.Advance(time.Minute)
	b.Sample()
	if err := b.Save(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Not a's own file: a reads its own series from memory.
	if err := st.Put(t.Context(), "stats/history/pod_a.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}

	days := ask(t, a, "range=days")
	if got := bucket(t, days, start.Truncate(time.Hour)); got != want(3, 3) {
		t.Errorf("first hour, both replicas: %+v\nwant %+v", got, want(3, 3))
	}
	if got := bucket(t, days, start.Truncate(time.Hour).Add(time.Hour)); got != want(3, 2) {
		t.Errorf("second hour, b alone: %+v\nwant %+v", got, want(3, 2))
	}
	if got := fmt.Sprint(days.TopModules); got != "[{example.com/a 3} {example.com/b 2}]" {
		t.Errorf("top modules %s", got)
	}
	hours := ask(t, a, "range=hours")
	if got := total(hours); got.Requests != 4*6 || got.Downloads != 5 {
		t.Errorf("last 24 hours, both replicas: %+v", got)
	}
}

// TestAnswerShape: the buckets of each range, what the UI draws.
func TestAnswerShape(t *testing.T) {
	clock := testenv.NewClock(start.Add(37 * time.Minute))
	h := newHistory(t, newDisk(t), newCounters(), clock, "a")
	for _, tc := range []struct {
		query, rng, step string
		n                int
		d                time.Duration
	}{
		{"", "hours", "10m", 144, 10 * time.Minute},
		{"range=hours", "hours", "10m", 144, 10 * time.Minute},
		{"range=days", "days", "1h", 720, time.Hour},
	} {
		a := ask(t, h, tc.query)
		if a.Range != tc.rng || a.Step != tc.step || len(a.Buckets) != tc.n || a.TopModules == nil {
			t.Errorf("?%s: range %q, step %q, %d buckets, top %v", tc.query, a.Range, a.Step, len(a.Buckets), a.TopModules)
			continue
		}
		last := a.Buckets[len(a.Buckets)-1].T
		if !last.Equal(clock.Now().Truncate(tc.d)) {
			t.Errorf("?%s: last bucket at %v, want the current interval %v", tc.query, last, clock.Now().Truncate(tc.d))
		}
		for i := 1; i < len(a.Buckets); i++ {
			if a.Buckets[i].T.Sub(a.Buckets[i-1].T) != tc.d {
				t.Fatalf("?%s: buckets %d and %d are %v apart", tc.query, i-1, i, a.Buckets[i].T.Sub(a.Buckets[i-1].T))
			}
		}
	}
	// The JSON names, as the UI reads them.
	rec := httptest.NewRecorder()
	h.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/v1/history", nil))
	var raw struct {
		Buckets    []map[string]any `json:"buckets"`
		TopModules []any            `json:"top_modules"`
	}
	json.Unmarshal(rec.Body.Bytes(), &raw)
	var keys []string
	for k := range raw.Buckets[0] {
		keys = append(keys, k)
	}
	for _, k := range []string{"t", "requests", "hits", "misses", "bytes", "upstream_fetches", "upstream_errors", "errors", "downloads"} {
		if _, ok := raw.Buckets[0][k]; !ok {
			t.Errorf("a bucket has no %q: %v", k, keys)
		}
	}

	for _, tc := range []struct {
		method, query string
		code          int
	}{
		{http.MethodGet, "range=weeks", http.StatusBadRequest},
		{http.MethodGet, "range=hours&x=1", http.StatusBadRequest},
		{http.MethodPost, "range=hours", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		h.Handler().ServeHTTP(rec, httptest.NewRequest(tc.method, "/admin/v1/history?"+tc.query, nil))
		if rec.Code != tc.code || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
			t.Errorf("%s ?%s: %d %s, want %d and a text/plain line", tc.method, tc.query, rec.Code, rec.Header().Get("Content-Type"), tc.code)
		}
	}
}

// TestTopModulesBounded: the hour's most downloaded modules survive a
// stream of modules downloaded once each, far more than are tracked.
func TestTopModulesBounded(t *testing.T) {
	clock := testenv.NewClock(start)
	h := newHistory(t, newDisk(t), newCounters(), clock, "a")
	for i := range 5000 {
		if i%100 == 0 {
			for range 3 {
				h.Download("example.com/popular")
			}
			h.Download("example.com/second")
		}
		h.Download(fmt.Sprintf("example.com/once/m%d", i))
	}
	clock.Advance(time.Minute)
	h.Sample()
	a := ask(t, h, "range=hours")
	if len(a.TopModules) != history.TopPerHour || a.TopModules[0].Module != "example.com/popular" || a.TopModules[1].Module != "example.com/second" {
		t.Fatalf("top modules %v", a.TopModules[:3])
	}
	if d := a.TopModules[0].Downloads; d < 150 {
		t.Errorf("popular: %d downloads, want at least the 150 it had", d)
	}
}

// TestBrokenFiles: a replica's file that is not one costs its figures,
// not the answer; this replica's own starts empty.
func TestBrokenFiles(t *testing.T) {
	st := newDisk(t)
	for key, body := range map[string]string{
		"stats/history/a.json": "not json",
		"stats/history/b.json": `{"version":7}`,
		"stats/history/c.json": `{"version":1,"fields":["requests","future"],"minutes":[[1778061600,5,1],[1778061601,7,1],[1778061660,-1,1]],` +
			`"top":[{"t":1778061600,"modules":[{"module":"example.com/ok","downloads":2},{"module":"../bad","downloads":1}]}]}`,
	} {
		if err := st.Put(t.Context(), key, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	clock := testenv.NewClock(time.Unix(1778061600, 0).Add(time.Hour))
	h := newHistory(t, st, newCounters(), clock, "a")
	a := ask(t, h, "range=hours")
	if got := total(a); got.Requests != 5 {
		t.Errorf("requests %d, want c's 5 (its misaligned and negative rows left out)", got.Requests)
	}
	if got := fmt.Sprint(a.TopModules); got != "[{example.com/ok 2}]" {
		t.Errorf("top modules %s", got)
	}
}

// TestFutureRows: a replica's rows dated a day ahead (a clock far off,
// a broken file) are left out: they would take the ring slots of the
// present and blank the charts' current figures.
func TestFutureRows(t *testing.T) {
	st := newDisk(t)
	now := time.Unix(1778061600, 0).Add(time.Hour) // on an hour
	minute := now.Add(-time.Minute).Unix()
	ahead := minute + 24*3600 // the same minute ring slot, a day later
	body := fmt.Sprintf(`{"version":1,"fields":["requests"],"minutes":[[%d,5],[%d,1000]],"hours":[[%d,1000]],"top":[{"t":%d,"modules":[{"module":"example.com/future","downloads":9}]}]}`,
		minute, ahead, now.Unix()+30*24*3600, now.Unix()+24*3600)
	if err := st.Put(t.Context(), "stats/history/skewed.json", strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	h := newHistory(t, st, newCounters(), testenv.NewClock(now), "a")
	a := ask(t, h, "range=hours")
	if got := total(a); got.Requests != 5 {
		t.Errorf("requests %d, want the present row's 5 (the future ones left out)", got.Requests)
	}
	if got := total(ask(t, h, "range=days")); got.Requests != 0 {
		t.Errorf("days: requests %d, want 0 (the file's only hour row is a month ahead)", got.Requests)
	}
	if len(a.TopModules) != 0 {
		t.Errorf("top modules %v, want none (only a future hour had any)", a.TopModules)
	}
}

// TestLiveFigures: the answer includes what happened since the last
// sample, counted once: a new modgate's charts show its first minute, and
// the sample that then commits it adds nothing twice.
func TestLiveFigures(t *testing.T) {
	clock := testenv.NewClock(start)
	c := newCounters()
	h := newHistory(t, newDisk(t), c, clock, "a")
	c.traffic(1)
	h.Download("example.com/a")
	clock.Advance(20 * time.Second)
	if got := total(ask(t, h, "range=hours")); got != summed(1, 1) {
		t.Errorf("before any sample: %+v\nwant %+v", got, summed(1, 1))
	}
	if got := fmt.Sprint(ask(t, h, "range=days").TopModules); got != "[{example.com/a 1}]" {
		t.Errorf("before any sample, top modules %s", got)
	}
	clock.Advance(40 * time.Second)
	h.Sample()
	if got := total(ask(t, h, "range=hours")); got != summed(1, 1) {
		t.Errorf("after the sample: %+v\nwant the same %+v", got, summed(1, 1))
	}
	c.traffic(2)
	if got := total(ask(t, h, "range=hours")); got != summed(3, 1) {
		t.Errorf("more since the sample: %+v\nwant %+v", got, summed(3, 1))
	}
}

// summed is what total adds up of traffic(n) and d downloads.
func summed(n, d int64) history.Figures {
	w := want(n, d)
	return history.Figures{Requests: w.Requests, Bytes: w.Bytes, Downloads: w.Downloads}
}

// TestSaveRemovesGoneReplicas: a replica's file not saved for 30 days is
// removed by the next save of another.
func TestSaveRemovesGoneReplicas(t *testing.T) {
	st := newDisk(t)
	clock := testenv.NewClock(start)
	for _, name := range []string{"gone", "alive"} {
		h := newHistory(t, st, newCounters(), clock, name)
		if err := h.Save(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	old := start.Add(-31 * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(st.Root(), "stats", "history", "gone.json"), old, old); err != nil {
		t.Fatal(err)
	}
	h := newHistory(t, st, newCounters(), clock, "self")
	if err := h.Save(t.Context()); err != nil {
		t.Fatal(err)
	}
	var keys []string
	st.List(t.Context(), "stats/history/", func(key string) error { keys = append(keys, key); return nil })
	if got := strings.Join(keys, " "); got != "stats/history/alive.json stats/history/self.json" {
		t.Errorf("files after a save: %s", got)
	}
}

func TestReplicaName(t *testing.T) {
	for in, want := range map[string]string{
		"modgate-7d9f8-x2x":     "modgate-7d9f8-x2x",
		"Build.Example.COM":     "build.example.com",
		"../../etc/passwd":      "etc-passwd",
		"":                      "modgate",
		"名前":                    "modgate",
		strings.Repeat("a", 99): strings.Repeat("a", 63),
	} {
		if got := history.ReplicaName(in); got != want {
			t.Errorf("ReplicaName(%q) = %q, want %q", in, got, want)
		}
	}
}
