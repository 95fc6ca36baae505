package goproxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/protocol"
)

type requestKey struct{}

// requestInfo is what the middleware puts in a request's context. The
// request-scoped logger is built only when something logs: most requests
// log nothing, and building it costs more than serving a small file.
type requestInfo struct {
	id   string
	base *slog.Logger
	// err and attrs are an internal error noted by the handler (noteError),
	// logged with the request.
	err   error
	attrs []any
}

// logger returns the request's logger, which carries its request id.
func logger(r *http.Request) *slog.Logger {
	if ri, ok := r.Context().Value(requestKey{}).(*requestInfo); ok {
		return ri.base.With("request_id", ri.id)
	}
	return slog.Default()
}

// Endpoint names the kind of a request for metrics, cheaply and with a
// bounded set of values.
func Endpoint(path string) string {
	switch {
	case strings.HasPrefix(path, "/sumdb/"):
		return "sumdb"
	case path == "/healthz" || path == "/readyz" || path == "/metrics":
		return "ops"
	case strings.HasSuffix(path, "/@latest"):
		return "latest"
	case strings.HasSuffix(path, "/@v/list"):
		return "list"
	case strings.HasSuffix(path, ".info"):
		return "info"
	case strings.HasSuffix(path, ".mod"):
		return "mod"
	case strings.HasSuffix(path, ".zip"):
		return "zip"
	}
	return "other"
}

// endpointMetrics are one endpoint's collectors, resolved once instead of
// by label lookups on every request.
type endpointMetrics struct {
	duration prometheus.Observer
	bytes    prometheus.Counter
	codes    sync.Map // status code (int) -> prometheus.Counter
}

var endpoints = func() map[string]*endpointMetrics {
	m := map[string]*endpointMetrics{}
	for _, e := range []string{"sumdb", "ops", "latest", "list", "info", "mod", "zip", "other", "invalid"} {
		m[e] = &endpointMetrics{
			duration: metrics.RequestDuration.WithLabelValues(e),
			bytes:    metrics.BytesServed.WithLabelValues(e),
		}
	}
	return m
}()

func (em *endpointMetrics) observe(endpoint string, status int, bytes int64, elapsed time.Duration) {
	c, ok := em.codes.Load(status)
	if !ok {
		c, _ = em.codes.LoadOrStore(status, metrics.Requests.WithLabelValues(endpoint, strconv.Itoa(status)))
	}
	c.(prometheus.Counter).Inc()
	em.duration.Observe(elapsed.Seconds())
	em.bytes.Add(float64(bytes))
}

// Request ids are a per-process random prefix and a counter: unique, cheap,
// and easy to grep for.
var (
	idPrefix  = newIDPrefix()
	idCounter atomic.Uint64
)

func newIDPrefix() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newRequestID() string {
	return idPrefix + "-" + strconv.FormatUint(idCounter.Add(1), 36)
}

// maxRequestIDLen bounds a client's X-Request-Id.
const maxRequestIDLen = 64

// validRequestID reports whether a client's X-Request-Id can be logged and
// echoed as is: short, and only characters that need no quoting or escaping
// in a log line or a header and cannot forge one ([A-Za-z0-9._-]).
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// MaxRequestURI is the longest request target (path and query) modgate
// answers; longer ones get 414. Module paths and versions are far shorter:
// the limit only keeps junk out of the cache, the upstreams and the logs.
const MaxRequestURI = 8 << 10

// maxLoggedPath is how much of a request path a log line shows.
const maxLoggedPath = 512

// logPath cuts a path for a log line, saying how long it was.
func logPath(p string) string {
	if len(p) <= maxLoggedPath {
		return p
	}
	return strings.ToValidUTF8(p[:maxLoggedPath], "") + "...(" + strconv.Itoa(len(p)) + " bytes)"
}

// Option configures Instrument.
type Option func(*instrumentConfig)

type instrumentConfig struct {
	minRate int64         // bytes per second; 0: no send deadlines
	window  time.Duration // time any one write may take at least
}

