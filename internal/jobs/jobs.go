// Package jobs runs long operations of the admin API (prefetch) in the
// background and says how they are doing: a Registry starts a job, counts
// its progress, keeps the first errors, and stores its Status at
// jobs/<id>.json in modgate's store, so that another replica, or this one
// after a restart, answers GET /admin/v1/jobs/<id> too.
//
// A job's record is written when it starts, at most every SaveEvery while
// it changes, at least every StaleAfter/4 while it runs (a heartbeat), and
// when it ends. A record still saying running whose heartbeat is older
// than StaleAfter belongs to a process that died: it reads as failed,
// interrupted. Records are pruned after KeepFor, and beyond KeepAtMost,
// oldest first.
package jobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/store"
)

// State is where a job is: running, or ended (done or failed).
type State string

const (
	// Running: the job is under way.
	Running State = "running"
	// Done: the job went through all its work. Items of it may have
	// failed (Status.Failed, Status.Errors).
	Done State = "done"
	// Failed: the job could not do its work (Status.Error says why):
	// its input was unusable, or it was interrupted.
	Failed State = "failed"
)

// Status is a job as GET /admin/v1/jobs/<id> answers it and as its record
// stores it.
type Status struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"` // what the job does: "prefetch"
	State State  `json:"state"`
	// Phase says what a running job is at, in words ("resolving the
	// module graph").
	Phase string `json:"phase,omitempty"`
	// Total is the number of items the job has to do, as far as it knows
	// yet; each ends Done, Failed or Skipped.
	Total   int64 `json:"total"`
	Done    int64 `json:"done"`
	Failed  int64 `json:"failed"`
	Skipped int64 `json:"skipped"`
	// Errors are the first MaxErrors failures, one line each, without
	// credentials; MoreErrors counts those left out.
	Errors     []string `json:"errors"`
	MoreErrors int64    `json:"more_errors,omitempty"`
	// Error is why a failed job failed.
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Updated is when the record was last written: the heartbeat of a
	// running job.
	Updated time.Time `json:"updated"`
}

// MaxErrors is how many item errors a Status keeps.
const MaxErrors = 100

// maxErrorLen bounds one error line.
const maxErrorLen = 400

// maxRecord bounds a record read back from the store.
const maxRecord = 1 << 20

var (
	// ErrBusy refuses a job while MaxRunning run in this process.
	ErrBusy = errors.New("too many jobs running")
	// ErrNotFound answers an id with no job.
	ErrNotFound = errors.New("no such job")
	// ErrClosed refuses a job after Close.
	ErrClosed = errors.New("jobs are shutting down")
)

// Config sets up a Registry. Store is required; zero values elsewhere
// take the defaults.
type Config struct {
	Store  store.Store
	Logger *slog.Logger
	Now    func() time.Time
	// MaxRunning is how many jobs this process runs at once (default 4).
	MaxRunning int
	// KeepFor is how long an ended job's record stays (default 7 days);
	// KeepAtMost how many records stay at most (default 1000).
	KeepFor    time.Duration
	KeepAtMost int
	// SaveEvery throttles the writes of a running job's record (default
	// 2s); StaleAfter is how old the heartbeat of a running job's record
	// may be before it reads as interrupted (default 1 minute).
	SaveEvery  time.Duration
	StaleAfter time.Duration
}

// Registry runs jobs and answers their status.
type Registry struct {
	cfg    Config
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	running   map[string]*job
	closed    bool
	lastPrune time.Time
}

// New returns a Registry storing its records in cfg.Store.
func New(cfg Config) *Registry {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxRunning <= 0 {
		cfg.MaxRunning = 4
	}
	if cfg.KeepFor <= 0 {
		cfg.KeepFor = 7 * 24 * time.Hour
	}
	if cfg.KeepAtMost <= 0 {
		cfg.KeepAtMost = 1000
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = 2 * time.Second
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{cfg: cfg, ctx: ctx, cancel: cancel, running: map[string]*job{}}
}

// Func is a job's work. It reports through p and returns nil when it went
// through its work (items may have failed), or why it could not. ctx ends
// when the Registry closes; it carries nothing of the request that
// started the job.
type Func func(ctx context.Context, p *Progress) error

// Start records a new job of kind and runs run in the background. It
// returns the job's first Status, ErrBusy when MaxRunning jobs run
// already, ErrClosed after Close, or the store's error when the record
// cannot be written.
func (r *Registry) Start(ctx context.Context, kind string, run Func) (Status, error) {
	id, err := newID()
	if err != nil {
		return Status{}, err
	}
	now := r.cfg.Now()
	j := &job{st: Status{ID: id, Kind: kind, State: Running, Errors: []string{}, Started: now, Updated: now}}

	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return Status{}, ErrClosed
	case len(r.running) >= r.cfg.MaxRunning:
		r.mu.Unlock()
		return Status{}, ErrBusy
	}
	r.running[id] = j
	r.wg.Add(1)
	r.mu.Unlock()

	st := j.snapshot()
	if err := r.save(ctx, st); err != nil {
		r.mu.Lock()
		delete(r.running, id)
		r.mu.Unlock()
		r.wg.Done()
		return Status{}, fmt.Errorf("recording the job: %w", err)
	}
	j.saved = st.Updated
	go r.run(j, run)
	return st, nil
}

