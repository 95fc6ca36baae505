// Package history keeps the time series behind the web UI's charts:
// requests, cache hits and misses, bytes served, upstream fetches and
// errors, error answers and downloads, per minute for the last day and per
// hour for the last 30 days, and the most downloaded modules of each hour.
//
// The figures come from modgate's Prometheus counters (package metrics):
// every minute the History takes them, and adds what each grew by since
// the previous sample to the minute and the hour the interval began in. A
// counter that went down (the process restarted and its counters began at
// zero again) grew by its whole value. Downloads and the modules
// downloaded are told by the access recorder (Download).
//
// Each replica keeps its own series and saves them to the store every few
// minutes (stats/history/<replica>.json), so that a restart loses at most
// that much; it reads them back at start. The handler sums the series of
// every replica whose file it finds, its own from memory.
package history

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/modgate/modgate/internal/store"
)

// The rings' sizes.
const (
	// MinuteSlots are the per-minute buckets: one day.
	MinuteSlots = 24 * 60
	// HourSlots are the per-hour buckets: 30 days.
	HourSlots = 30 * 24
	// TopPerHour is how many of each hour's most downloaded modules are
	// kept once the hour is over.
	TopPerHour = 20
	// maxTracked bounds the modules counted during the current hour.
	// Past it, a new module takes the place of the least downloaded one
	// and inherits its count (the "space-saving" sketch): a module
	// downloaded often enough to be among the TopPerHour is never lost,
	// and its count is over-estimated by at most the count it inherited.
	maxTracked = 1000
)

// Defaults of Config.
const (
	DefaultSampleEvery = time.Minute
	DefaultSaveEvery   = 5 * time.Minute
)

// saveTimeout bounds a save of the series.
const saveTimeout = 30 * time.Second

// Config configures a History.
type Config struct {
	// Gatherer holds the counters (metrics.Registry).
	Gatherer prometheus.Gatherer
	// Store keeps the series of every replica.
	Store store.Store
	// Replica names this process's series among the replicas sharing
	// Store: the host name, stable across restarts where the replica's
	// identity is (a StatefulSet's pod, a VM). It is reduced to lower
	// case letters, digits, ".", "_" and "-" (ReplicaName).
	Replica string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives failures to load or save the series;
	// slog.Default() when nil.
	Logger *slog.Logger
	// SampleEvery and SaveEvery are how often Run samples the counters
	// and saves the series; DefaultSampleEvery and DefaultSaveEvery
	// when zero.
	SampleEvery, SaveEvery time.Duration
}

// Figures are what one bucket counts.
type Figures struct {
	// Requests are the GOPROXY protocol's and the checksum database's
	// requests answered (not /metrics, health checks, the admin API or
	// the UI, which would chart their own polling).
	Requests int64 `json:"requests"`
	// Hits and Misses are the cache's lookups answered from storage
	// (fresh or stale) and those that had to fetch.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	// Bytes are the response bytes of those Requests.
	Bytes int64 `json:"bytes"`
	// UpstreamFetches are fetches from the origins (upstream proxies, git),
	// UpstreamErrors those that failed or brought an invalid file.
	UpstreamFetches int64 `json:"upstream_fetches"`
	UpstreamErrors  int64 `json:"upstream_errors"`
	// Errors are Requests answered with a 4xx or 5xx status other than
	// not found (404 and 410, which the go command's lookups of module
	// path prefixes cause in numbers); ServerErrors the 5xx among them.
	Errors       int64 `json:"errors"`
	ServerErrors int64 `json:"server_errors"`
	// Downloads are the zips served.
	Downloads int64 `json:"downloads"`
}

func (f *Figures) add(g Figures) {
	f.Requests += g.Requests
	f.Hits += g.Hits
	f.Misses += g.Misses
	f.Bytes += g.Bytes
	f.UpstreamFetches += g.UpstreamFetches
	f.UpstreamErrors += g.UpstreamErrors
	f.Errors += g.Errors
	f.ServerErrors += g.ServerErrors
	f.Downloads += g.Downloads
}

