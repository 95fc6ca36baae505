package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stagingDir is the directory, directly under the root, where Put writes
// temporary files before renaming them into place. Keeping it inside the
// root guarantees it is on the same filesystem, so the rename is atomic.
// Its name is reserved: keys whose first element is stagingDir are invalid.
const stagingDir = ".tmp"

// Staging files are locked while they are written (see staging_flock.go),
// so CleanStaging can tell a leftover of a process that died mid-write
// (kill -9, OOM, power loss) from a write in progress, in this process or in
// another one sharing the data directory (a rolling restart, replicas on a
// shared volume), whatever the file's age.
//
// staleTempAge is the fallback where files cannot be locked: a staging file
// is taken for a leftover once it has not been modified for that long. No
// write legitimately takes an hour.
const staleTempAge = time.Hour

// Temp file name prefixes in the staging directory.
const (
	putTempPrefix  = "put-"
	pingTempPrefix = "ping-"
)

// newStagingGrace: an empty staging file younger than this may be one that
// its writer has created and not yet locked (two system calls apart), so
// CleanStaging leaves it. Leftovers with data go whatever their age.
const newStagingGrace = time.Minute

// claimAttempts bounds how often createStaging tries again when its new
// file was removed before it could lock it, which newStagingGrace makes
// all but impossible: failing three times means something else is
// removing files in the staging directory.
const claimAttempts = 3

// copyBufPool holds the buffers Put streams through, so a Put allocates
// (almost) nothing regardless of the object size.
var copyBufPool = sync.Pool{New: func() any {
	b := make([]byte, 128<<10)
	return &b
}}

// Disk is a Store on a local filesystem. Key "a/b/c" is the file
// <root>/a/b/c. Objects are written to a staging directory, fsynced and
// renamed into place, so readers never observe a partial object, even
// after a crash.
//
// Because keys map to paths, a key cannot be both an object and a "directory"
// of other keys on disk: with "a/b" stored, Put("a/b/c") fails, and vice
// versa. Open and Stat report such keys as ErrNotExist.
//
// Delete does not remove directories that become empty: pruning them would
// race with a concurrent Put creating an object in them.
//
// Disk has every optional capability: PutSized, PutIf (across processes
// sharing the directory, on Unix), ListInfo, the FilePutter methods and
// CleanStaging.
type Disk struct {
	root string // absolute, clean
	tmp  string // root/stagingDir

	// lastStamp is the last modification time (Unix ns) given to an object
	// by Put; see stamp.
	lastStamp atomic.Int64
}

var (
	_ Store             = (*Disk)(nil)
	_ SizedPutter       = (*Disk)(nil)
	_ ConditionalPutter = (*Disk)(nil)
	_ InfoLister        = (*Disk)(nil)
	_ FilePutter        = (*Disk)(nil)
	_ StagingCleaner    = (*Disk)(nil)
)

// NewDisk returns a Disk rooted at root, creating root (mode 0o755) and its
// staging directory if needed. Staging files left by processes that died in
// the middle of a write are removed (CleanStaging).
func NewDisk(root string) (*Disk, error) {
	return newDisk(context.Background(), root)
}

