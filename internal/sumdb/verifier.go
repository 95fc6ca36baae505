package sumdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"

	"github.com/modgate/modgate/internal/coord"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/store"
)

// Kind classifies a verification failure.
type Kind int

const (
	// Mismatch: the database records another hash; the file was tampered with.
	Mismatch Kind = iota + 1
	// NotInDB: the database has no record for the version.
	NotInDB
	// Security: the database itself misbehaves (forked or rolled-back log).
	Security
	// Unavailable: the database could not be reached or answered an error.
	Unavailable
)

// VerifyError is why a module file failed verification.
type VerifyError struct {
	Kind    Kind
	DB      string
	Path    string
	Version string // with a "/go.mod" suffix for go.mod hashes
	Got     string // hash of what was downloaded
	Want    []string
	Err     error
}

// maxCauseInError bounds the cause quoted in an error: the x/mod Client
// quotes whole signed notes.
const maxCauseInError = 400

func (e *VerifyError) Error() string {
	switch e.Kind {
	case Mismatch:
		return fmt.Sprintf("SECURITY ERROR: checksum mismatch for %s@%s: file has %s, checksum database %s has %s",
			e.Path, e.Version, e.Got, e.DB, strings.Join(e.Want, ", "))
	case NotInDB:
		return fmt.Sprintf("%s@%s is not in checksum database %s (%s); if it is a private module, ask modgate's operator to list it in --nosumdb", e.Path, e.Version, e.DB, e.cause())
	case Security:
		return fmt.Sprintf("SECURITY ERROR: checksum database %s is misbehaving (%s); verification is stopped until an operator investigates", e.DB, e.cause())
	}
	return fmt.Sprintf("cannot verify %s@%s: checksum database %s: %s", e.Path, e.Version, e.DB, e.cause())
}

