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
	"time"

	"github.com/modgate/modgate/internal/metrics"
)

type loggerKey struct{}

// logger returns the request's logger, which carries its request id.
func logger(r *http.Request) *slog.Logger {
	if l, ok := r.Context().Value(loggerKey{}).(*slog.Logger); ok {
		return l
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

// Instrument wraps next with a request id, a request-scoped logger,
// metrics, panic recovery and a debug-level access log line.
func Instrument(base *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = newRequestID()
		}
		log := base.With("request_id", id)
		r = r.WithContext(context.WithValue(r.Context(), loggerKey{}, log))
		rw := &responseWriter{ResponseWriter: w, status: http.StatusOK}
		rw.Header().Set("X-Request-Id", id)
		endpoint := Endpoint(r.URL.Path)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic serving request", "path", r.URL.Path, "panic", p)
				if !rw.wroteHeader {
					WriteError(rw, r, http.StatusInternalServerError, "internal error in modgate; the operator should check its logs")
				}
			}
			elapsed := time.Since(start)
			metrics.Requests.WithLabelValues(endpoint, strconv.Itoa(rw.status)).Inc()
			metrics.RequestDuration.WithLabelValues(endpoint).Observe(elapsed.Seconds())
			metrics.BytesServed.WithLabelValues(endpoint).Add(float64(rw.bytes))
			level := slog.LevelDebug
			if rw.status >= 500 {
				level = slog.LevelWarn
			}
			log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path,
				"status", rw.status, "bytes", rw.bytes, "seconds", elapsed.Seconds())
		}()
		if uncleanPath(r.URL.Path) {
			// net/http's ServeMux would answer with an HTML redirect to the
			// cleaned path; the protocol's answer is a one-line error.
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
	for _, elem := range strings.Split(p, "/") {
		if elem == "." || elem == ".." {
			return true
		}
	}
	return false
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