// newDisk is NewDisk with ctx bounding the clean of the staging directory.
func newDisk(ctx context.Context, root string) (*Disk, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("store: disk root %q: %w", root, err)
	}
	d := &Disk{root: abs, tmp: filepath.Join(abs, stagingDir)}
	if err := os.MkdirAll(d.root, 0o755); err != nil {
		return nil, fmt.Errorf("store: create disk root: %w", err)
	}
	if err := os.MkdirAll(d.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("store: create staging dir: %w", err)
	}
	if _, _, err := d.CleanStaging(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Root returns the absolute path of the store's root directory.
func (d *Disk) Root() string { return d.root }

// CleanStaging removes the leftovers of interrupted writes from the
// staging directory: every file there that no writer holds locked, except
// empty files younger than a minute (on platforms without file locks: every
// file not modified for an hour). The lock files of conditional puts whose
// process died are such leftovers too. It returns how many files it removed and
// their total size. NewDisk calls it; a long-running server should call it
// periodically too, since a Put or a fetch killed with its process (or
// another process sharing the data directory) leaves its partial file.
//
// It is safe while other goroutines and processes write to the store.
func (d *Disk) CleanStaging(ctx context.Context) (removed int, bytes int64, err error) {
	entries, err := os.ReadDir(d.tmp)
	if err != nil {
		return 0, 0, fmt.Errorf("store: clean staging dir: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, bytes, fmt.Errorf("store: clean staging dir: %w", err)
		}
		if e.IsDir() && strings.HasPrefix(e.Name(), stagingDirPrefix) {
			n, size, err := removeStaleTree(filepath.Join(d.tmp, e.Name()))
			if err != nil {
				errs = append(errs, err)
			}
			removed += n
			bytes += size
			continue
		}
		if !e.Type().IsRegular() {
			continue // the store creates only these files and trees there
		}
		ok, size, err := removeIfUnused(filepath.Join(d.tmp, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			removed++
			bytes += size
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, bytes, fmt.Errorf("store: clean staging dir: %w", err)
	}
	return removed, bytes, nil
}

// removeStaleTree removes a directory tree renameWithParents left in the
// staging directory when its process died, with the file inside: one
// that has not changed for staleTempAge (a live one is renamed away
// within the same Put). It returns how many files it removed and their size.
func removeStaleTree(tree string) (removed int, bytes int64, err error) {
	fi, err := os.Lstat(tree)
	if err != nil || time.Since(fi.ModTime()) < staleTempAge {
		return 0, 0, nil
	}
	filepath.WalkDir(tree, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				removed++
				bytes += info.Size()
			}
		}
		return nil
	})
	if err := os.RemoveAll(tree); err != nil {
		return 0, 0, err
	}
	return removed, bytes, nil
}

// createStaging creates a new file in the staging directory, named after
// pattern (as os.CreateTemp), and locks it: CleanStaging leaves it alone
// until it is closed.
func (d *Disk) createStaging(pattern string) (*os.File, error) {
	for range claimAttempts {
		f, err := os.CreateTemp(d.tmp, pattern)
		if err != nil {
			return nil, err
		}
		ok, err := claimStaging(f)
		if ok {
			return f, nil
		}
		if err != nil {
			discardStaging(f)
			return nil, fmt.Errorf("lock staging file: %w", err)
		}
		f.Close() // a CleanStaging removed it before we could lock it
	}
	return nil, fmt.Errorf("staging files in %s are removed as soon as they are created", d.tmp)
}

// discardStaging removes a staging file and closes it: with locks, the
// removal happens under the lock; without (Windows cannot remove an open
// file), after the close.
func discardStaging(f *os.File) error {
	if stagingLocks {
		rerr := os.Remove(f.Name())
		return errors.Join(rerr, f.Close())
	}
	cerr := f.Close()
	return errors.Join(cerr, os.Remove(f.Name()))
}

// CreateTemp creates a new file in the staging directory, for a caller to
// write and then hand to PutFile. The file is locked against CleanStaging
// until it is closed: keep it open until PutFile has returned (closing it
// earlier lets a concurrent CleanStaging remove it). pattern is as for
// os.CreateTemp and must not contain a path separator.
func (d *Disk) CreateTemp(pattern string) (*os.File, error) {
	f, err := d.createStaging(pattern)
	if err != nil {
		return nil, fmt.Errorf("store: create staging file: %w", err)
	}
	return f, nil
}

// path validates key and returns its filesystem path.
func (d *Disk) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if key == stagingDir || strings.HasPrefix(key, stagingDir+"/") {
		return "", fmt.Errorf("%w: %q is reserved", ErrInvalidKey, key)
	}
	return d.joinUnder(key)
}

// joinUnder joins the slash path rel to the root. CheckKey already rules out
// every way out of the root; filepath.IsLocal is defense in depth against a
// future change to CheckKey, cheap enough for the hot path. rel is clean
// (CheckKey forbids empty, "." and ".." elements), so plain concatenation
// is the join.
func (d *Disk) joinUnder(rel string) (string, error) {
	native := filepath.FromSlash(rel)
	if native == "." || !filepath.IsLocal(native) {
		return "", fmt.Errorf("%w: %q escapes the store root", ErrInvalidKey, rel)
	}
	return d.root + string(filepath.Separator) + native, nil
}

