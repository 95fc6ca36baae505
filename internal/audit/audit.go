// Package audit keeps the audit log: one JSON line per module download and
// per refused request, saying who (principal, client address) got or was
// refused what (module, version, file), from where (cache, upstream, git),
// with which hash and under which policy decision.
//
// The log is a plain file, appended to and rotated by size, that operators
// can ship with any log collector and that modgate itself can search
// (Query, Handler). Wrap is the protocol.Modules wrapper that writes the
// events; it sits outside authorization and policy, so that it sees their
// refusals.
//
// An event is written (one write system call, under a mutex) before the
// answer it records is handed to the HTTP layer, so before the response
// completes. When it cannot be written the download is still served: the
// event is counted in modgate_audit_dropped_total and written to the
// process log instead, so that the record survives a full disk.
package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/modgate/modgate/internal/metrics"
)

// Event is one line of the audit log. Every key is always present, empty
// when it does not apply (source, h1 and bytes of a refusal), so that
// consumers see one schema.
type Event struct {
	// Time is when the event was written, UTC.
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	// Principal is the name of the token the request came with, or
	// "anonymous": without a token, and for every request when
	// authentication is off. Never a credential.
	Principal string `json:"principal"`
	// Client is the connection's remote address.
	Client  string `json:"client"`
	Module  string `json:"module"`
	Version string `json:"version"`
	// File is what was asked: "info", "mod", "zip", "list" or "latest".
	File string `json:"file"`
	// Source is where a served answer came from: "cache", "upstream" or
	// "git"; "" for a refusal.
	Source string `json:"source"`
	// H1 is the go.sum hash of a served go.mod or zip, "" for .info files
	// and when it could not be had in time (see Wrap).
	H1    string `json:"h1"`
	Bytes int64  `json:"bytes"`
	// Decision is "allow", "deny" or "would-deny" (a dry-run policy).
	Decision string `json:"decision"`
	// Rule is the policy rule that denied or would have denied ("deny",
	// "allow", "min-age", "vuln", "retracted"), or "token" for a token not
	// allowed to read the module; "" when allowed.
	Rule string `json:"rule"`
}

// Decisions.
const (
	Allow     = "allow"
	Deny      = "deny"
	WouldDeny = "would-deny"
)

// Config configures a Log.
type Config struct {
	// MaxSize is the size in bytes past which the file is rotated (default
	// 100 MiB).
	MaxSize int64
	// MaxFiles is how many rotated files are kept: path.1 (the newest) to
	// path.MaxFiles (default 10).
	MaxFiles int
	// Logger gets write and rotation failures, and the events that could
	// not be written.
	Logger *slog.Logger
}

const (
	defaultMaxSize  = 100 << 20
	defaultMaxFiles = 10
)

// Stdout is the path that writes the log to standard output: no rotation,
// no queries.
const Stdout = "-"

// ErrNotQueryable is Query's answer for a log written to standard output.
var ErrNotQueryable = errors.New("the audit log is written to standard output and cannot be queried")

var errClosed = errors.New("audit log closed")

// Log is an append-only audit log file, rotated by size. Its methods are
// safe for concurrent use.
type Log struct {
	path string
	cfg  Config
	log  *slog.Logger

	mu      sync.Mutex
	f       *os.File // nil when closed, or when reopening failed
	stdout  bool
	closed  bool
	size    int64 // bytes in the current file
	partial bool  // the last write stopped mid-line: start the next with '\n'
	buf     bytes.Buffer
	enc     *json.Encoder
	// failing is set from a failed write to the next good one, so that a
	// run of failures is announced once and its end too.
	failing bool
	dropped int64 // during the current run of failures
}

