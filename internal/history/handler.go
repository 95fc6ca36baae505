package history

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/store"
)

// Answer is the answer of GET /admin/v1/history.
type Answer struct {
	// Range is "hours" (the last 24 hours) or "days" (the last 30 days).
	Range string `json:"range"`
	// Step is the length of a bucket: "10m" for hours, "1h" for days.
	Step string `json:"step"`
	// Buckets are consecutive, oldest first, the last one the current
	// (partial) interval; a bucket without figures is all zeros.
	Buckets []Bucket `json:"buckets"`
	// TopModules are the most downloaded modules over the range, at most
	// TopPerHour, most downloaded first.
	TopModules []ModuleCount `json:"top_modules"`
}

// Bucket is one interval's figures, summed over the replicas.
type Bucket struct {
	// T is when the interval starts.
	T time.Time `json:"t"`
	Figures
}

// The ranges: how many buckets of which step, and the ring they are summed
// from.
var ranges = map[string]struct {
	step    time.Duration
	buckets int
	hourly  bool // from the hours ring, else the minutes ring
}{
	"hours": {10 * time.Minute, 24 * 6, false},
	"days":  {time.Hour, HourSlots, true},
}

// othersTTL is how long the handler reuses the other replicas' series,
// which they save every few minutes anyway: a dashboard polling every few
// seconds reads their files once a minute.
const othersTTL = time.Minute

// maxReplicas bounds the replicas' files read, the most recently saved
// first.
const maxReplicas = 64

type othersCache struct {
	at time.Time
	s  *series
}

// Handler serves GET /admin/v1/history?range=hours|days (hours when not
// given): the figures of every replica's series summed, as an Answer.
// This replica's figures are live (its last sample plus what happened
// since), other replicas' up to SaveEvery old.
func (h *History) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			goproxy.WriteError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET")
			return
		}
		q := r.URL.Query()
		for name := range q {
			if name != "range" {
				goproxy.WriteError(w, r, http.StatusBadRequest, "unknown parameter "+strconv.Quote(name)+"; GET /admin/v1/history takes range")
				return
			}
		}
		name := q.Get("range")
		if name == "" {
			name = "hours"
		}
		if _, ok := ranges[name]; !ok {
			goproxy.WriteError(w, r, http.StatusBadRequest, "range must be hours or days")
			return
		}
		s := h.live()
		if others, err := h.othersSeries(r.Context()); err != nil {
			// This replica's figures are still worth showing.
			h.log.Warn("history: cannot read the other replicas' series", "err", err)
		} else {
			s.merge(others)
		}
		goproxy.WriteJSON(w, r, http.StatusOK, s.answer(name, h.cfg.Now()))
	})
}

// othersSeries returns the other replicas' series summed, read again
// when older than othersTTL.
func (h *History) othersSeries(ctx context.Context) (*series, error) {
	h.othersMu.Lock()
	defer h.othersMu.Unlock()
	now := h.cfg.Now()
	if h.others.s != nil && now.Sub(h.others.at) < othersTTL && !now.Before(h.others.at) {
		return h.others.s, nil
	}
	type saved struct {
		key string
		at  time.Time
	}
	var files []saved
	err := store.ListInfo(ctx, h.cfg.Store, keyPrefix, func(key string, info store.Info) error {
		if key != h.key && len(key) > len(keyPrefix) {
			files = append(files, saved{key, info.ModTime})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) > maxReplicas {
		// The most recently saved: the others are gone or going.
		slices.SortFunc(files, func(a, b saved) int { return b.at.Compare(a.at) })
		files = files[:maxReplicas]
	}
	sum := newSeries()
	for _, f := range files {
		s, err := load(ctx, h.cfg.Store, f.key, h.cfg.Now())
		if err != nil {
			// One broken file costs its replica's figures only.
			h.log.Warn("history: cannot read a replica's series", "key", f.key, "err", err)
			continue
		}
		if s != nil {
			sum.merge(s)
		}
	}
	h.others = othersCache{at: now, s: sum}
	return sum, nil
}

// answer builds the Answer for the range name at now.
func (s *series) answer(name string, now time.Time) Answer {
	rg := ranges[name]
	step := int64(rg.step / time.Second)
	last := now.Unix() - now.Unix()%step
	first := last - int64(rg.buckets-1)*step
	a := Answer{Range: name, Step: stepName(rg.step), Buckets: make([]Bucket, rg.buckets)}
	for i := range a.Buckets {
		a.Buckets[i].T = time.Unix(first+int64(i)*step, 0).UTC()
	}
	r := &s.minutes
	if rg.hourly {
		r = &s.hours
	}
	for _, sl := range r.slots {
		if sl.t >= first && sl.t < last+step {
			a.Buckets[(sl.t-first)/step].Figures.add(sl.f)
		}
	}
	sum := map[string]int64{}
	for t, top := range s.top {
		if t+3600 > first && t < last+step {
			for _, mc := range top {
				sum[mc.Module] += mc.Downloads
			}
		}
	}
	a.TopModules = topOf(sum, TopPerHour)
	return a
}

func stepName(d time.Duration) string {
	if d%time.Hour == 0 {
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/time.Minute)) + "m"
}