// SendDeadlines drops clients that stop reading. Before each write of n
// bytes the connection's write deadline is set to now + max(window,
// n/minRate), so a transfer must keep moving at minRate on average over
// each window; file bodies are sent in chunks of minRate×window bytes for
// the same reason. Until the response starts no deadline applies: a cold
// fetch may take minutes before the first byte, and the go command waits
// for it. Without this, a client that stops reading holds its connection
// and an open file forever, and enough of them exhaust the process's file
// descriptors. minRate <= 0 or window <= 0 disables it.
func SendDeadlines(minRate int64, window time.Duration) Option {
	return func(c *instrumentConfig) {
		if minRate > 0 && window > 0 {
			c.minRate, c.window = minRate, window
		} else {
			c.minRate, c.window = 0, 0
		}
	}
}

// Instrument wraps next with a request id, a request-scoped logger,
// metrics, panic recovery, send deadlines (see SendDeadlines) and one log
// line per request: at debug, at warn for 5xx answers, at error when a
// handler recorded an internal error (see noteError).
func Instrument(base *slog.Logger, next http.Handler, opts ...Option) http.Handler {
	var cfg instrumentConfig
	for _, o := range opts {
		o(&cfg)
	}
	chunk := int64(0)
	if cfg.window > 0 {
		chunk = max(int64(float64(cfg.minRate)*cfg.window.Seconds()), 32<<10)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		ri := &requestInfo{id: id, base: base}
		r = r.WithContext(protocol.WithRequestID(context.WithValue(r.Context(), requestKey{}, ri), id))
		rw := &responseWriter{ResponseWriter: w, status: http.StatusOK, minRate: cfg.minRate, window: cfg.window, chunk: chunk}
		rw.Header().Set("X-Request-Id", id)
		// No answer of modgate is to be sniffed into something else: a
		// module file served as HTML would run in the web UI's origin.
		rw.Header().Set("X-Content-Type-Options", "nosniff")
		endpoint := Endpoint(r.URL.Path)
		defer func() {
			p := recover()
			if p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				ri.err, ri.attrs = fmt.Errorf("panic: %v", p), nil
				if !rw.wroteHeader {
					WriteError(rw, r, http.StatusInternalServerError, "internal error in modgate (request id "+id+"); ask its operator to check the logs for that request id")
				}
			}
			// net/http flushes what the handler left in its buffer after
			// this returns: give that write a fresh deadline too (the last
			// one may be long past on a kept-alive connection).
			rw.extendDeadline(0)
			elapsed := time.Since(start)
			endpoints[endpoint].observe(endpoint, rw.status, rw.bytes, elapsed)
			level := slog.LevelDebug
			switch {
			case ri.err != nil:
				level = slog.LevelError
			case rw.status >= 500:
				level = slog.LevelWarn
			}
			if base.Enabled(r.Context(), level) {
				args := []any{"method", logPath(r.Method), "path", logPath(r.URL.Path),
					"status", rw.status, "bytes", rw.bytes, "seconds", elapsed.Seconds()}
				if rw.sendErr != nil {
					args = append(args, "send_err", rw.sendErr)
				}
				if ri.err != nil {
					args = append(append(args, "err", ri.err), ri.attrs...)
				}
				logger(r).Log(r.Context(), level, "request", args...)
			}
		}()
		if len(r.RequestURI) > MaxRequestURI {
			endpoint = "invalid"
			WriteError(rw, r, http.StatusRequestURITooLong, fmt.Sprintf("request URL is %d bytes, longer than the %d a module proxy request can need; check the module path and version", len(r.RequestURI), MaxRequestURI))
			return
		}
		// A path that net/http would "clean" with a redirect (dot elements,
		// double slashes), or that is no path at all ("*", a CONNECT's
		// host:port), is not a module proxy request: answer it here with a
		// one-line reason instead of ServeMux's redirect or bare 400.
		if !strings.HasPrefix(r.URL.Path, "/") {
			endpoint = "invalid"
			WriteError(rw, r, http.StatusBadRequest, fmt.Sprintf("not a module proxy request: %q is not a URL path (want /<module>/@v/... or /<module>/@latest)", r.RequestURI))
			return
		}
		if uncleanPath(r.URL.Path) {
			endpoint = "invalid"
			WriteError(rw, r, http.StatusBadRequest, fmt.Sprintf("not a clean URL path: %q (empty, \".\" or \"..\" elements)", r.URL.Path))
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// noteError records the cause of an internal error (and attributes such as
// the module) for the request's log line, so that a failed request is
// logged once, with everything known about it.
func noteError(r *http.Request, err error, attrs ...any) {
	if ri, ok := r.Context().Value(requestKey{}).(*requestInfo); ok {
		ri.err, ri.attrs = err, attrs
		return
	}
	slog.Default().Error("internal error", append([]any{"path", logPath(r.URL.Path), "err", err}, attrs...)...)
}

// uncleanPath reports whether an URL path has empty, "." or ".." elements
// (a trailing slash aside). The go command never sends such paths.
func uncleanPath(p string) bool {
	if strings.Contains(p, "//") {
		return true
	}
	for p != "" {
		var elem string
		elem, p, _ = strings.Cut(p, "/")
		if elem == "." || elem == ".." {
			return true
		}
	}
	return false
}

// responseWriter records the status and body size, and moves the write
// deadline forward as the body goes out (SendDeadlines). It implements
// io.ReaderFrom so that serving a file still uses sendfile.
type responseWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool

	minRate int64         // 0: no deadlines
	window  time.Duration // at least this long for each write
	chunk   int64         // bytes per ReadFrom round: minRate × window
	// noDeadline is set when the connection cannot take deadlines (a
	// ResponseWriter that is not net/http's, as in tests).
	noDeadline bool
	// sendErr is the first write error: the client went away or was
	// dropped for not reading.
	sendErr error
}

// extendDeadline sets the write deadline for a write of n bytes: now +
// max(window, n/minRate).
func (w *responseWriter) extendDeadline(n int64) {
	if w.window == 0 || w.noDeadline {
		return
	}
	d := w.window
	if t := time.Duration(float64(n) / float64(w.minRate) * float64(time.Second)); t > d {
		d = t
	}
	if err := http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(d)); err != nil {
		w.noDeadline = true
	}
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.extendDeadline(0)
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	w.extendDeadline(int64(len(p)))
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	if err != nil && w.sendErr == nil {
		w.sendErr = err
	}
	return n, err
}