// cause is the underlying error as one line without credentials.
func (e *VerifyError) cause() string {
	if e.Err == nil {
		return "unknown cause"
	}
	return redact.Line(e.Err.Error(), maxCauseInError)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Verifier checks module hashes against one checksum database, keeping
// what it verified in storage (see state).
type Verifier struct {
	db     DB
	state  *state
	remote *Remote
	skip   string                 // GONOSUMDB-syntax patterns never checked
	skipFn func(path string) bool // more paths never checked; may be nil
	log    *slog.Logger

	secMu  sync.Mutex
	secMsg string // first security error seen, for /readyz

	// flights runs one database lookup per record at a time, shared by
	// the prefetch and the go.mod and zip verifications of a version, and
	// one move of the tree head at a time (Proxy). Keys are the storage
	// keys the calls fill.
	flights *coord.Group
	bg      background // prefetches running, for Close

	stopCtx     context.Context // ended by Close: stops prefetches
	stop        context.CancelFunc
	prefetching chan struct{} // bounds background lookups
}

// maxPrefetches bounds the lookups Prefetch runs at once; past it, a
// prefetch is simply not started and the verification asks itself.
const maxPrefetches = 16

// opTimeout bounds one lookup, and one storage operation.
const opTimeout = time.Minute

// Config wires a Verifier.
type Config struct {
	DB     DB
	Store  store.Store
	Remote *Remote
	// NoSumDB lists path patterns (GONOSUMDB syntax) that are never checked
	// and whose lookups never leave the process.
	NoSumDB string
	// Skip, if set, reports more paths treated as NoSumDB's (modgate
	// passes --nosumdb and its private routes in one predicate). A path
	// either names is exempt.
	Skip   func(path string) bool
	Logger *slog.Logger
}

// NewVerifier returns a verifier whose tree state and cache live in
// cfg.Store. Close it to stop its background lookups.
func NewVerifier(cfg Config) *Verifier {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	v := &Verifier{
		db:          cfg.DB,
		state:       newState(cfg.DB, cfg.Store),
		remote:      cfg.Remote,
		skip:        cfg.NoSumDB,
		skipFn:      cfg.Skip,
		log:         cfg.Logger,
		prefetching: make(chan struct{}, maxPrefetches),
		flights:     coord.NewGroup(coord.GroupConfig{Timeout: opTimeout, Logger: cfg.Logger}),
	}
	v.stopCtx, v.stop = context.WithCancel(context.Background())
	return v
}

// Close stops the prefetches and waits for the lookups running in the
// background. Verifications after Close still work, without prefetching.
func (v *Verifier) Close() error {
	v.stop()
	v.bg.wait()
	v.flights.Wait() // not Close: verifications after Close still share lookups
	return nil
}

// DB returns the database this verifier checks against.
func (v *Verifier) DB() DB { return v.db }

// Skips reports whether path is exempt from checking (and from lookups).
func (v *Verifier) Skips(path string) bool {
	return module.MatchPrefixPatterns(v.skip, path) || (v.skipFn != nil && v.skipFn(path))
}

// SecurityProblem returns the first security error seen, or "".
func (v *Verifier) SecurityProblem() string {
	v.secMu.Lock()
	defer v.secMu.Unlock()
	return v.secMsg
}

// TreeSize returns the size of the latest tree head stored and verified
// against the database's key (0 before the first lookup), for health
// reports: it grows as the verifier follows the log.
func (v *Verifier) TreeSize(ctx context.Context) (int64, error) {
	t, _, err := v.state.verifiedTree(ctx)
	return t.N, err
}

// Prefetch starts the database lookup for path@version in the background.
// The go.mod and zip of a version share one record, and the go command asks
// for .info or .mod before the zip, so starting the lookup on the first miss
// lets it run while the files download instead of after.
func (v *Verifier) Prefetch(path, version string) {
	if v.Skips(path) || v.SecurityProblem() != "" || v.stopCtx.Err() != nil {
		return
	}
	select {
	case v.prefetching <- struct{}{}:
	default:
		return
	}
	v.bg.start(func() {
		defer func() { <-v.prefetching }()
		v.record(v.stopCtx, path, version) // stored for Verify
	})
}

// Verify checks the h1: hash of path@version's zip, or of its go.mod when
// gomod is set, against the database. Paths matching NoSumDB pass unchecked.
// A caller that gives up (ctx) stops waiting at once.
func (v *Verifier) Verify(ctx context.Context, path, version string, gomod bool, h1 string) error {
	if v.Skips(path) {
		metrics.SumDBVerifications.WithLabelValues("skipped").Inc()
		return nil
	}
	vers := version
	if gomod {
		vers += "/go.mod"
	}
	if msg := v.SecurityProblem(); msg != "" {
		// Even lookups answered from storage: the database that vouched
		// for them has shown it cannot be trusted.
		metrics.SumDBVerifications.WithLabelValues("security_error").Inc()
		return &VerifyError{Kind: Security, DB: v.db.Name, Path: path, Version: vers, Err: errors.New(msg)}
	}
	rec, err := v.record(ctx, path, version)
	if err != nil {
		e := v.verifyError(path, vers, err)
		metrics.SumDBVerifications.WithLabelValues(kindLabel(e)).Inc()
		return e
	}
	lines := rec.lines(path, vers)
	var want []string
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) == 3 {
			if f[2] == h1 {
				metrics.SumDBVerifications.WithLabelValues("ok").Inc()
				return nil
			}
			want = append(want, f[2])
		}
	}
	metrics.SumDBVerifications.WithLabelValues("mismatch").Inc()
	e := &VerifyError{Kind: Mismatch, DB: v.db.Name, Path: path, Version: vers, Got: h1, Want: want}
	v.log.Error("checksum mismatch: refusing module", "module", path, "version", vers, "got", h1, "want", want, "db", v.db.Name)
	return e
}

// Lookup returns the signed lookup answer for path@version, as the
// database's /lookup endpoint serves it: the record, verified, with the
// latest verified tree.
func (v *Verifier) Lookup(ctx context.Context, path, version string) ([]byte, error) {
	if msg := v.SecurityProblem(); msg != "" {
		return nil, &VerifyError{Kind: Security, DB: v.db.Name, Path: path, Version: version, Err: errors.New(msg)}
	}
	if v.Skips(path) {
		return nil, &VerifyError{Kind: NotInDB, DB: v.db.Name, Path: path, Version: version, Err: sumdb.ErrGONOSUMDB}
	}
	rec, err := v.record(ctx, path, version)
	if err != nil {
		return nil, v.verifyError(path, version, err)
	}
	return v.state.answer(ctx, rec), nil
}

