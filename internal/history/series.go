package history

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/store"
)

// ModuleCount is a module and its downloads.
type ModuleCount struct {
	Module    string `json:"module"`
	Downloads int64  `json:"downloads"`
}

// slot is one bucket of a ring: the Unix time its interval starts at (0
// for a bucket never used) and its figures.
type slot struct {
	t int64
	f Figures
}

// ring holds the buckets of consecutive intervals of step seconds; the
// bucket of time t is at (t/step) mod len.
type ring struct {
	step  int64
	slots []slot
}

func newRing(step int64, n int) ring { return ring{step: step, slots: make([]slot, n)} }

// add adds f to the bucket starting at t (a multiple of step). A bucket
// holding an older interval is reused; a time older than the one its
// bucket holds (a clock set back by the whole ring) is dropped.
func (r *ring) add(t int64, f Figures) {
	s := &r.slots[(t/r.step)%int64(len(r.slots))]
	switch {
	case s.t == t:
	case s.t < t:
		*s = slot{t: t}
	default:
		return
	}
	s.f.add(f)
}

// span is how far back the ring reaches, in seconds.
func (r *ring) span() int64 { return r.step * int64(len(r.slots)) }

// series is one replica's figures: per minute, per hour, and each hour's
// top modules.
type series struct {
	minutes, hours ring
	top            map[int64][]ModuleCount // by hour
}

func newSeries() *series {
	return &series{minutes: newRing(60, MinuteSlots), hours: newRing(3600, HourSlots), top: map[int64][]ModuleCount{}}
}

func (s *series) clone() *series {
	c := &series{minutes: s.minutes, hours: s.hours, top: maps.Clone(s.top)}
	c.minutes.slots = slices.Clone(s.minutes.slots)
	c.hours.slots = slices.Clone(s.hours.slots)
	return c
}

// prune forgets the top modules of hours the ring no longer holds (the
// rings' old buckets are reused in place).
func (s *series) prune(now int64) {
	for t := range s.top {
		if t <= now-s.hours.span() {
			delete(s.top, t)
		}
	}
}

// merge adds the figures of o to s.
func (s *series) merge(o *series) {
	for _, sl := range o.minutes.slots {
		if sl.t != 0 {
			s.minutes.add(sl.t, sl.f)
		}
	}
	for _, sl := range o.hours.slots {
		if sl.t != 0 {
			s.hours.add(sl.t, sl.f)
		}
	}
	for t, top := range o.top {
		sum := map[string]int64{}
		for _, mc := range s.top[t] {
			sum[mc.Module] += mc.Downloads
		}
		for _, mc := range top {
			sum[mc.Module] += mc.Downloads
		}
		s.top[t] = topOf(sum, len(sum))
	}
}

// The stored form: a file per replica, stats/history/<replica>.json.
//
//	{"version":1,"replica":"host-1","saved":"2026-...",
//	 "fields":["requests","hits",...],
//	 "minutes":[[<unix start>,<requests>,<hits>,...],...],
//	 "hours":[...],
//	 "top":[{"t":<unix start of the hour>,"modules":[{"module":"...","downloads":N},...]}]}
//
// Rows hold the start of a bucket and its figures in the order of
// "fields"; only buckets with figures are written. A reader takes the
// fields it knows by name, so that a later version may add some.
type file struct {
	Version int       `json:"version"`
	Replica string    `json:"replica"`
	Saved   time.Time `json:"saved"`
	Fields  []string  `json:"fields"`
	Minutes [][]int64 `json:"minutes"`
	Hours   [][]int64 `json:"hours"`
	Top     []fileTop `json:"top"`
}

type fileTop struct {
	T       int64         `json:"t"`
	Modules []ModuleCount `json:"modules"`
}

const fileVersion = 1

// keyPrefix is where the replicas' files are.
const keyPrefix = "stats/history/"

// maxFileSize bounds the read of a replica's file: a full one (every
// bucket used, 20 long module paths an hour) is under 3 MiB.
const maxFileSize = 8 << 20

// columns are the Figures in a row, after its time.
var columns = []struct {
	name  string
	field func(*Figures) *int64
}{
	{"requests", func(f *Figures) *int64 { return &f.Requests }},
	{"hits", func(f *Figures) *int64 { return &f.Hits }},
	{"misses", func(f *Figures) *int64 { return &f.Misses }},
	{"bytes", func(f *Figures) *int64 { return &f.Bytes }},
	{"upstream_fetches", func(f *Figures) *int64 { return &f.UpstreamFetches }},
	{"upstream_errors", func(f *Figures) *int64 { return &f.UpstreamErrors }},
	{"errors", func(f *Figures) *int64 { return &f.Errors }},
	{"server_errors", func(f *Figures) *int64 { return &f.ServerErrors }},
	{"downloads", func(f *Figures) *int64 { return &f.Downloads }},
}