// ReadFrom copies r in chunks of minRate×window bytes, moving the deadline
// before each. A chunk is an *io.LimitedReader directly over r's file (one
// level of LimitedReader, not two), which is what net's sendfile accepts.
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wroteHeader = true
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		// Through Write, which moves the deadline.
		n, err := io.Copy(writerOnly{w}, r)
		return n, err
	}
	if w.window == 0 || w.noDeadline {
		n, err := rf.ReadFrom(r)
		w.bytes += n
		if err != nil && w.sendErr == nil {
			w.sendErr = err
		}
		return n, err
	}
	src, outer := r, (*io.LimitedReader)(nil)
	if lr, ok := r.(*io.LimitedReader); ok {
		src, outer = lr.R, lr
	}
	var total int64
	chunk := &io.LimitedReader{R: src}
	for {
		size := w.chunk
		if outer != nil {
			if outer.N <= 0 {
				return total, nil
			}
			size = min(size, outer.N)
		}
		w.extendDeadline(size)
		chunk.N = size
		n, err := rf.ReadFrom(chunk)
		total += n
		w.bytes += n
		if outer != nil {
			outer.N -= n
		}
		if err != nil {
			if w.sendErr == nil {
				w.sendErr = err
			}
			return total, err
		}
		if n < size { // src is at its end
			return total, nil
		}
	}
}

// writerOnly hides ReadFrom, so that io.Copy goes through Write.
type writerOnly struct{ io.Writer }

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