// notExist maps "no such object" filesystem errors to ErrNotExist.
// A path component that is a file (ENOTDIR) also means there is no object.
func notExist(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
		return fmt.Errorf("store: %s %q: %w", op, key, ErrNotExist)
	}
	return fmt.Errorf("store: %s %q: %w", op, key, err)
}

// info returns the metadata of an object file.
func info(fi fs.FileInfo) Info {
	return Info{Size: fi.Size(), ModTime: fi.ModTime(), ETag: etag(fi)}
}

// etag is a strong validator: `"<hex size>-<hex mtime ns>[-<hex inode>]"`.
//
// Put gives every object a fresh inode (the renamed temp file) and an mtime
// that is unique among the Puts of this process (see stamp), so the ETag
// changes on every overwrite, even with content of the same size. On
// filesystems with coarse timestamps (FAT, HFS+, some NFS) this relies on the
// inode alone, which the filesystem may reuse.
func etag(fi fs.FileInfo) string {
	b := make([]byte, 0, 48)
	b = append(b, '"')
	b = strconv.AppendUint(b, uint64(fi.Size()), 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(fi.ModTime().UnixNano()), 16)
	if ino, ok := inode(fi); ok {
		b = append(b, '-')
		b = strconv.AppendUint(b, ino, 16)
	}
	b = append(b, '"')
	return string(b)
}

// stamp returns a modification time for a new object: the current time,
// bumped if needed so that it is strictly after the previous stamp. Setting
// it explicitly gives objects nanosecond mtimes even where the kernel's own
// write timestamps are coarse (a few ms), which keeps ETags distinct across
// quick same-size overwrites.
func (d *Disk) stamp() time.Time {
	for {
		last := d.lastStamp.Load()
		now := time.Now().UnixNano()
		if now <= last {
			now = last + 1
		}
		if d.lastStamp.CompareAndSwap(last, now) {
			return time.Unix(0, now)
		}
	}
}