// run runs a job's work, its heartbeat, and its end.
func (r *Registry) run(j *job, run Func) {
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()

	beat := make(chan struct{})
	go func() {
		defer close(beat)
		r.heartbeat(ctx, j)
	}()

	err := safely(ctx, run, &Progress{j: j})
	cancel()
	<-beat

	j.mu.Lock()
	now := r.cfg.Now()
	j.st.Finished, j.st.Updated, j.st.Phase = now, now, ""
	switch {
	case err == nil:
		j.st.State = Done
	case r.ctx.Err() != nil && errors.Is(err, context.Canceled):
		j.st.State, j.st.Error = Failed, "interrupted: modgate shut down"
	default:
		j.st.State, j.st.Error = Failed, oneLine(err.Error())
	}
	st := j.snapshotLocked()
	j.mu.Unlock()

	// The final record must be written even though r.ctx may be over.
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := r.save(sctx, st); err != nil {
		r.cfg.Logger.Error("jobs: the end of a job could not be recorded", "job", st.ID, "err", err)
	}
	r.cfg.Logger.Info("job ended", "job", st.ID, "kind", st.Kind, "state", st.State, "total", st.Total,
		"done", st.Done, "failed", st.Failed, "skipped", st.Skipped, "error", st.Error)

	r.mu.Lock()
	delete(r.running, st.ID)
	prune := now.Sub(r.lastPrune) >= time.Hour
	if prune {
		r.lastPrune = now
	}
	r.mu.Unlock()
	if prune {
		if err := r.prune(sctx); err != nil {
			r.cfg.Logger.Warn("jobs: pruning old job records failed", "err", err)
		}
	}
}

// safely runs run, turning a panic into the job's error.
func safely(ctx context.Context, run Func, p *Progress) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("internal error: %v", v)
		}
	}()
	return run(ctx, p)
}

// heartbeat writes the record of a running job while ctx lasts: when it
// changed and SaveEvery has passed since the last write, or when the
// last write is StaleAfter/4 old.
func (r *Registry) heartbeat(ctx context.Context, j *job) {
	t := time.NewTicker(r.cfg.SaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := r.cfg.Now()
		j.mu.Lock()
		due := j.changed || now.Sub(j.saved) >= r.cfg.StaleAfter/4
		if due {
			j.st.Updated = now
		}
		st := j.snapshotLocked()
		j.changed = false
		j.mu.Unlock()
		if !due {
			continue
		}
		if err := r.save(ctx, st); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("jobs: recording progress failed", "job", st.ID, "err", err)
			continue
		}
		j.mu.Lock()
		j.saved = now
		j.mu.Unlock()
	}
}

// Get returns the status of job id: from memory if it runs here, else
// from its record, where a running job whose heartbeat stopped reads as
// failed. ErrNotFound when there is no such job.
func (r *Registry) Get(ctx context.Context, id string) (Status, error) {
	if !validID(id) {
		return Status{}, ErrNotFound
	}
	r.mu.Lock()
	j := r.running[id]
	r.mu.Unlock()
	if j != nil {
		return j.snapshot(), nil
	}
	st, err := r.load(ctx, id)
	if err != nil {
		return Status{}, err
	}
	if st.Errors == nil {
		st.Errors = []string{}
	}
	if st.State == Running && r.cfg.Now().Sub(st.Updated) > r.cfg.StaleAfter {
		st.State = Failed
		st.Error = "interrupted: the modgate running it stopped (no progress recorded since " + st.Updated.UTC().Format(time.RFC3339) + ")"
	}
	return st, nil
}

