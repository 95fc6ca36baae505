package catalog

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/store"
)

// StoreTotalsTTL is how long Stats reuses its count of the store: counting
// walks the whole listing, which a dashboard polling every few seconds
// must not cause each time.
const StoreTotalsTTL = 60 * time.Second

// StatsAnswer is the answer of GET /admin/v1/stats. Request figures are the
// process's counters since it started (metrics.Registry), not the store's.
type StatsAnswer struct {
	Store    StoreTotals    `json:"store"`
	Requests RequestFigures `json:"requests"`
	Cache    CacheFigures   `json:"cache"`
	// Upstream counts fetches from the sources by outcome (ok, not_found,
	// error, invalid).
	Upstream map[string]float64 `json:"upstream_fetches"`
}

// StoreTotals counts the module files in the store (.info, .mod and .zip;
// see moduleFile).
type StoreTotals struct {
	Modules  int   `json:"modules"`
	Versions int   `json:"versions"`
	Bytes    int64 `json:"bytes"`
	// Counted is when the store was walked (the totals are up to
	// StoreTotalsTTL old).
	Counted time.Time `json:"counted"`
}

// RequestFigures are the HTTP requests answered and bytes served.
type RequestFigures struct {
	Total float64 `json:"total"`
	// ByEndpoint maps endpoint (info, mod, zip, list, latest, sumdb, ...)
	// to code class ("2xx", "4xx", ...) to count.
	ByEndpoint map[string]map[string]float64 `json:"by_endpoint"`
	// Bytes are response body bytes, in all and by endpoint.
	Bytes           float64            `json:"bytes_served"`
	BytesByEndpoint map[string]float64 `json:"bytes_by_endpoint"`
}

// CacheFigures are the cache's lookups by result (hit, miss, stale, ...).
type CacheFigures struct {
	ByResult map[string]float64 `json:"by_result"`
	// HitRatio is the share of lookups answered from the store, fresh or
	// not (hit, stale, stale_if_error, negative, degraded), among those and
	// the misses; rate-limited refusals count for neither. Null before the
	// first lookup.
	HitRatio *float64 `json:"hit_ratio"`
}

// Stats serves GET /admin/v1/stats: totals of st, counted at most once per
// StoreTotalsTTL, and the request, cache and upstream figures gathered from
// reg (modgate's metrics.Registry).
func Stats(st store.Store, reg prometheus.Gatherer) http.Handler {
	return newStats(st, reg, time.Now)
}

type statsHandler struct {
	st  store.Store
	reg prometheus.Gatherer
	now func() time.Time

	// mu is held while counting, so that concurrent requests after expiry
	// wait for one walk instead of each starting their own.
	mu     sync.Mutex
	totals StoreTotals
	valid  bool
}

func newStats(st store.Store, reg prometheus.Gatherer, now func() time.Time) *statsHandler {
	return &statsHandler{st: st, reg: reg, now: now}
}

func (h *statsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		goproxy.WriteError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET")
		return
	}
	if len(r.URL.Query()) != 0 {
		goproxy.WriteError(w, r, http.StatusBadRequest, "GET /admin/v1/stats takes no parameters")
		return
	}
	totals, err := h.storeTotals(r.Context())
	if err != nil {
		if r.Context().Err() == nil {
			goproxy.WriteError(w, r, http.StatusInternalServerError, "counting the store failed: "+err.Error())
		}
		return
	}
	ans, err := gatherFigures(h.reg)
	if err != nil {
		goproxy.WriteError(w, r, http.StatusInternalServerError, "reading the metrics failed: "+err.Error())
		return
	}
	ans.Store = totals
	goproxy.WriteJSON(w, r, http.StatusOK, ans)
}

// storeTotals returns the cached totals, counting again when they are
// older than StoreTotalsTTL. A failed count is not cached.
func (h *statsHandler) storeTotals(ctx context.Context) (StoreTotals, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if h.valid && now.Sub(h.totals.Counted) < StoreTotalsTTL {
		return h.totals, nil
	}
	t, err := countStore(ctx, h.st)
	if err != nil {
		return StoreTotals{}, err
	}
	t.Counted = now.UTC()
	h.totals, h.valid = t, true
	return t, nil
}

// countStore walks the module files: the keys of one module are
// contiguous in key order, so modules are counted by changes of key
// prefix, and versions by a set of one module's versions at a time (the
// keys of one version need not be contiguous: "v1.0.0-pre.mod.info", a
// file of version v1.0.0-pre.mod, sorts between v1.0.0-pre's .mod and .zip).
func countStore(ctx context.Context, st store.Store) (StoreTotals, error) {
	var t StoreTotals
	var lastModule string
	versions := map[string]bool{}
	err := store.ListInfo(ctx, st, "mod/", func(key string, info store.Info) error {
		if !moduleFile(key) {
			return nil
		}
		_, version, _, err := store.ParseVersionKey(key)
		if err != nil {
			return nil
		}
		modKey, _, _ := strings.Cut(strings.TrimPrefix(key, "mod/"), "/@v/")
		if modKey != lastModule {
			lastModule = modKey
			t.Modules++
			clear(versions)
		}
		if !versions[version] {
			versions[version] = true
			t.Versions++
		}
		t.Bytes += info.Size
		return nil
	})
	return t, err
}

// Metric names read from the registry (package metrics).
const (
	metricRequests = "modgate_http_requests_total"
	metricBytes    = "modgate_http_response_bytes_total"
	metricCache    = "modgate_cache_requests_total"
	metricUpstream = "modgate_upstream_fetches_total"
)

func gatherFigures(reg prometheus.Gatherer) (StatsAnswer, error) {
	ans := StatsAnswer{
		Requests: RequestFigures{ByEndpoint: map[string]map[string]float64{}, BytesByEndpoint: map[string]float64{}},
		Cache:    CacheFigures{ByResult: map[string]float64{}},
		Upstream: map[string]float64{},
	}
	families, err := reg.Gather()
	if err != nil && len(families) == 0 {
		return StatsAnswer{}, err
	}
	// A partial Gather error (one broken collector) leaves the others usable.
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			switch mf.GetName() {
			case metricRequests:
				ep, class := label(m, "endpoint"), codeClass(label(m, "code"))
				if ans.Requests.ByEndpoint[ep] == nil {
					ans.Requests.ByEndpoint[ep] = map[string]float64{}
				}
				ans.Requests.ByEndpoint[ep][class] += v
				ans.Requests.Total += v
			case metricBytes:
				ans.Requests.BytesByEndpoint[label(m, "endpoint")] += v
				ans.Requests.Bytes += v
			case metricCache:
				ans.Cache.ByResult[label(m, "result")] += v
			case metricUpstream:
				ans.Upstream[label(m, "outcome")] += v
			}
		}
	}
	var served, missed float64
	for result, n := range ans.Cache.ByResult {
		switch result {
		case "hit", "stale", "stale_if_error", "negative", "degraded":
			served += n
		case "miss":
			missed += n
		}
	}
	if served+missed > 0 {
		ratio := served / (served + missed)
		ans.Cache.HitRatio = &ratio
	}
	return ans, nil
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// codeClass turns a status code ("404") into its class ("4xx").
func codeClass(code string) string {
	if len(code) != 3 || code[0] < '1' || code[0] > '5' {
		return "other"
	}
	return code[:1] + "xx"
}