// Open returns the object's *os.File and metadata.
func (d *Disk) Open(ctx context.Context, key string) (io.ReadSeekCloser, Info, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, Info{}, fmt.Errorf("store: open %q: %w", key, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, Info{}, notExist("open", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("store: open %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		// A "directory" of other keys (or anything else) is not an object.
		f.Close()
		return nil, Info{}, fmt.Errorf("store: open %q: %w", key, ErrNotExist)
	}
	return f, info(fi), nil
}

// Stat returns the object's metadata.
func (d *Disk) Stat(ctx context.Context, key string) (Info, error) {
	p, err := d.path(key)
	if err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("store: stat %q: %w", key, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, notExist("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("store: stat %q: %w", key, ErrNotExist)
	}
	return info(fi), nil
}

// ctxReader aborts a copy once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// writerOnly hides the ReadFrom method of *os.File so that io.CopyBuffer
// uses our pooled buffer instead of allocating its own.
type writerOnly struct{ io.Writer }

// Put atomically stores the content of r under key: it streams r into a
// temp file in the staging directory, fsyncs it, renames it into place and
// fsyncs the parent directory. On error (including ctx being cancelled
// mid-copy) the temp file is removed and any previous object is intact.
func (d *Disk) Put(ctx context.Context, key string, r io.Reader) error {
	return d.put(ctx, key, r, nil)
}

// PutSized is Put with the size checked as r is read (SizedPutter). A file
// needs no size in advance; the check is what the disk store adds.
func (d *Disk) PutSized(ctx context.Context, key string, r io.Reader, size int64) error {
	if size < 0 {
		return fmt.Errorf("store: put %q: negative size %d", key, size)
	}
	return d.put(ctx, key, &exactReader{r: r, size: size}, nil)
}

// PutIf is Put on condition (ConditionalPutter): the object is written and
// fsynced first, then the key's lock is taken, the current object's ETag
// compared with ifMatch and the new one renamed into place, and the lock
// released. The lock is a file locked with flock(2), so conditional puts
// exclude each other in every process using the data dir, and a process
// that dies holding it releases it (see lockKey); where files cannot be
// locked (Windows, AIX), only within this process.
//
// ETags (see etag) change with every Put, so an object replaced by one of
// the same content still fails an If-Match of the old one.
func (d *Disk) PutIf(ctx context.Context, key string, r io.Reader, ifMatch string) error {
	return d.put(ctx, key, r, &ifMatch)
}

// put is Put, conditional when ifMatch is not nil.
func (d *Disk) put(ctx context.Context, key string, r io.Reader, ifMatch *string) (err error) {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}

	f, err := d.createStaging(putTempPrefix + "*")
	if err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	tmpName := f.Name()
	// f stays open, and so locked against CleanStaging, until it has been
	// renamed into place (or has failed and been removed). Its Close after
	// the rename can report nothing that matters: it was fsynced before.
	closed := false
	defer func() {
		switch {
		case err != nil && !closed:
			discardStaging(f)
		case err != nil:
			os.Remove(tmpName)
		case !closed:
			f.Close()
		}
	}()

	bp := copyBufPool.Get().(*[]byte)
	_, err = io.CopyBuffer(writerOnly{f}, ctxReader{ctx, r}, *bp)
	copyBufPool.Put(bp)
	if err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	// CreateTemp makes the file 0o600; objects are world-readable like the
	// directories that hold them.
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	now := d.stamp()
	if err = os.Chtimes(tmpName, now, now); err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("store: put %q: fsync: %w", key, err)
	}
	if !stagingLocks {
		// Nothing to hold without a lock, and some systems (Windows)
		// cannot rename an open file.
		closed = true
		if err = f.Close(); err != nil {
			return fmt.Errorf("store: put %q: %w", key, err)
		}
	}
	if ifMatch != nil {
		// Only the comparison and the rename are under the lock: the
		// content is already written and fsynced. The lock is held until
		// the rename is durable, so no one swaps on top of a swap that a
		// crash could still undo.
		unlock, err := d.lockKey(ctx, key)
		if err != nil {
			return fmt.Errorf("store: put %q: %w", key, err)
		}
		defer unlock()
		cur, err := d.currentETag(p)
		if err != nil {
			return fmt.Errorf("store: put %q: %w", key, err)
		}
		if err := checkCondition(key, cur, *ifMatch); err != nil {
			return err
		}
	}
	return d.commit(ctx, key, p, tmpName)
}

// currentETag returns the ETag of the object at p, IfAbsent when there is
// none.
func (d *Disk) currentETag(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return IfAbsent, nil
		}
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return IfAbsent, nil // a "directory" of other keys is no object
	}
	return etag(fi), nil
}

// lockFilePrefix names the lock files of conditional puts in the staging
// directory: "lock-" and 32 hex digits of the SHA-256 of the key, a name of
// fixed length whatever the key. A lock file exists only while a
// conditional put of its key holds or waits for it, or after its holder
// died (CleanStaging removes it then, or the next put of the key reuses it).
const lockFilePrefix = "lock-"

// lockFile returns the name of key's lock file.
func (d *Disk) lockFile(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(d.tmp, lockFilePrefix+hex.EncodeToString(sum[:16]))
}

// commit renames a complete, fsynced staging file into place as key's
// object and makes the rename durable.
func (d *Disk) commit(ctx context.Context, key, p, tmpName string) error {
	// Last chance to abort: after the rename the object is visible.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	dir := filepath.Dir(p)
	// Retention removes the directories it leaves empty, at any moment:
	// a directory made with mkdir could go before our file is renamed
	// into it, and then again, as often as a remover is quicker. So the
	// missing directories are built in the staging directory with the
	// file already inside, and renamed into place in one step: a
	// directory holding a file is never empty, so no remover takes it.
	// Each retry means another writer or remover changed the tree under
	// us; the bound only guards against a loop.
	for attempt := 1; ; attempt++ {
		err := os.Rename(tmpName, p)
		if err == nil {
			if err := syncDir(dir); err != nil {
				return fmt.Errorf("store: put %q: fsync dir: %w", key, err)
			}
			return nil
		}
		if _, serr := os.Lstat(tmpName); !errors.Is(err, fs.ErrNotExist) || serr != nil {
			return fmt.Errorf("store: put %q: %w", key, err)
		}
		placed, err := d.renameWithParents(tmpName, p)
		if placed || err != nil {
			if err != nil {
				err = fmt.Errorf("store: put %q: %w", key, err)
			}
			return err
		}
		if attempt == 100 {
			return fmt.Errorf("store: put %q: its directories keep being removed or replaced", key)
		}
	}
}