// History samples the counters into its rings. Build it with New, run Run
// in the background, Close it at the end.
type History struct {
	cfg Config
	log *slog.Logger
	key string // of this replica's file

	mu      sync.Mutex
	s       *series
	prev    map[string]float64 // each counter's value at the last sample
	since   time.Time          // start of the interval being counted
	pending Figures            // counted by Download since the last sample
	// pendingTop counts downloads by module since the last sample, cur
	// those of the hour curHour (Unix seconds) until then; both hold at
	// most maxTracked modules.
	pendingTop, cur map[string]int64
	curHour         int64

	othersMu sync.Mutex
	others   othersCache
}

// New returns a History for cfg, with this replica's series read back
// from the store (a failure is logged: the charts start empty) and the
// counters' current values as the base of the first sample.
func New(ctx context.Context, cfg Config) *History {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = DefaultSampleEvery
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = DefaultSaveEvery
	}
	cfg.Replica = ReplicaName(cfg.Replica)
	h := &History{cfg: cfg, log: cfg.Logger, key: fileKey(cfg.Replica), s: newSeries(),
		prev: map[string]float64{}, pendingTop: map[string]int64{}, cur: map[string]int64{}}
	if h.log == nil {
		h.log = slog.Default()
	}
	if s, err := load(ctx, cfg.Store, h.key, cfg.Now()); err != nil {
		h.log.Warn("history: cannot read this replica's saved series; the charts start from now", "key", h.key, "err", err)
	} else if s != nil {
		h.s = s
	}
	h.since = cfg.Now()
	h.curHour = hourOf(h.since.Unix())
	// The current hour's saved top modules go on counting.
	for _, mc := range h.s.top[h.curHour] {
		h.cur[mc.Module] = mc.Downloads
	}
	if fams, err := cfg.Gatherer.Gather(); err == nil || len(fams) > 0 {
		h.deltas(fams, true) // the base: what the counters held before counts nothing
	}
	return h
}

func hourOf(unix int64) int64   { return unix - unix%3600 }
func minuteOf(unix int64) int64 { return unix - unix%60 }

// Download counts a zip of the module at path served.
func (h *History) Download(path string) {
	h.mu.Lock()
	h.pending.Downloads++
	spaceSaving(h.pendingTop, path, 1)
	h.mu.Unlock()
}

// spaceSaving adds n to the count of path in m, which holds at most
// maxTracked modules: past that, path takes the place of the least counted
// one and inherits its count.
func spaceSaving(m map[string]int64, path string, n int64) {
	if c, ok := m[path]; ok || len(m) < maxTracked {
		m[path] = c + n
		return
	}
	least, count := "", int64(-1)
	for p, c := range m {
		if count < 0 || c < count || (c == count && p < least) {
			least, count = p, c
		}
	}
	delete(m, least)
	m[path] = count + n
}

// Sample adds what the counters grew by since the last sample, and the
// downloads counted since, to the minute and the hour the interval began
// in.
func (h *History) Sample() {
	fams, err := h.cfg.Gatherer.Gather()
	if err != nil && len(fams) == 0 {
		h.log.Warn("history: cannot read the metrics", "err", err)
	}
	// A partial failure (one broken collector) leaves the others usable.
	now := h.cfg.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.deltas(fams, true)
	f.add(h.pending)
	h.pending = Figures{}
	at := h.since.Unix()
	h.s.minutes.add(minuteOf(at), f)
	hour := hourOf(at)
	h.s.hours.add(hour, f)
	if hour != h.curHour {
		h.cur, h.curHour = map[string]int64{}, hour
	}
	for p, n := range h.pendingTop {
		spaceSaving(h.cur, p, n)
	}
	clear(h.pendingTop)
	if len(h.cur) > 0 {
		h.s.top[hour] = topOf(h.cur, TopPerHour)
	}
	h.s.prune(now.Unix())
	h.since = now
}

// topOf returns the n largest counts of m, largest first, ties by path.
func topOf(m map[string]int64, n int) []ModuleCount {
	top := make([]ModuleCount, 0, len(m))
	for p, c := range m {
		top = append(top, ModuleCount{Module: p, Downloads: c})
	}
	slices.SortFunc(top, func(a, b ModuleCount) int {
		return cmp.Or(cmp.Compare(b.Downloads, a.Downloads), cmp.Compare(a.Module, b.Module))
	})
	return top[:min(n, len(top))]
}

