package goproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logLines is a JSON slog destination whose records a test can read back.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logLines) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	text := l.buf.String()
	l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRequestID(t *testing.T) {
	for _, tc := range []struct {
		header string
		echo   bool
	}{
		{"abc-123_X.y", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"a b", false},
		{"a\tb", false},
		{`a"b`, false},
		{"a=b", false},
		{"<script>", false},
		{"ünïcode", false},
		{"id\x00", false},
		{"id%0a", false},
	} {
		var logs logLines
		h := Instrument(logs.logger(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			logger(r).Info("inside")
		}))
		req := httptest.NewRequest("GET", "/x/@v/list", nil)
		if tc.header != "" {
			req.Header["X-Request-Id"] = []string{tc.header}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if tc.echo && got != tc.header {
			t.Errorf("X-Request-Id %q: answered %q, want it echoed", tc.header, got)
		}
		if !tc.echo && (got == tc.header || !strings.HasPrefix(got, idPrefix+"-")) {
			t.Errorf("X-Request-Id %q: answered %q, want a generated id", tc.header, got)
		}
		// The handler's line and the request's line carry the same id.
		recs := logs.records(t)
		if len(recs) != 2 || recs[0]["request_id"] != got || recs[1]["request_id"] != got {
			t.Errorf("X-Request-Id %q: logged %v, want two lines with request_id %q", tc.header, recs, got)
		}
	}
}

func TestRequestURITooLong(t *testing.T) {
	var logs logLines
	reached := 0
	h := Instrument(logs.logger(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	long := "/example.com/" + strings.Repeat("a", MaxRequestURI)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", long, nil))
	body := rec.Body.String()
	if rec.Code != http.StatusRequestURITooLong || reached != 0 {
		t.Fatalf("%d-byte URL: status %d, handler reached %d times; want 414 and not reached", len(long), rec.Code, reached)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || strings.Count(body, "\n") != 1 || !strings.HasPrefix(body, "modgate: ") || len(body) > 648 {
		t.Errorf("414 answer %q (%s), want one short text/plain line", body, ct)
	}
	// The longest accepted one is passed on.
	ok := long[:MaxRequestURI]
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", ok, nil))
	if reached != 1 {
		t.Errorf("%d-byte URL did not reach the handler", len(ok))
	}
	// Both requests were logged once each, the path cut short.
	recs := logs.records(t)
	if len(recs) != 2 {
		t.Fatalf("%d log lines for 2 requests: %v", len(recs), recs)
	}
	for i, want := range []int{len(long), len(ok)} {
		p, _ := recs[i]["path"].(string)
		if suffix := fmt.Sprintf("...(%d bytes)", want); len(p) > maxLoggedPath+len(suffix) || !strings.HasSuffix(p, suffix) {
			t.Errorf("logged path of %d bytes: %d bytes ending %q, want %d bytes and %q", want, len(p), p[max(0, len(p)-20):], maxLoggedPath, suffix)
		}
	}
}

// TestInternalErrorLoggedOnce: a request that fails inside is one log line
// at error level with the cause, not a line for the cause and another for
// the request.
func TestInternalErrorLoggedOnce(t *testing.T) {
	var logs logLines
	h := Instrument(logs.logger(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noteError(r, errors.New("disk on fire"), "module", "example.com/m")
		WriteError(w, r, http.StatusInternalServerError, "internal error")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/example.com/m/@v/list", nil))
	recs := logs.records(t)
	if len(recs) != 1 {
		t.Fatalf("%d log lines, want 1: %v", len(recs), recs)
	}
	r := recs[0]
	if r["level"] != "ERROR" || r["err"] != "disk on fire" || r["module"] != "example.com/m" || r["status"] != float64(500) {
		t.Errorf("log line %v, want level ERROR, the err, the module and status 500", r)
	}
}

func TestPanicAnswers500(t *testing.T) {
	var logs logLines
	h := Instrument(logs.logger(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), rec.Header().Get("X-Request-Id")) {
		t.Errorf("panic: %d %q, want 500 naming the request id", rec.Code, rec.Body.String())
	}
	if recs := logs.records(t); len(recs) != 1 || recs[0]["level"] != "ERROR" || !strings.Contains(fmt.Sprint(recs[0]["err"]), "boom") {
		t.Errorf("panic logged as %v, want one error line with the panic", recs)
	}
}

// deadlineRecorder is a ResponseWriter that takes write deadlines and
// copies with ReadFrom, recording what it was given: the shape of what
// reaches net/http decides whether sendfile is used.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	readers   []io.Reader
	sizes     []int64
	deadlines []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

func (d *deadlineRecorder) ReadFrom(r io.Reader) (int64, error) {
	d.readers = append(d.readers, r)
	if lr, ok := r.(*io.LimitedReader); ok {
		d.sizes = append(d.sizes, lr.N)
	}
	return io.Copy(d.ResponseRecorder, r)
}

// TestReadFromChunksForSendfile: a file body reaches the connection as
// chunks that are each one *io.LimitedReader over the *os.File itself (what
// net's sendfile takes), with the deadline moved before each.
func TestReadFromChunksForSendfile(t *testing.T) {
	const rate, window = 64 << 10, time.Second
	const chunk = rate // rate × 1s
	content := bytes.Repeat([]byte("0123456789abcdef"), (5*chunk+1000)/16)
	f := writeTemp(t, content)
	h := Instrument(slog.New(slog.DiscardHandler), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, f)
	}), SendDeadlines(rate, window))
	rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x.zip", nil))
	if !bytes.Equal(rec.Body.Bytes(), content) {
		t.Fatalf("body: %d bytes, want the %d of the file", rec.Body.Len(), len(content))
	}
	if len(rec.readers) < 5 {
		t.Fatalf("ReadFrom called %d times for %d bytes in chunks of %d", len(rec.readers), len(content), chunk)
	}
	for i, r := range rec.readers {
		lr, ok := r.(*io.LimitedReader)
		if !ok || lr.R != f {
			t.Errorf("chunk %d: %T, want *io.LimitedReader directly over the *os.File (sendfile)", i, r)
		}
		if rec.sizes[i] > chunk {
			t.Errorf("chunk %d: %d bytes, want at most %d", i, rec.sizes[i], chunk)
		}
	}
	if len(rec.deadlines) < len(rec.readers) {
		t.Errorf("%d deadlines set for %d chunks, want one before each", len(rec.deadlines), len(rec.readers))
	}
	for i := 1; i < len(rec.deadlines); i++ {
		if rec.deadlines[i].Before(rec.deadlines[i-1]) {
			t.Errorf("deadline %d moved back", i)
		}
	}
	// A Range request (ServeContent's io.LimitedReader over a section)
	// keeps its length.
	rec = &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	req := httptest.NewRequest("GET", "/x.zip", nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=10-%d", 10+3*chunk))
	h.ServeHTTP(rec, req)
	if want := content[10 : 11+3*chunk]; rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Errorf("Range: %d, %d bytes, want 206 with %d", rec.Code, rec.Body.Len(), len(want))
	}
}

func writeTemp(t *testing.T, content []byte) *os.File {
	t.Helper()
	name := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(name, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