// testHookBeforePlace, when set by a test, runs just before a tree is
// renamed into place at top: where a remover or another writer may change
// the tree.
var testHookBeforePlace func(top string)

// stagingDirPrefix names the directory trees renameWithParents builds in
// the staging directory.
const stagingDirPrefix = "dir-"

// renameWithParents moves the file tmpName to p when some of p's parent
// directories are missing: it builds the missing ones in the staging
// directory, moves the file into the innermost, makes all of it durable
// and renames the outermost into place. It reports false, with no error,
// when the tree changed under it (the outermost missing directory now
// exists, or its parent is gone); the file is then back at tmpName, for
// the caller to try again.
func (d *Disk) renameWithParents(tmpName, p string) (placed bool, err error) {
	dir := filepath.Dir(p)
	top := "" // the outermost missing directory
	for q := dir; q != d.root && len(q) > len(d.root); q = filepath.Dir(q) {
		fi, err := os.Stat(q)
		if err == nil {
			if !fi.IsDir() {
				return false, &fs.PathError{Op: "mkdir", Path: q, Err: errNotDir}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		top = q
	}
	if top == "" {
		return false, nil // it exists now: rename into it again
	}
	rel, err := filepath.Rel(top, dir)
	if err != nil {
		return false, err
	}
	tree, err := os.MkdirTemp(d.tmp, stagingDirPrefix+"*")
	if err != nil {
		return false, err
	}
	defer func() {
		if !placed {
			os.RemoveAll(tree) // empty directories by now
		}
	}()
	if err := os.Chmod(tree, 0o755); err != nil { // MkdirTemp makes it 0o700
		return false, err
	}
	inner := filepath.Join(tree, rel)
	if err := os.MkdirAll(inner, 0o755); err != nil {
		return false, err
	}
	staged := filepath.Join(inner, filepath.Base(p))
	if err := os.Rename(tmpName, staged); err != nil {
		return false, err
	}
	// The file's entry, and each new directory's entry in its parent,
	// must be durable before the tree becomes visible.
	for q := inner; ; q = filepath.Dir(q) {
		if err := syncDir(q); err != nil {
			return false, errors.Join(fmt.Errorf("fsync dir: %w", err), os.Rename(staged, tmpName))
		}
		if q == tree {
			break
		}
	}
	if testHookBeforePlace != nil {
		testHookBeforePlace(top)
	}
	rerr := os.Rename(tree, top)
	if rerr == nil {
		placed = true
		if err := syncDir(filepath.Dir(top)); err != nil {
			return true, fmt.Errorf("fsync dir: %w", err)
		}
		return true, nil
	}
	// Not placed: give the file back to the caller.
	if err := os.Rename(staged, tmpName); err != nil {
		return false, err
	}
	// Another writer made top meanwhile (not empty: rename does not
	// replace it; ENOTEMPTY counts as fs.ErrExist), or a remover took
	// top's parent: try again.
	if errors.Is(rerr, fs.ErrExist) || errors.Is(rerr, fs.ErrNotExist) {
		return false, nil
	}
	return false, rerr
}

// StagingDir is the directory of the files CreateTemp creates. Files there
// that were not created by CreateTemp (and are not held open since) are
// removed by CleanStaging at any time.
func (d *Disk) StagingDir() string { return d.tmp }

// PutFile stores the file at name under key, like Put, but moves the file
// instead of copying it when it lies in StagingDir (a zip that was
// downloaded and checked there becomes the stored object with one rename).
// The file is consumed either way: on success it no longer exists.
//
// A file in StagingDir must come from CreateTemp and still be open, so
// still locked. Where staging files cannot be locked (not on Unix), the
// file is copied rather than renamed, since some systems (Windows) cannot
// rename an open file; it is removed if it can be, else the caller removes
// it after closing it.
func (d *Disk) PutFile(ctx context.Context, key, name string) (err error) {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if filepath.Dir(name) != d.tmp || !stagingLocks {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("store: put %q: %w", key, err)
		}
		defer os.Remove(name)
		defer f.Close()
		return d.Put(ctx, key, f)
	}
	defer func() {
		if err != nil {
			os.Remove(name)
		}
	}()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	if err = f.Chmod(0o644); err == nil {
		now := d.stamp()
		if err = os.Chtimes(name, now, now); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	return d.commit(ctx, key, p, name)
}

var errNotDir = errors.New("not a directory")

// Delete removes the object; a missing key (or a key that names a directory
// of other keys) is not an error.
func (d *Disk) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: delete %q: %w", key, err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		return fmt.Errorf("store: delete %q: %w", key, err)
	}
	if fi.IsDir() {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: delete %q: %w", key, err)
	}
	return nil
}

