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
)

type requestKey struct{}

// requestInfo is what the middleware puts in a request's context. The
// request-scoped logger is built only when something logs: most requests
// log nothing, and building it costs more than serving a small file.
type requestInfo struct {
	id   string
	base *slog.Logger
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

// Instrument wraps next with a request id, a request-scoped logger,
// metrics, panic recovery and a debug-level access log line.
func Instrument(base *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = newRequestID()
		}
		ri := &requestInfo{id: id, base: base}
		r = r.WithContext(context.WithValue(r.Context(), requestKey{}, ri))
		rw := &responseWriter{ResponseWriter: w, status: http.StatusOK}
		rw.Header().Set("X-Request-Id", id)
		endpoint := Endpoint(r.URL.Path)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				logger(r).Error("panic serving request", "path", r.URL.Path, "panic", p)
				if !rw.wroteHeader {
					WriteError(rw, r, http.StatusInternalServerError, "internal error in modgate; the operator should check its logs")
				}
			}
			elapsed := time.Since(start)
			endpoints[endpoint].observe(endpoint, rw.status, rw.bytes, elapsed)
			level := slog.LevelDebug
			if rw.status >= 500 {
				level = slog.LevelWarn
			}
			if base.Enabled(r.Context(), level) {
				logger(r).Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path,
					"status", rw.status, "bytes", rw.bytes, "seconds", elapsed.Seconds())
			}
		}()
		// A path that net/http would "clean" with a redirect (dot elements,
		// double slashes) is not a module proxy request: answer it here with
		// a one-line reason instead of an HTML redirect.
		if uncleanPath(r.URL.Path) {
			endpoint = "invalid"
			WriteError(rw, r, http.StatusBadRequest, fmt.Sprintf("not a clean URL path: %q (empty, \".\" or \"..\" elements)", r.URL.Path))
			return
		}
		next.ServeHTTP(rw, r)
	})
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

// responseWriter records the status and body size. It implements
// io.ReaderFrom so that serving a file still uses sendfile.
type responseWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wroteHeader = true
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(r)
		w.bytes += n
		return n, err
	}
	n, err := io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	w.bytes += n
	return n, err
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