// ReplicaName reduces name (a host name) to what a file name may safely
// hold: lower case letters, digits, ".", "_" and "-", at most 63 bytes;
// "modgate" when nothing is left.
func ReplicaName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if b.Len() == 63 {
			break
		}
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), ".-_")
	if s == "" {
		return "modgate"
	}
	return s
}

func fileKey(replica string) string { return keyPrefix + replica + ".json" }

// encode returns the stored form of s for replica, with the buckets of
// the rings' spans before now.
func (s *series) encode(replica string, now time.Time) ([]byte, error) {
	f := file{Version: fileVersion, Replica: replica, Saved: now.UTC(), Minutes: [][]int64{}, Hours: [][]int64{}, Top: []fileTop{}}
	for _, c := range columns {
		f.Fields = append(f.Fields, c.name)
	}
	rows := func(r *ring) [][]int64 {
		var out [][]int64
		for _, sl := range r.slots {
			if sl.t == 0 || sl.t <= now.Unix()-r.span() || sl.f == (Figures{}) {
				continue
			}
			row := []int64{sl.t}
			for _, c := range columns {
				row = append(row, *c.field(&sl.f))
			}
			out = append(out, row)
		}
		slices.SortFunc(out, func(a, b []int64) int { return cmp.Compare(a[0], b[0]) })
		return out
	}
	f.Minutes = append(f.Minutes, rows(&s.minutes)...)
	f.Hours = append(f.Hours, rows(&s.hours)...)
	for _, t := range slices.Sorted(maps.Keys(s.top)) {
		f.Top = append(f.Top, fileTop{T: t, Modules: s.top[t]})
	}
	return json.Marshal(f)
}

// decode reads a stored form, leaving out what does not hold: rows whose
// time is not the start of a bucket or whose figures are negative, top
// lists of hours that are not hours, entries that are not module paths.
func decode(data []byte, now time.Time) (*series, error) {
	// A row from the future (a replica with a clock far ahead, a broken
	// file) would take the ring slot of the present one and zero it in
	// the charts; a step of skew is tolerated.
	notAfter := func(step int64) int64 { return now.Unix() + step }
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("version %d, not %d", f.Version, fileVersion)
	}
	col := make([]func(*Figures) *int64, len(f.Fields)) // nil: a field not known
	for i, name := range f.Fields {
		for _, c := range columns {
			if c.name == name {
				col[i] = c.field
			}
		}
	}
	s := newSeries()
	fill := func(r *ring, rows [][]int64) {
		for _, row := range rows {
			if len(row) != 1+len(col) || row[0] <= 0 || row[0]%r.step != 0 || row[0] > notAfter(r.step) {
				continue
			}
			var fig Figures
			ok := true
			for i, v := range row[1:] {
				if v < 0 {
					ok = false
				}
				if col[i] != nil {
					*col[i](&fig) = v
				}
			}
			if ok {
				r.add(row[0], fig)
			}
		}
	}
	fill(&s.minutes, f.Minutes)
	fill(&s.hours, f.Hours)
	for _, top := range f.Top {
		if top.T <= 0 || top.T%3600 != 0 || top.T > notAfter(3600) {
			continue
		}
		var kept []ModuleCount
		for _, mc := range top.Modules {
			if len(kept) < TopPerHour && mc.Downloads >= 0 && module.CheckPath(mc.Module) == nil {
				kept = append(kept, mc)
			}
		}
		if len(kept) > 0 {
			s.top[top.T] = kept
		}
	}
	return s, nil
}

// load reads the series stored under key: nil when there is none. Rows
// after now (and a step) are left out.
func load(ctx context.Context, st store.Store, key string, now time.Time) (*series, error) {
	data, _, err := store.ReadAll(ctx, st, key, maxFileSize)
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := decode(data, now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return s, nil
}

// Save writes this replica's series to the store, and removes the files
// of replicas that saved nothing for as long as the hours ring reaches
// back (gone for good: a pod's name of a Deployment is not reused).
func (h *History) Save(ctx context.Context) error {
	now := h.cfg.Now()
	data, err := h.snapshot().encode(h.cfg.Replica, now)
	if err != nil {
		return err
	}
	if err := store.PutSized(ctx, h.cfg.Store, h.key, bytes.NewReader(data), int64(len(data))); err != nil {
		return err
	}
	var stale []string
	err = store.ListInfo(ctx, h.cfg.Store, keyPrefix, func(key string, info store.Info) error {
		if key != h.key && now.Sub(info.ModTime) > time.Duration(HourSlots)*time.Hour {
			stale = append(stale, key)
		}
		return nil
	})
	for _, key := range stale {
		if err == nil {
			err = h.cfg.Store.Delete(ctx, key)
		}
	}
	return err
}