// record returns the verified record of path@version: from storage, where
// only verified lookups are written, else from the database through a
// lookup shared with whoever else is asking for it now.
func (v *Verifier) record(ctx context.Context, path, version string) (*record, error) {
	raw, err := v.state.lookup(ctx, path, version)
	if err == nil {
		if rec, err := parseRecord(raw); err == nil {
			return rec, nil
		}
		v.log.Warn("stored checksum database lookup is unreadable; asking the database again", "module", path, "version", version)
	}
	if err := ctx.Err(); err != nil {
		return nil, &lookupError{Unavailable, err}
	}
	file, err := v.state.lookupFile(path, version)
	if err != nil {
		return nil, &lookupError{NotInDB, err}
	}
	return coord.Shared(ctx, v.flights, v.state.key(file), func(ctx context.Context) (*record, error) {
		return v.fetch(ctx, path, version, file)
	})
}

// lookupError is a failed lookup, classified once for every caller that
// shared it.
type lookupError struct {
	kind Kind
	err  error
}

func (e *lookupError) Error() string { return e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }

func (v *Verifier) verifyError(path, vers string, err error) *VerifyError {
	e := &VerifyError{Kind: Unavailable, DB: v.db.Name, Path: path, Version: vers, Err: err}
	var le *lookupError
	if errors.As(err, &le) {
		e.Kind, e.Err = le.kind, le.err
	}
	return e
}

// fetch runs one lookup, whose answer is stored as file, with its own x/mod
// Client (see lookupOps).
func (v *Verifier) fetch(ctx context.Context, path, version, file string) (*record, error) {
	ops := newLookupOps(ctx, v, file)
	c := sumdb.NewClient(ops)
	c.SetGONOSUMDB(v.skip)
	_, err := c.Lookup(path, version)
	ops.finish(err == nil)
	ops.mu.Lock()
	answer, notFound := ops.answer, ops.notFound
	ops.mu.Unlock()
	if err != nil {
		switch {
		case v.SecurityProblem() != "":
			return nil, &lookupError{Security, err}
		case notFound:
			return nil, &lookupError{NotInDB, err}
		}
		return nil, &lookupError{Unavailable, err}
	}
	rec, err := parseRecord(answer)
	if err != nil { // the Client has parsed it already
		return nil, &lookupError{Unavailable, fmt.Errorf("verified lookup answer unreadable: %v", err)}
	}
	return rec, nil
}

func kindLabel(err error) string {
	var e *VerifyError
	if errors.As(err, &e) {
		switch e.Kind {
		case NotInDB:
			return "not_in_db"
		case Security:
			return "security_error"
		}
	}
	return "unavailable"
}

func (v *Verifier) securityError(msg string) {
	v.secMu.Lock()
	if v.secMsg == "" {
		v.secMsg = strings.Join(strings.Fields(msg), " ")
	}
	v.secMu.Unlock()
	metrics.SumDBSecurityErrors.Inc()
	v.log.Error("CHECKSUM DATABASE SECURITY ERROR: the database presented a tree inconsistent with the one stored; "+
		"verification refuses every module until an operator investigates", "db", v.db.Name, "detail", msg)
}

// background counts goroutines so that Close can wait for them.
type background struct {
	mu   sync.Mutex
	n    int
	idle *sync.Cond
}

func (b *background) start(fn func()) {
	b.mu.Lock()
	if b.idle == nil {
		b.idle = sync.NewCond(&b.mu)
	}
	b.n++
	b.mu.Unlock()
	go func() {
		defer func() {
			b.mu.Lock()
			b.n--
			if b.n == 0 {
				b.idle.Broadcast()
			}
			b.mu.Unlock()
		}()
		fn()
	}()
}

func (b *background) wait() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.n > 0 {
		b.idle.Wait()
	}
}
