package sumdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"

	"github.com/modgate/modgate/internal/metrics"
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

func (e *VerifyError) Error() string {
	switch e.Kind {
	case Mismatch:
		return fmt.Sprintf("SECURITY ERROR: checksum mismatch for %s@%s: file has %s, checksum database %s has %s",
			e.Path, e.Version, e.Got, e.DB, strings.Join(e.Want, ", "))
	case NotInDB:
		return fmt.Sprintf("%s@%s is not in checksum database %s (%v); if it is a private module, ask modgate's operator to list it in --nosumdb", e.Path, e.Version, e.DB, e.Err)
	case Security:
		return fmt.Sprintf("SECURITY ERROR: checksum database %s is misbehaving (%v); verification is stopped until an operator investigates", e.DB, e.Err)
	}
	return fmt.Sprintf("cannot verify %s@%s: checksum database %s: %v", e.Path, e.Version, e.DB, e.Err)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Verifier checks module hashes against one checksum database.
type Verifier struct {
	db     DB
	ops    *clientOps
	skip   string // GONOSUMDB-syntax patterns never checked
	log    *slog.Logger
	client atomic.Pointer[sumdb.Client]

	secMu  sync.Mutex
	secMsg string // first security error seen, for /readyz

	prefetching chan struct{} // bounds background lookups
}

// maxPrefetches bounds the lookups Prefetch runs at once; past it, a
// prefetch is simply not started and the verification asks itself.
const maxPrefetches = 16

// Prefetch starts the database lookup for path@version in the background.
// The go.mod and zip of a version share one record, and the go command asks
// for .info or .mod before the zip, so starting the lookup on the first miss
// lets it run while the files download instead of after.
func (v *Verifier) Prefetch(path, version string) {
	if v.Skips(path) || v.SecurityProblem() != "" {
		return
	}
	select {
	case v.prefetching <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-v.prefetching }()
		v.lookup(path, version) // the client keeps the answer for Verify
	}()
}

// Config wires a Verifier.
type Config struct {
	DB     DB
	Store  store.Store
	Remote *Remote
	// NoSumDB lists path patterns (GONOSUMDB syntax) that are never checked
	// and whose lookups never leave the process.
	NoSumDB string
	Logger  *slog.Logger
}

// NewVerifier returns a verifier whose tree state and cache live in cfg.Store.
func NewVerifier(cfg Config) *Verifier {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	v := &Verifier{db: cfg.DB, skip: cfg.NoSumDB, log: cfg.Logger, prefetching: make(chan struct{}, maxPrefetches)}
	v.ops = &clientOps{db: cfg.DB, store: cfg.Store, remote: cfg.Remote, v: v}
	v.client.Store(v.newClient())
	return v
}

func (v *Verifier) newClient() *sumdb.Client {
	c := sumdb.NewClient(v.ops)
	c.SetGONOSUMDB(v.skip)
	return c
}

// DB returns the database this verifier checks against.
func (v *Verifier) DB() DB { return v.db }

// Skips reports whether path is exempt from checking (and from lookups).
func (v *Verifier) Skips(path string) bool {
	return module.MatchPrefixPatterns(v.skip, path)
}

// SecurityProblem returns the first security error seen, or "".
func (v *Verifier) SecurityProblem() string {
	v.secMu.Lock()
	defer v.secMu.Unlock()
	return v.secMsg
}

// Verify checks the h1: hash of path@version's zip, or of its go.mod when
// gomod is set, against the database. Paths matching NoSumDB pass unchecked.
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
		// Even lookups answered from the cache: the database that vouched
		// for them has shown it cannot be trusted.
		metrics.SumDBVerifications.WithLabelValues("security_error").Inc()
		return &VerifyError{Kind: Security, DB: v.db.Name, Path: path, Version: vers, Err: errors.New(msg)}
	}
	lines, err := v.lookup(path, vers)
	if err != nil {
		metrics.SumDBVerifications.WithLabelValues(kindLabel(err)).Inc()
		return err
	}
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

// Lookup returns the raw signed lookup answer for path@version, verified
// against the tree, as the database's /lookup endpoint serves it.
func (v *Verifier) Lookup(ctx context.Context, path, version string) ([]byte, error) {
	if _, err := v.lookup(path, version); err != nil {
		return nil, err
	}
	file, err := v.ops.lookupFile(path, version)
	if err != nil {
		return nil, err
	}
	return v.ops.ReadCache(file)
}