// List calls fn with every key that starts with prefix, in lexical (byte)
// order. prefix may end in the middle of an element: "mod/github.com/fo"
// matches "mod/github.com/foo/...". The walk starts at the directory named by
// the prefix up to its last slash, so listing one module's versions reads one
// directory.
//
// Note that filepath.WalkDir order is not key order: it visits directory
// "a" (keys "a/...") before file "a.b", but "a.b" < "a/x" because '.' < '/'.
// List sorts each directory's entries by name, with "/" appended to
// directory names, which yields keys in lexical order.
func (d *Disk) List(ctx context.Context, prefix string, fn func(key string) error) error {
	return d.list(ctx, prefix, func(key string, _ fs.DirEntry) error { return fn(key) })
}

// ListInfo is List with each object's Info (InfoLister): one lstat per
// object, from the directory entry, and no open.
func (d *Disk) ListInfo(ctx context.Context, prefix string, fn func(key string, info Info) error) error {
	return d.list(ctx, prefix, func(key string, e fs.DirEntry) error {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since the directory was read
		}
		if err != nil {
			return fmt.Errorf("store: list %q: %w", prefix, err)
		}
		if !fi.Mode().IsRegular() {
			return nil // replaced by a directory meanwhile
		}
		return fn(key, info(fi))
	})
}

// list calls fn with every key that starts with prefix, in lexical order,
// and the directory entry of its file.
func (d *Disk) list(ctx context.Context, prefix string, fn func(key string, e fs.DirEntry) error) error {
	if prefix != "" {
		if strings.HasPrefix(prefix, "/") || strings.ContainsAny(prefix, "\\\x00") {
			return fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
		}
	}
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
		if err := CheckKey(start); err != nil {
			return fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
		}
		if start == stagingDir {
			return nil
		}
	}
	dir := d.root
	if start != "" {
		var err error
		if dir, err = d.joinUnder(start); err != nil {
			return err
		}
	}
	return d.walk(ctx, dir, start, prefix, fn)
}

// walk lists the directory dir, which holds the keys "<dirKey>/...".
func (d *Disk) walk(ctx context.Context, dir, dirKey, prefix string, fn func(string, fs.DirEntry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil // no such directory, or removed while we walked
		}
		return fmt.Errorf("store: list %q: %w", prefix, err)
	}
	type entry struct {
		sortKey string // name, plus "/" for directories
		name    string
		isDir   bool
		dirent  fs.DirEntry
	}
	list := make([]entry, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if dirKey == "" && name == stagingDir {
			continue
		}
		switch {
		case e.IsDir():
			list = append(list, entry{name + "/", name, true, e})
		case e.Type().IsRegular():
			list = append(list, entry{name, name, false, e})
		}
		// Symlinks and other special files are not objects.
	}
	slices.SortFunc(list, func(a, b entry) int { return cmp.Compare(a.sortKey, b.sortKey) })
	for _, e := range list {
		key := e.name
		if dirKey != "" {
			key = dirKey + "/" + e.name
		}
		if e.isDir {
			// Descend only if keys below can match the prefix.
			if !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				continue
			}
			if err := d.walk(ctx, filepath.Join(dir, e.name), key, prefix, fn); err != nil {
				return err
			}
			continue
		}
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(key, e.dirent); err != nil {
			return err
		}
	}
	return nil
}

// Ping checks that the root is a directory in which we can create files.
func (d *Disk) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Stat(d.root)
	if err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("store: ping: %s is not a directory", d.root)
	}
	f, err := d.createStaging(pingTempPrefix + "*")
	if err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	_, werr := f.Write([]byte("ok"))
	if err := errors.Join(werr, discardStaging(f)); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}