// load reads job id's record.
func (r *Registry) load(ctx context.Context, id string) (Status, error) {
	data, _, err := store.ReadAll(ctx, r.cfg.Store, recordKey(id), maxRecord)
	switch {
	case errors.Is(err, store.ErrNotExist):
		return Status{}, ErrNotFound
	case errors.Is(err, store.ErrTooLarge):
		return Status{}, fmt.Errorf("job record %s is damaged", id)
	case err != nil:
		return Status{}, err
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil || st.ID != id {
		return Status{}, fmt.Errorf("job record %s is damaged", id)
	}
	return st, nil
}

// Close cancels the running jobs and waits for them to record their end
// (failed, interrupted). Start fails afterwards.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

func (r *Registry) save(ctx context.Context, st Status) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return store.PutSized(ctx, r.cfg.Store, recordKey(st.ID), bytes.NewReader(data), int64(len(data)))
}

// prune removes the records of jobs not updated for KeepFor, and the
// oldest beyond KeepAtMost, never one running here. It goes by each
// record's own Updated time, which the Registry's clock wrote; a record
// it cannot read goes by the store's modification time.
func (r *Registry) prune(ctx context.Context) error {
	type rec struct {
		id      string
		updated time.Time
	}
	var recs []rec
	err := store.ListInfo(ctx, r.cfg.Store, recordPrefix, func(key string, info store.Info) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(key, recordPrefix), ".json")
		if ok && validID(id) {
			recs = append(recs, rec{id, info.ModTime})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range recs {
		if st, err := r.load(ctx, recs[i].id); err == nil {
			recs[i].updated = st.Updated
		}
	}
	sort.Slice(recs, func(i, k int) bool { return recs[i].updated.After(recs[k].updated) }) // newest first
	now := r.cfg.Now()
	for i, rc := range recs {
		if i < r.cfg.KeepAtMost && now.Sub(rc.updated) <= r.cfg.KeepFor {
			continue
		}
		r.mu.Lock()
		_, busy := r.running[rc.id]
		r.mu.Unlock()
		if busy {
			continue
		}
		if err := r.cfg.Store.Delete(ctx, recordKey(rc.id)); err != nil {
			return err
		}
	}
	return nil
}

const recordPrefix = "jobs/"

func recordKey(id string) string { return recordPrefix + id + ".json" }

// newID returns 16 random hex digits: unguessable enough that one admin
// cannot stumble on another's job, and safe in a URL and a storage key.
func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// job is a running job's status, shared by its work, its heartbeat and
// Get.
type job struct {
	mu      sync.Mutex
	st      Status
	changed bool      // since the last write
	saved   time.Time // when the record was last written
}

func (j *job) snapshot() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.snapshotLocked()
}

func (j *job) snapshotLocked() Status {
	st := j.st
	st.Errors = append([]string{}, j.st.Errors...)
	return st
}

// Progress is what a job's work reports through. Its methods may be
// called from several goroutines.
type Progress struct{ j *job }

func (p *Progress) update(f func(st *Status)) {
	p.j.mu.Lock()
	f(&p.j.st)
	p.j.changed = true
	p.j.mu.Unlock()
}

// SetPhase says what the job is at.
func (p *Progress) SetPhase(phase string) { p.update(func(st *Status) { st.Phase = phase }) }

// AddTotal adds n items to do.
func (p *Progress) AddTotal(n int) { p.update(func(st *Status) { st.Total += int64(n) }) }

// Done counts an item done.
func (p *Progress) Done() { p.update(func(st *Status) { st.Done++ }) }

// Skip counts an item that needed no work.
func (p *Progress) Skip() { p.update(func(st *Status) { st.Skipped++ }) }

// Fail counts an item that failed, keeping err's message (one line,
// credentials removed) among the first MaxErrors.
func (p *Progress) Fail(err error) {
	msg := oneLine(err.Error())
	p.update(func(st *Status) {
		st.Failed++
		if len(st.Errors) < MaxErrors {
			st.Errors = append(st.Errors, msg)
		} else {
			st.MoreErrors++
		}
	})
}

// oneLine makes a message from anywhere fit a status: one line, no
// credentials, bounded.
func oneLine(msg string) string {
	msg = redact.Text(strings.Join(strings.Fields(msg), " "))
	if len(msg) > maxErrorLen {
		msg = strings.ToValidUTF8(msg[:maxErrorLen], "") + "..."
	}
	return msg
}
