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

	"github.com/modgate/modgate/internal/redact"
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

// maxBodyInError bounds how much of a database's error answer is quoted.
const maxBodyInError = 200

// NewRemote returns a Remote for db. upstreams are proxy base URLs in order
// of preference.
func NewRemote(db DB, upstreams []string, client *http.Client) *Remote {
	return &Remote{db: db, upstreams: upstreams, client: client}
}

// ErrNotFound is a database answer meaning "no such record or tile".
var ErrNotFound = errors.New("not found in the checksum database")

// Base returns the base URL the database is reached at, probing the
// upstreams when needed. It may hold credentials: never show it unredacted.
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

// remoteError is a failure to get something from the database. Its text is
// made safe to show (the base URL and the transport's error quote upstream
// URLs, which may hold user:password@ or a token) while the cause stays
// available to errors.Is, for context cancellation.
type remoteError struct {
	msg string
	err error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.err }

func (r *Remote) fail(base, format string, err error, args ...any) error {
	msg := fmt.Sprintf("checksum database %s via %s: ", r.db.Name, redact.URL(base)) + fmt.Sprintf(format, args...)
	return &remoteError{msg: redact.Line(msg, 0), err: err}
}

// Get fetches path ("/lookup/M@V", "/tile/...", "/latest") from the database.
func (r *Remote) Get(ctx context.Context, path string) ([]byte, error) {
	base := r.Base(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, r.fail(base, "%s: %v", err, path, err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() == nil { // the caller giving up says nothing about the base
			r.forget()
		}
		return nil, r.fail(base, "%v", err, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteSize+1))
	if err != nil {
		if ctx.Err() == nil {
			r.forget()
		}
		return nil, r.fail(base, "reading %s: %v", err, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && len(body) <= maxRemoteSize:
		return body, nil
	case resp.StatusCode == http.StatusOK:
		return nil, r.fail(base, "%s answer larger than %d bytes", nil, path, maxRemoteSize)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, &remoteError{msg: fmt.Sprintf("%v: %s (%s)", ErrNotFound, path, redact.Line(firstLine(body), maxBodyInError)), err: ErrNotFound}
	}
	if resp.StatusCode >= 500 {
		r.forget()
	}
	return nil, r.fail(base, "answered %d for %s: %s", nil, resp.StatusCode, path, redact.Line(firstLine(body), maxBodyInError))
}

// firstLine is the first line of an answer: databases put the reason there.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