// Open opens (creating it if needed, mode 0600) the audit log at path, or
// standard output for "-".
func Open(path string, cfg Config) (*Log, error) {
	if cfg.MaxSize < 0 || cfg.MaxFiles < 0 {
		return nil, fmt.Errorf("audit log: negative size (%d) or file count (%d)", cfg.MaxSize, cfg.MaxFiles)
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = defaultMaxSize
	}
	if cfg.MaxFiles == 0 {
		cfg.MaxFiles = defaultMaxFiles
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{path: path, cfg: cfg, log: cfg.Logger}
	l.enc = json.NewEncoder(&l.buf)
	l.enc.SetEscapeHTML(false)
	if path == Stdout {
		l.f, l.stdout = os.Stdout, true
		return l, nil
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

// open opens l.path for appending. A last line without its newline is
// what a crash in the middle of a write leaves: it is ended, so that the
// next event starts a line of its own (readers skip the broken one).
func (l *Log) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	l.f, l.size, l.partial = f, fi.Size(), false
	if fi.Mode().IsRegular() && l.size > 0 {
		last := make([]byte, 1)
		r, err := os.Open(l.path)
		if err == nil {
			_, err = r.ReadAt(last, l.size-1)
			r.Close()
		}
		if err != nil {
			f.Close()
			l.f = nil
			return fmt.Errorf("audit log: %w", err)
		}
		l.partial = last[0] != '\n'
	}
	return nil
}

// Write appends e to the log as one line. A zero e.Time is set to now:
// stamped under the log's lock, the events Wrap writes are in time order
// in the file, which Query relies on to stop early. An event that cannot
// be written is counted as dropped and written to the process log; the
// error says why.
func (l *Log) Write(e Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	// The buffer starts with a newline, written only to end a broken
	// line (l.partial), so that the event still takes one write.
	l.buf.Reset()
	l.buf.WriteByte('\n')
	if err := l.enc.Encode(e); err != nil { // adds the '\n'
		return l.drop(e, err)
	}
	switch {
	case l.closed:
		return l.drop(e, errClosed)
	case l.stdout:
	case l.f == nil:
		// The last rotation could not reopen the file: try again.
		if err := l.open(); err != nil {
			return l.drop(e, err)
		}
		fallthrough
	default:
		if l.size > 0 && l.size+int64(l.buf.Len()-1) > l.cfg.MaxSize {
			if err := l.rotate(); err != nil {
				return l.drop(e, err)
			}
		}
	}
	line := l.buf.Bytes()
	if !l.partial {
		line = line[1:]
	}
	n, err := l.f.Write(line)
	l.size += int64(n)
	if err != nil {
		l.partial = l.partial || n > 0
		return l.drop(e, fmt.Errorf("audit log: %w", err))
	}
	l.partial = false
	switch e.Decision {
	case Allow, Deny, WouldDeny:
		metrics.AuditEvents.WithLabelValues(e.Decision).Inc()
	default: // bounded label values whatever callers write
		metrics.AuditEvents.WithLabelValues("other").Inc()
	}
	if l.failing {
		l.failing = false
		l.log.Warn("audit log: writing events again", "path", l.path, "dropped", l.dropped)
		l.dropped = 0
	}
	return nil
}

// drop counts e as dropped and keeps it in the process log. Called with
// l.mu held.
func (l *Log) drop(e Event, err error) error {
	metrics.AuditDropped.Inc()
	l.dropped++
	if !l.failing {
		l.failing = true
		l.log.Error("audit log: cannot write events; logging them here and counting them in modgate_audit_dropped_total", "path", l.path, "err", err)
	}
	l.log.Error("audit event not written to the audit log",
		"time", e.Time, "request_id", e.RequestID, "principal", e.Principal, "client", e.Client,
		"module", e.Module, "version", e.Version, "file", e.File, "source", e.Source,
		"h1", e.H1, "bytes", e.Bytes, "decision", e.Decision, "rule", e.Rule)
	return err
}

// rotated returns the name of the i-th rotated file (0: the current one).
func (l *Log) rotated(i int) string {
	if i == 0 {
		return l.path
	}
	return l.path + "." + strconv.Itoa(i)
}

// rotate makes the current file path.1, shifting the older ones up and
// deleting the one past MaxFiles, and opens a new current file. The full
// file is synced before it is renamed, and the directory after: a crash
// may lose the last unsynced lines of the current file, never a rotated
// one. A crash midway through the renames leaves a gap in the numbers,
// which readers skip. Called with l.mu held.
func (l *Log) rotate() error {
	if err := l.f.Sync(); err != nil {
		l.log.Warn("audit log: sync before rotation failed", "path", l.path, "err", err)
	}
	l.f.Close()
	l.f = nil
	err := os.Remove(l.rotated(l.cfg.MaxFiles))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	for i := l.cfg.MaxFiles - 1; i >= 0 && err == nil; i-- {
		err = os.Rename(l.rotated(i), l.rotated(i+1))
		if errors.Is(err, os.ErrNotExist) && i > 0 {
			err = nil
		}
	}
	if err == nil {
		syncDir(filepath.Dir(l.path))
	} else {
		l.log.Error("audit log: rotation failed; appending to the current file", "path", l.path, "err", err)
	}
	if oerr := l.open(); oerr != nil {
		return oerr
	}
	if err != nil {
		// Try again only after another MaxSize bytes, rather than on
		// every event while the cause lasts.
		l.size = 0
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Close syncs and closes the file; later writes are dropped. Closing a
// nil Log does nothing.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.stdout || l.f == nil {
		return nil
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// lineReader reads the lines of an audit file, at most maxLine bytes
// each; longer ones (not written by this package) are skipped whole.
type lineReader struct {
	r *bufio.Reader
}

const maxLine = 64 << 10

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, maxLine)}
}

// next returns the next line without its newline, valid until the next
// call; io.EOF at the end. A last line without a newline (a crash's
// partial write) is returned too: it fails to parse.
func (lr *lineReader) next() ([]byte, error) {
	skipping := false
	for {
		line, err := lr.r.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			skipping = true
			continue
		case skipping:
			if err != nil {
				return nil, err
			}
			skipping = false
			continue
		case err == io.EOF && len(line) > 0:
			return line, nil
		case err != nil:
			return nil, err
		}
		return line[:len(line)-1], nil
	}
}