// Metric names read from the registry (package metrics).
const (
	metricRequests = "modgate_http_requests_total"
	metricBytes    = "modgate_http_response_bytes_total"
	metricCache    = "modgate_cache_requests_total"
	metricUpstream = "modgate_upstream_fetches_total"
)

// protocolEndpoints are the endpoints (goproxy.Endpoint) whose requests
// are charted.
var protocolEndpoints = map[string]bool{"latest": true, "list": true, "info": true, "mod": true, "zip": true, "sumdb": true}

// deltas returns what the counters of fams grew by since the last call
// that committed, and, with commit, remembers their values.
func (h *History) deltas(fams []*dto.MetricFamily, commit bool) Figures {
	var f Figures
	for _, mf := range fams {
		name := mf.GetName()
		switch name {
		case metricRequests, metricBytes, metricCache, metricUpstream:
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			id := seriesID(name, m)
			d := v - h.prev[id]
			if d < 0 {
				d = v // restarted from zero since
			}
			if commit {
				h.prev[id] = v
			}
			n := int64(d)
			switch name {
			case metricRequests:
				if !protocolEndpoints[label(m, "endpoint")] {
					continue
				}
				f.Requests += n
				switch code := label(m, "code"); {
				case strings.HasPrefix(code, "5"):
					f.Errors += n
					f.ServerErrors += n
				case strings.HasPrefix(code, "4") && code != "404" && code != "410":
					f.Errors += n
				}
			case metricBytes:
				if protocolEndpoints[label(m, "endpoint")] {
					f.Bytes += n
				}
			case metricCache:
				switch label(m, "result") {
				case "hit", "stale", "stale_if_error", "negative", "degraded":
					f.Hits += n
				case "miss":
					f.Misses += n
				}
			case metricUpstream:
				f.UpstreamFetches += n
				switch label(m, "outcome") {
				case "error", "invalid":
					f.UpstreamErrors += n
				}
			}
		}
	}
	return f
}

// seriesID names one labelled counter.
func seriesID(name string, m *dto.Metric) string {
	var b strings.Builder
	b.WriteString(name)
	for _, lp := range m.GetLabel() {
		b.WriteByte(0)
		b.WriteString(lp.GetName())
		b.WriteByte('=')
		b.WriteString(lp.GetValue())
	}
	return b.String()
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// Run samples every SampleEvery, on the minute, and saves the series every
// SaveEvery, until ctx is done. Failures to save are logged; the next save
// tries again.
func (h *History) Run(ctx context.Context) {
	lastSave := time.Now()
	for {
		now := time.Now()
		t := time.NewTimer(now.Truncate(h.cfg.SampleEvery).Add(h.cfg.SampleEvery).Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		h.Sample()
		if time.Since(lastSave) >= h.cfg.SaveEvery {
			lastSave = time.Now()
			h.saveAndLog(ctx)
		}
	}
}

func (h *History) saveAndLog(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	if err := h.Save(ctx); err != nil {
		h.log.Warn("history: cannot save the series; the next save tries again", "key", h.key, "err", err)
	}
}

// Close samples a last time and saves the series.
func (h *History) Close() {
	h.Sample()
	h.saveAndLog(context.Background())
}

// snapshot copies this replica's series.
func (h *History) snapshot() *series {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.s.clone()
}

// live is a copy of this replica's series with what happened since the
// last sample added to the bucket the interval began in, as the next
// Sample will add it: the charts show the last minute too, and a new
// modgate's from its first request. Nothing is committed.
func (h *History) live() *series {
	fams, _ := h.cfg.Gatherer.Gather() // a partial failure leaves the others usable
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.s.clone()
	f := h.deltas(fams, false)
	f.add(h.pending)
	at := h.since.Unix()
	s.minutes.add(minuteOf(at), f)
	hour := hourOf(at)
	s.hours.add(hour, f)
	if len(h.pendingTop) > 0 {
		cur := map[string]int64{}
		if hour == h.curHour {
			maps.Copy(cur, h.cur)
		}
		for p, n := range h.pendingTop {
			spaceSaving(cur, p, n)
		}
		s.top[hour] = topOf(cur, TopPerHour)
	}
	return s
}
