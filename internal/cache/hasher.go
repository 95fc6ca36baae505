package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/store"
)

// A zip that nothing verifies (no checksum database, or a path it skips) is
// served as soon as its central directory passes the checks
// (modcheck.CheckZipNoHash): decompressing every file for the h1: hash
// would cost up to a second of CPU on the request's critical path, for a
// hash nobody checks before serving. The hash is computed afterwards by one
// background goroutine, from the scratch file the fetch still holds open
// (on unix an open file stays readable after it has been renamed into
// storage or removed), and stored as .ziphash. Should that not happen (the
// queue was full, the process died first), File.H1 computes it when asked
// (Modules.zipH1).
//
// Hashing also decompresses every file, which finds damaged content that
// the central directory cannot show (a bad CRC-32, a corrupt deflate
// stream): such a zip is deleted from storage, to be fetched again on the
// next request. A client that got it meanwhile refuses it, as the go
// command hashes every zip it downloads.

// hashQueueLen bounds the zips waiting to be hashed. Each holds an open
// file descriptor; past it, a zip is left for File.H1 to hash when asked.
const hashQueueLen = 64

// hashJob is a stored zip waiting for its hash: the scratch file it was
// stored from, still open, and its size.
type hashJob struct {
	path, version string
	f             *os.File
	size          int64
}

// zipHasher hashes stored zips in one background goroutine, fed by a
// bounded queue.
type zipHasher struct {
	m    *Modules
	jobs chan hashJob
	done chan struct{} // closed when the goroutine has ended

	// mu guards closed, so that no job is queued once stop has closed
	// jobs, and pending, the jobs queued or running (for wait).
	mu      sync.Mutex
	closed  bool
	pending int
	idle    *sync.Cond // signalled when pending drops to 0

	// gate, when set (by tests, before the first job is queued), holds
	// each job until it is closed.
	gate chan struct{}
}

func newZipHasher(m *Modules) *zipHasher {
	h := &zipHasher{m: m, jobs: make(chan hashJob, hashQueueLen), done: make(chan struct{})}
	h.idle = sync.NewCond(&h.mu)
	go h.run()
	return h
}

// add queues job, handing its file to the hasher, which closes it. It
// reports false, and leaves the file to the caller, when the queue is full
// or the hasher stopped: the hash is then computed when asked for.
func (h *zipHasher) add(job hashJob) bool {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	select {
	case h.jobs <- job:
		h.pending++
		h.mu.Unlock()
		return true
	default:
	}
	h.mu.Unlock()
	// Logged without h.mu: a log write must not hold up the hasher.
	h.m.log.Warn("zip hash queue full; hashing when asked", "module", job.path, "version", job.version)
	return false
}

// stop ends the goroutine once the job it is hashing, if any, is done,
// and waits for it. The jobs still queued are dropped (their files closed):
// their hashes are computed when asked for.
func (h *zipHasher) stop() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.jobs)
	}
	h.mu.Unlock()
	<-h.done
}

// wait waits until no job is queued or running.
func (h *zipHasher) wait() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.pending > 0 {
		h.idle.Wait()
	}
}

func (h *zipHasher) run() {
	defer close(h.done)
	for job := range h.jobs {
		if h.gate != nil {
			<-h.gate
		}
		h.mu.Lock()
		stopping := h.closed
		h.mu.Unlock()
		if !stopping {
			h.hash(job)
		}
		job.f.Close()
		h.mu.Lock()
		if h.pending--; h.pending == 0 {
			h.idle.Broadcast()
		}
		h.mu.Unlock()
	}
}

// hash hashes one queued zip and stores its .ziphash, unless the stored zip
// is no longer the one the job holds (deleted or replaced meanwhile).
func (h *zipHasher) hash(job hashJob) {
	m := h.m
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.FetchTimeout)
	defer cancel()
	key, err := store.VersionKey(job.path, job.version, "zip")
	if err != nil {
		return
	}
	info, err := m.cfg.Store.Stat(ctx, key)
	if err != nil || info.Size != job.size {
		return // gone or replaced: nothing to say about what is stored now
	}
	if _, err := m.hashZip(ctx, job.path, job.version, job.f, job.size); err != nil && !errors.Is(err, errZipDamaged) {
		m.log.Error("cannot store the hash of a stored zip", "module", job.path, "version", job.version, "err", err)
	}
}

// errZipDamaged is the error of a stored zip that cannot be hashed.
var errZipDamaged = errors.New("stored zip is damaged")

// hashZip hashes the stored zip of path@version, whose size bytes r holds,
// and stores its .ziphash unless one exists (File.H1 and the hasher may
// both hash a zip). A zip whose content cannot be hashed is damaged: it is
// deleted from storage, so that the next request fetches it again. One
// that could not be read is kept.
func (m *Modules) hashZip(ctx context.Context, path, version string, r io.ReaderAt, size int64) (string, error) {
	h1, err := modcheck.HashZip(r, size)
	if errors.Is(err, modcheck.ErrUnreadable) {
		// The machine could not read it, which says nothing about the zip:
		// keep it; File.H1 hashes it when next asked.
		return "", fmt.Errorf("%s@%s: %w", path, version, err)
	}
	if err != nil {
		m.log.Error("stored zip is damaged; deleting it", "module", path, "version", version, "err", err)
		if key, kerr := store.VersionKey(path, version, "zip"); kerr == nil {
			if derr := m.cfg.Store.Delete(ctx, key); derr != nil {
				m.log.Error("cannot delete a damaged zip", "module", path, "version", version, "err", derr)
			}
		}
		return "", fmt.Errorf("%s@%s: %w: %v", path, version, errZipDamaged, err)
	}
	hashKey, err := store.VersionKey(path, version, "ziphash")
	if err != nil {
		return "", err
	}
	if _, err := m.cfg.Store.Stat(ctx, hashKey); err == nil {
		return h1, nil
	} else if !errors.Is(err, store.ErrNotExist) {
		return "", err
	}
	return h1, m.put(ctx, hashKey, []byte(h1+"\n"))
}

// zipH1 computes the h1: hash of the stored zip of path@version, which has
// no .ziphash, and stores it. A store whose objects are files is read in
// place; any other is copied to a scratch file first.
func (m *Modules) zipH1(ctx context.Context, path, version string) (string, error) {
	key, err := store.VersionKey(path, version, "zip")
	if err != nil {
		return "", err
	}
	rc, info, err := m.cfg.Store.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	start := time.Now()
	defer func() {
		m.log.Debug("hashed a stored zip on demand", "module", path, "version", version, "duration", time.Since(start))
	}()
	if ra, ok := rc.(io.ReaderAt); ok {
		return m.hashZip(ctx, path, version, ra, info.Size)
	}
	tmp, err := os.CreateTemp(m.cfg.ScratchDir, "hash-*.zip")
	if err != nil {
		return "", fmt.Errorf("scratch space: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, rc)
	if err != nil {
		return "", err
	}
	return m.hashZip(ctx, path, version, tmp, n)
}
