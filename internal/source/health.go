package source

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/modgate/modgate/internal/redact"
)

// maxHealthError bounds the last error an upstream keeps for its health
// report: one line, enough to name the cause.
const maxHealthError = 300

// UpstreamHealth is what an upstream's recent answers say about it,
// learned from the requests modgate sent it anyway: an idle upstream is
// never probed, so both times may be zero.
type UpstreamHealth struct {
	// LastSuccess is when it last gave an answer about a module (a file,
	// or a not-found answer: it is up and understood the request).
	LastSuccess time.Time
	// LastFailure is when it last failed (unreachable, timed out, or an
	// answer that is not about the module: 401, 429, 5xx); LastError says
	// why, without credentials.
	LastFailure time.Time
	LastError   string
}

// OK reports whether the last thing the upstream did was answer: true
// also for an upstream not asked yet, since nothing says it is down.
func (h UpstreamHealth) OK() bool { return !h.LastFailure.After(h.LastSuccess) }

// ChainEntry describes one entry of a Chain for a health report.
type ChainEntry struct {
	// Name is the entry in GOPROXY syntax, credentials redacted: a URL,
	// "direct" or "off".
	Name string
	// Proxy reports an http(s) upstream; Health is meaningful only then.
	Proxy  bool
	Health UpstreamHealth
}

// Entries describes the chain's entries in order, each proxy with what
// its recent answers say about it.
func (c *Chain) Entries() []ChainEntry {
	out := make([]ChainEntry, 0, len(c.entries))
	for _, e := range c.entries {
		ce := ChainEntry{Name: e.src.String()}
		if e.direct {
			ce.Name = "direct"
		}
		if u, ok := e.src.(*Upstream); ok && !e.direct {
			ce.Proxy = true
			ce.Health = u.health.get()
		}
		out = append(out, ce)
	}
	return out
}

// healthRecord keeps an Upstream's UpstreamHealth. A mutex, not atomics:
// the three fields change together, and a request costs one uncontended
// lock next to a network round trip.
type healthRecord struct {
	mu sync.Mutex
	h  UpstreamHealth
}

// note records the outcome of one request: err nil or a not-found answer
// is a success; anything else a failure. A request the caller gave up on
// (its context was canceled) says nothing about the upstream.
func (r *healthRecord) note(err error, now time.Time) {
	if errors.Is(err, context.Canceled) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil || errors.Is(err, ErrNotFound) {
		r.h.LastSuccess = now
		return
	}
	r.h.LastFailure = now
	r.h.LastError = redact.Line(err.Error(), maxHealthError)
}

func (r *healthRecord) get() UpstreamHealth {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.h
}
