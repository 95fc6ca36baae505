package sumdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Remote reaches a checksum database: through the first upstream proxy that
// says it supports the database (GET <proxy>/sumdb/<name>/supported answers
// 200, as the go command itself checks), else at the database's own URL.
type Remote struct {
	db        DB
	upstreams []string
	client    *http.Client

	mu       sync.Mutex
	base     string // chosen base URL; "" until probed
	probedAt time.Time
}

// reprobeAfter is how long a probe result is trusted.
const reprobeAfter = 10 * time.Minute

// maxRemoteSize bounds a lookup, tile or latest answer.
const maxRemoteSize = 1 << 20

// NewRemote returns a Remote for db. upstreams are proxy base URLs in order
// of preference.
func NewRemote(db DB, upstreams []string, client *http.Client) *Remote {
	return &Remote{db: db, upstreams: upstreams, client: client}
}

// ErrNotFound is a database answer meaning "no such record or tile".
var ErrNotFound = errors.New("not found in the checksum database")

// Base returns the base URL the database is reached at, probing the
// upstreams when needed.
func (r *Remote) Base(ctx context.Context) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.base != "" && time.Since(r.probedAt) < reprobeAfter {
		return r.base
	}
	r.base = r.db.URL
	for _, u := range r.upstreams {
		if r.supported(ctx, u) {
			r.base = u + "/sumdb/" + r.db.Name
			break
		}
	}
	r.probedAt = time.Now()
	return r.base
}

func (r *Remote) supported(ctx context.Context, upstream string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, upstream+"/sumdb/"+r.db.Name+"/supported", nil)
	if err != nil {
		return false
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// forget makes the next call probe again (after a failure of the chosen base).
func (r *Remote) forget() {
	r.mu.Lock()
	r.base = ""
	r.mu.Unlock()
}

// Get fetches path ("/lookup/M@V", "/tile/...", "/latest") from the database.
func (r *Remote) Get(ctx context.Context, path string) ([]byte, error) {
	base := r.Base(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.forget()
		return nil, fmt.Errorf("checksum database %s via %s: %w", r.db.Name, base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteSize+1))
	if err != nil {
		r.forget()
		return nil, fmt.Errorf("checksum database %s via %s: %w", r.db.Name, base, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && len(body) <= maxRemoteSize:
		return body, nil
	case resp.StatusCode == http.StatusOK:
		return nil, fmt.Errorf("checksum database %s via %s: %s answer larger than %d bytes", r.db.Name, base, path, maxRemoteSize)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("%w: %s (%s)", ErrNotFound, path, oneLine(body))
	}
	if resp.StatusCode >= 500 {
		r.forget()
	}
	return nil, fmt.Errorf("checksum database %s via %s answered %d for %s: %s", r.db.Name, base, resp.StatusCode, path, oneLine(body))
}

func oneLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
