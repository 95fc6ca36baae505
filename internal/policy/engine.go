// Package policy is modgate's download policy: which module versions may
// be served, from a YAML file (--policy) of allow and deny rules, a minimum
// release age, and the advisories of a Go vulnerability database (package
// vulndb). Engine decides; Wrap applies its decisions to every request of
// the module proxy protocol, answers from the cache included.
package policy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/vulndb"
)

const (
	maxFile      = 4 << 20 // a policy file of thousands of rules is far smaller
	pollInterval = time.Second
	openTimeout  = 5 * time.Minute // reading a vulnerability database at load
)

// Config configures New.
type Config struct {
	// File is the policy file.
	File string
	// DryRun makes Wrap serve what the policy blocks, recording
	// "would-deny" and logging it.
	DryRun bool
	Logger *slog.Logger
	// Client fetches a vulnerability database given by URL.
	Client *http.Client
	// Now is the clock of min-age; nil means time.Now.
	Now func() time.Time
	// VulnRefresh is how often a vulnerability database given by URL is
	// checked for updates; 0 means an hour.
	VulnRefresh time.Duration
}

// Engine holds the current policy and re-reads its file when it changes.
type Engine struct {
	cfg       Config
	log       *slog.Logger
	cur       atomic.Pointer[policy]
	mu        sync.Mutex // serializes loads; guards the fields below
	data      []byte     // the file as last loaded
	bad       []byte     // the file as last rejected, to log a rejection once
	rejectErr error
	stat      fileStamp
	stop      context.CancelFunc
	done      chan struct{}
	once      sync.Once
	// blocked counts refusals and keeps the last ones (view.go).
	blocked *blockLog
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

// New loads the policy file (and the vulnerability database it names) and
// watches the file: a changed file applies within about a second; a bad
// one is rejected in the log, naming its line, and the policy before stays.
func New(cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{cfg: cfg, log: cfg.Logger.With("policy", cfg.File), blocked: newBlockLog(cfg.Now())}
	if _, err := e.load(true); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	e.stop, e.done = stop, make(chan struct{})
	go e.watch(ctx)
	return e, nil
}

// Close stops watching the file and the vulnerability database's refresh.
func (e *Engine) Close() {
	e.once.Do(func() {
		e.stop()
		<-e.done
		if db := e.cur.Load().db; db != nil {
			db.Close()
		}
	})
}

// DryRun reports whether the engine only records what it would deny.
func (e *Engine) DryRun() bool { return e.cfg.DryRun }

// Decide applies the current policy to version of module, published at t
// (zero when unknown: the minimum age then holds nothing back).
func (e *Engine) Decide(module, version string, t time.Time) Verdict {
	return e.cur.Load().decide(module, version, t, e.cfg.Now())
}

// Reload reads the policy file now and applies it if its content changed.
// An invalid file is rejected with an error naming its line, and the
// policy before stays.
func (e *Engine) Reload() error {
	_, err := e.load(false)
	return err
}

func (e *Engine) watch(ctx context.Context) {
	defer close(e.done)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(e.cfg.File)
		if err != nil {
			continue // being replaced, or gone: keep the policy, try again
		}
		st := fileStamp{fi.Size(), fi.ModTime()}
		e.mu.Lock()
		same := st == e.stat
		e.mu.Unlock()
		// A file rewritten within the file system's timestamp granularity
		// may keep its stamp: while the stamp is recent, compare contents.
		if same && time.Since(st.modTime) > 2*pollInterval {
			continue
		}
		e.load(false) // logs what it does
	}
}

// load reads the file and applies it when it changed (always, first).
func (e *Engine) load(first bool) (changed bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	data, st, err := readFile(e.cfg.File)
	if err != nil {
		if !first {
			e.log.Error("policy file unreadable; keeping the policy loaded before", "err", err)
		}
		return false, err
	}
	e.stat = st
	if !first && bytes.Equal(data, e.data) {
		return false, nil
	}
	if !first && bytes.Equal(data, e.bad) {
		return false, e.rejectErr
	}
	p, err := e.build(data)
	if err != nil {
		if !first {
			e.bad, e.rejectErr = data, err
			e.log.Error("policy file rejected; keeping the policy loaded before", "err", err)
		}
		return false, err
	}
	old := e.cur.Swap(p)
	if old != nil && old.db != nil && old.db != p.db {
		old.db.Close()
	}
	e.data, e.bad = data, nil
	e.log.Info("policy loaded", "allow", p.allowN, "deny", len(p.denyRules), "min-age", len(p.ageRules),
		"waive", len(p.waivers), "vulndb", redact.URL(p.vulndb), "dry_run", e.cfg.DryRun)
	return true, nil
}

// build parses data and attaches its vulnerability database: the one
// already open when the file names the same, else a new one.
func (e *Engine) build(data []byte) (*policy, error) {
	p, err := parse(e.cfg.File, data)
	if err != nil {
		return nil, err
	}
	if p.vulndb == "" {
		return p, nil
	}
	src := p.vulndb
	if !strings.Contains(src, "://") && !filepath.IsAbs(src) {
		// Relative to the policy file, so that the two can travel together.
		src = filepath.Join(filepath.Dir(e.cfg.File), src)
	}
	if old := e.cur.Load(); old != nil && old.vulndb == p.vulndb && old.db != nil {
		p.db = old.db
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	db, err := vulndb.Open(ctx, src, vulndb.Config{Client: e.cfg.Client, Refresh: e.cfg.VulnRefresh, Logger: e.cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("policy file %s: vulndb: %w", e.cfg.File, err)
	}
	p.db = db
	return p, nil
}

func readFile(name string) ([]byte, fileStamp, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("policy file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("policy file: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("policy file: %w", err)
	}
	if len(data) > maxFile {
		return nil, fileStamp{}, fmt.Errorf("policy file %s: larger than %d bytes", name, maxFile)
	}
	return data, fileStamp{fi.Size(), fi.ModTime()}, nil
}
