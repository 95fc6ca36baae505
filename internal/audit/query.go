package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Filter selects events. Empty fields select everything.
type Filter struct {
	Module    string // exact module path
	Principal string // exact token name, or "anonymous"
	// Since (inclusive) and Until (exclusive) bound the event time.
	Since, Until time.Time
	Decision     string // "allow", "deny" or "would-deny"
	// Limit is the most events returned: the newest ones. Default
	// DefaultLimit, at most MaxLimit.
	Limit int
}

const (
	DefaultLimit = 1000
	MaxLimit     = 10000
)

// Query returns the events matching f, newest first, from the current file
// and the rotated ones. It reads them line by line, newest file first, and
// holds at most Limit events: it stops at the first file that completes
// Limit, or whose events all precede f.Since. Lines that do not parse (a
// crash's partial write) are skipped.
func (l *Log) Query(ctx context.Context, f Filter) ([]Event, error) {
	if l.stdout {
		return nil, ErrNotQueryable
	}
	if f.Limit <= 0 {
		f.Limit = DefaultLimit
	}
	f.Limit = min(f.Limit, MaxLimit)
	files, err := l.snapshot()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range files {
			s.f.Close()
		}
	}()
	m := newMatcher(f)
	out := []Event{}
	for _, s := range files {
		found, older, err := m.scan(ctx, io.NewSectionReader(s.f, 0, s.size), f.Limit-len(out))
		if err != nil {
			return nil, fmt.Errorf("audit log %s: %w", s.f.Name(), err)
		}
		out = append(out, found...)
		if len(out) == f.Limit || older {
			break
		}
	}
	return out, nil
}

type section struct {
	f    *os.File
	size int64
}

// snapshot opens the current file and the rotated ones, newest first,
// under the log's lock: a rotation during the query then changes nothing
// the query reads (no file read twice or missed), and lines written after
// the snapshot are past the size it took.
func (l *Log) snapshot() ([]section, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var files []section
	for i := 0; i <= l.cfg.MaxFiles; i++ {
		f, err := os.Open(l.rotated(i))
		if errors.Is(err, os.ErrNotExist) {
			continue // not rotated that often yet, or a crash mid-rotation
		}
		var fi os.FileInfo
		if err == nil {
			fi, err = f.Stat()
		}
		if err != nil {
			for _, s := range files {
				s.f.Close()
			}
			if f != nil {
				f.Close()
			}
			return nil, fmt.Errorf("audit log: %w", err)
		}
		files = append(files, section{f, fi.Size()})
	}
	return files, nil
}

// matcher tests lines against a Filter.
type matcher struct {
	f Filter
	// needles are the filter's exact fields as the writer encodes them
	// ("module":"example.com/m"): a line without them cannot match, which
	// is found without decoding it. Decoding then checks exactly.
	needles [][]byte
}

func newMatcher(f Filter) *matcher {
	m := &matcher{f: f}
	for _, kv := range [][2]string{{"module", f.Module}, {"principal", f.Principal}, {"decision", f.Decision}} {
		if kv[1] != "" {
			m.needles = append(m.needles, fmt.Appendf(nil, "%q:%s", kv[0], jsonString(kv[1])))
		}
	}
	return m
}

// jsonString encodes s as Write does.
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

func (m *matcher) match(e *Event) bool {
	f := &m.f
	return (f.Module == "" || e.Module == f.Module) &&
		(f.Principal == "" || e.Principal == f.Principal) &&
		(f.Decision == "" || e.Decision == f.Decision) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until))
}

// scan returns the last n matching events of r, newest first, and whether
// r's first event precedes f.Since (so that older files cannot match).
func (m *matcher) scan(ctx context.Context, r io.Reader, n int) (found []Event, older bool, err error) {
	ring := make([]Event, 0, min(n, 64))
	next := 0 // where the next match goes once ring is full
	first := true
	lr := newLineReader(r)
	for lines := 0; ; lines++ {
		if lines%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, false, err
			}
		}
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		if !first && !m.maybe(line) {
			continue
		}
		var e Event
		if json.Unmarshal(line, &e) != nil || e.Time.IsZero() {
			continue
		}
		if first {
			first = false
			older = !m.f.Since.IsZero() && e.Time.Before(m.f.Since)
		}
		if !m.match(&e) {
			continue
		}
		if len(ring) < n {
			ring = append(ring, e)
		} else {
			ring[next] = e
			next = (next + 1) % n
		}
	}
	// Oldest is at next once the ring has wrapped, else at 0.
	found = make([]Event, 0, len(ring))
	for i := range ring {
		found = append(found, ring[(next+len(ring)-1-i)%len(ring)])
	}
	return found, older, nil
}

func (m *matcher) maybe(line []byte) bool {
	for _, n := range m.needles {
		if !bytes.Contains(line, n) {
			return false
		}
	}
	return true
}

// Handler serves GET /admin/v1/audit?module=&principal=&since=&until=&decision=&limit=
// (times in RFC 3339): the matching events as a JSON array, newest first.
// A bad parameter gets 400 and one text/plain line. Who may ask is for the
// caller to decide (the admin middleware). A nil Log (no audit log
// configured) answers 404.
func (l *Log) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l == nil {
			textError(w, http.StatusNotFound, "the audit log is off; start modgate with --audit-log FILE")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			textError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
			return
		}
		f, err := parseFilter(r.URL.Query())
		if err != nil {
			textError(w, http.StatusBadRequest, err.Error())
			return
		}
		events, err := l.Query(r.Context(), f)
		switch {
		case errors.Is(err, ErrNotQueryable):
			textError(w, http.StatusNotImplemented, err.Error())
			return
		case err != nil:
			l.log.Error("audit log query failed", "err", err)
			textError(w, http.StatusInternalServerError, "cannot read the audit log; see modgate's log")
			return
		}
		body, err := json.Marshal(events)
		if err != nil {
			textError(w, http.StatusInternalServerError, err.Error())
			return
		}
		body = append(body, '\n')
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
}

var filterParams = []string{"module", "principal", "since", "until", "decision", "limit"}

func parseFilter(q url.Values) (Filter, error) {
	var f Filter
	for k, vs := range q {
		if !slices.Contains(filterParams, k) {
			return f, fmt.Errorf("unknown parameter %q; known: %s", k, strings.Join(filterParams, ", "))
		}
		if len(vs) > 1 {
			return f, fmt.Errorf("parameter %q given %d times", k, len(vs))
		}
	}
	f.Module, f.Principal = q.Get("module"), q.Get("principal")
	var err error
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := q.Get(t.name); s != "" {
			if *t.to, err = time.Parse(time.RFC3339, s); err != nil {
				return f, fmt.Errorf("%s=%q is not an RFC 3339 time such as 2006-01-02T15:04:05Z", t.name, s)
			}
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, fmt.Errorf("since (%s) is not before until (%s)", q.Get("since"), q.Get("until"))
	}
	switch f.Decision = q.Get("decision"); f.Decision {
	case "", Allow, Deny, WouldDeny:
	default:
		return f, fmt.Errorf("decision=%q is not one of allow, deny, would-deny", f.Decision)
	}
	if s := q.Get("limit"); s != "" {
		if f.Limit, err = strconv.Atoi(s); err != nil || f.Limit < 1 || f.Limit > MaxLimit {
			return f, fmt.Errorf("limit=%q is not a number from 1 to %d", s, MaxLimit)
		}
	}
	return f, nil
}

// textError answers one text/plain line, as the rest of modgate does.
func textError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, "modgate: "+strings.Join(strings.Fields(msg), " "))
}
