package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
)

// entry is a cached answer to a mutable question (@v/list, @latest, a
// branch or commit query), kept in storage so that it survives restarts and
// is shared by replicas.
type entry struct {
	Fetched  time.Time `json:"fetched"`
	NotFound string    `json:"not_found,omitempty"` // the origin's reason, for negative entries
	Body     []byte    `json:"body,omitempty"`
}

func (e *entry) result() ([]byte, error) {
	if e.NotFound != "" {
		return nil, &source.NotFoundError{Msg: e.NotFound}
	}
	return e.Body, nil
}

// fresh answers a mutable question from the cached entry at key, using fetch
// to refresh it:
//   - fresh entry (younger than the TTL): served as is;
//   - stale positive entry: served at once, refreshed in the background
//     (stale-while-revalidate);
//   - missing entry or stale negative entry: fetched now; if that fails and
//     a stale entry exists, the stale entry is served (stale-if-error).
//
// Not-found answers are cached for NegativeTTL.
func (m *Modules) fresh(ctx context.Context, kind, key string, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	e := m.loadEntry(ctx, key)
	if e != nil {
		ttl := m.cfg.ListTTL
		if e.NotFound != "" {
			ttl = m.cfg.NegativeTTL
		}
		age := m.now().Sub(e.Fetched)
		if age >= 0 && age < ttl {
			metrics.CacheResults.WithLabelValues(kind, "hit").Inc()
			return e.result()
		}
		if e.NotFound == "" {
			metrics.CacheResults.WithLabelValues(kind, "stale").Inc()
			// One background refresh per key at a time, however many stale
			// hits arrive while it runs: later hits start nothing at all.
			if _, busy := m.refreshing.LoadOrStore(key, struct{}{}); !busy {
				m.background(func(bctx context.Context) {
					defer m.refreshing.Delete(key)
					_, err := m.waitFlight(bctx, "refresh:"+key, func(fctx context.Context) ([]byte, error) {
						return m.refresh(fctx, kind, key, fetch)
					})
					if err != nil && !errors.Is(err, source.ErrNotFound) && !errors.Is(err, context.Canceled) {
						m.log.Warn("background refresh failed; serving stale answer", "key", key, "err", err)
					}
				})
			}
			return e.result()
		}
	}
	metrics.CacheResults.WithLabelValues(kind, "miss").Inc()
	body, err := m.waitFlight(ctx, "refresh:"+key, func(fctx context.Context) ([]byte, error) {
		return m.refresh(fctx, kind, key, fetch)
	})
	if err != nil && e != nil && !errors.Is(err, source.ErrNotFound) {
		m.log.Warn("upstream failed; serving stale answer", "key", key, "err", err)
		metrics.CacheResults.WithLabelValues(kind, "stale_if_error").Inc()
		return e.result()
	}
	return body, err
}

// refresh fetches a mutable answer and stores it, positive or negative.
func (m *Modules) refresh(ctx context.Context, kind, key string, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	start := time.Now()
	body, err := fetch(ctx)
	observeFetch(kind, start, err)
	var e entry
	switch {
	case err == nil:
		e = entry{Fetched: m.now(), Body: body}
	case errors.Is(err, source.ErrNotFound):
		msg := err.Error()
		if msg == "" {
			msg = "not found"
		}
		e = entry{Fetched: m.now(), NotFound: msg}
	default:
		return nil, err
	}
	if m.cfg.NegativeTTL > 0 || e.NotFound == "" {
		if perr := m.storeEntry(ctx, key, &e); perr != nil {
			m.log.Error("cannot store cached answer", "key", key, "err", perr)
		}
	}
	return e.result()
}

func (m *Modules) loadEntry(ctx context.Context, key string) *entry {
	rc, _, err := m.cfg.Store.Open(ctx, key)
	if err != nil {
		if !errors.Is(err, store.ErrNotExist) {
			m.log.Warn("cannot read cached answer", "key", key, "err", err)
		}
		return nil
	}
	defer rc.Close()
	var e entry
	if err := json.NewDecoder(io.LimitReader(rc, 32<<20)).Decode(&e); err != nil {
		m.log.Warn("ignoring corrupt cached answer", "key", key, "err", err)
		return nil
	}
	return &e
}

func (m *Modules) storeEntry(ctx context.Context, key string, e *entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return m.cfg.Store.Put(ctx, key, bytes.NewReader(data))
}