// lookup runs the sumdb client's Lookup and classifies its failures. The
// client remembers failures for the life of the client (it was written for
// the short-lived go command), so after a failure that is not a verdict the
// client is replaced: its state lives in storage and is reloaded.
func (v *Verifier) lookup(path, vers string) ([]string, error) {
	c := v.client.Load()
	lines, err := c.Lookup(path, vers)
	if err == nil {
		v.ops.flushTiles()
		return lines, nil
	}
	v.ops.dropTiles()
	v.client.CompareAndSwap(c, v.newClient())
	base := strings.TrimSuffix(vers, "/go.mod")
	e := &VerifyError{DB: v.db.Name, Path: path, Version: vers, Err: err}
	switch {
	case v.SecurityProblem() != "":
		e.Kind = Security
	case v.ops.wasNotFound(path, base):
		e.Kind = NotInDB
	default:
		e.Kind = Unavailable
	}
	return nil, e
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

// clientOps implements sumdb.ClientOps over modgate's storage:
//
//	sumdb/<name>/latest                the latest verified signed tree head
//	sumdb/<name>/lookup/<path>@<ver>   verified lookup answers
//	sumdb/<name>/tile/...              verified tiles
type clientOps struct {
	db     DB
	store  store.Store
	remote *Remote
	v      *Verifier

	cfgMu    sync.Mutex // serializes WriteConfig's compare-and-swap in this process
	notFound sync.Map   // remote lookup paths last answered "not found"

	// The client saves tiles as soon as they match the tree it is checking,
	// which may be a forked tree it rejects a moment later. Tiles are
	// therefore held here until a lookup succeeds, and dropped when one
	// fails, so that storage only ever holds tiles of an accepted tree.
	pendingMu sync.Mutex
	pending   map[string][]byte
}

func (o *clientOps) flushTiles() {
	o.pendingMu.Lock()
	tiles := o.pending
	o.pending = nil
	o.pendingMu.Unlock()
	for file, data := range tiles {
		o.put(file, data)
	}
}

func (o *clientOps) dropTiles() {
	o.pendingMu.Lock()
	o.pending = nil
	o.pendingMu.Unlock()
}

const opTimeout = time.Minute

func (o *clientOps) ReadRemote(path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	data, err := o.remote.Get(ctx, path)
	if errors.Is(err, ErrNotFound) {
		o.notFound.Store(path, true)
	} else {
		o.notFound.Delete(path)
	}
	return data, err
}

func (o *clientOps) wasNotFound(path, version string) bool {
	file, err := o.lookupFile(path, version)
	if err != nil {
		return false
	}
	_, ok := o.notFound.Load(strings.TrimPrefix(file, o.db.Name))
	return ok
}

// lookupFile is the client's cache file name for a lookup.
func (o *clientOps) lookupFile(path, version string) (string, error) {
	ep, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		return "", err
	}
	return o.db.Name + "/lookup/" + ep + "@" + ev, nil
}

func (o *clientOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.db.Key), nil
	}
	data, err := o.read("sumdb/" + file)
	if errors.Is(err, store.ErrNotExist) {
		return []byte{}, nil // start from an empty tree
	}
	return data, err
}

func (o *clientOps) WriteConfig(file string, old, new []byte) error {
	if file == "key" {
		return errors.New("the key is never written")
	}
	o.cfgMu.Lock()
	defer o.cfgMu.Unlock()
	cur, err := o.ReadConfig(file)
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, old) {
		return sumdb.ErrWriteConflict
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return o.store.Put(ctx, "sumdb/"+file, bytes.NewReader(new))
}

func (o *clientOps) ReadCache(file string) ([]byte, error) {
	o.pendingMu.Lock()
	data, ok := o.pending[file]
	o.pendingMu.Unlock()
	if ok {
		return data, nil
	}
	return o.read("sumdb/" + file)
}

func (o *clientOps) WriteCache(file string, data []byte) {
	if strings.HasPrefix(file, o.db.Name+"/tile/") {
		o.pendingMu.Lock()
		if o.pending == nil {
			o.pending = map[string][]byte{}
		}
		o.pending[file] = data
		o.pendingMu.Unlock()
		return
	}
	// Lookups are written only after the client checked them against an
	// accepted tree.
	o.put(file, data)
}

func (o *clientOps) put(file string, data []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := o.store.Put(ctx, "sumdb/"+file, bytes.NewReader(data)); err != nil {
		o.v.log.Warn("cannot cache checksum database file", "file", file, "err", err)
	}
}

func (o *clientOps) Log(msg string) { o.v.log.Debug("sumdb client", "msg", msg) }

func (o *clientOps) SecurityError(msg string) { o.v.securityError(msg) }

func (o *clientOps) read(key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	rc, _, err := o.store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxRemoteSize))
}
