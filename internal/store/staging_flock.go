//go:build unix && !aix

package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Staging files are locked with flock(2) while they are written. The lock
// belongs to the open file: it is released when the writer closes the file
// (after renaming it into place, or removing it) and when the writer's
// process dies in any way, kill -9 included. So "unlocked" means "nobody is
// writing this", whatever its age, in this process or another one sharing
// the data directory.
const stagingLocks = true

// flock applies a flock(2) operation to f, retrying on EINTR.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// claimStaging locks f, a file the caller just created in the staging
// directory, and reports whether it is still there under its name.
//
// Creating and locking are two steps. In between, a CleanStaging sees the
// file unlocked; it spares it because it is empty and new (see
// removeIfUnused), and may hold its own lock on it for a moment, which is
// why this lock waits. Checking that the name still refers to our file
// covers what that rule cannot (a clock jump): false means the caller must
// create another file.
func claimStaging(f *os.File) (bool, error) {
	if err := flock(f, unix.LOCK_EX); err != nil {
		return false, err
	}
	return stillNamed(f)
}

// stillNamed reports whether f's name still refers to f.
func stillNamed(f *os.File) (bool, error) {
	ours, err := f.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Lstat(f.Name())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(ours, now), nil
}

// lockKey takes the lock of key's conditional puts: its lock file in the
// staging directory (lockFile), locked with flock(2). A flock belongs to the
// open file, not to the process, so two Disks of one process exclude each
// other as two processes do; the kernel releases the lock of a process that
// dies, kill -9 included.
//
// The holder removes the lock file when it is done, so that the staging
// directory does not keep a file per key ever swapped; CleanStaging removes
// the file of a holder that died (it is then unlocked, empty and old). A
// waiter may thus lock a file that has lost its name: like claimStaging, it
// checks that the name still refers to the file it locked, and starts again
// otherwise. Only the holder of the named file's lock removes the name, so
// one put at a time holds the lock of the file that has it.
//
// flock cannot be interrupted, so a waiter polls, with a backoff, until ctx
// is done: a holder keeps the lock for a comparison, a rename and a
// directory fsync.
func (d *Disk) lockKey(ctx context.Context, key string) (unlock func(), err error) {
	name := d.lockFile(key)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// O_NOFOLLOW: whatever someone put there, locking must not follow a
		// link out of the data dir.
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock file: %w", err)
		}
		if err := lockWait(ctx, f); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock file: %w", err)
		}
		ok, err := stillNamed(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock file: %w", err)
		}
		if ok {
			return func() {
				os.Remove(name) // under the lock: see above
				f.Close()
			}, nil
		}
		f.Close() // removed by its holder meanwhile: take the new one
	}
}

// Backoff of a conditional put waiting for its key's lock.
const (
	lockPollFirst = 50 * time.Microsecond
	lockPollMax   = 5 * time.Millisecond
)

// lockWait locks f exclusively, waiting until ctx is done.
func lockWait(ctx context.Context, f *os.File) error {
	wait := lockPollFirst
	for {
		err := flock(f, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, lockPollMax)
	}
}

// removeIfUnused removes the staging file name unless a writer holds it
// locked, and returns its size when it did.
func removeIfUnused(name string) (removed bool, size int64, err error) {
	// O_NOFOLLOW and O_NONBLOCK: whatever someone put there, opening it
	// must neither follow a link out of the data dir nor block on a FIFO.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, 0, nil // renamed into place or removed meanwhile
		}
		return false, 0, err
	}
	defer f.Close() // releases our lock, after the removal
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, 0, nil // being written
		}
		return false, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return false, 0, err
	}
	if fi.Size() == 0 && time.Since(fi.ModTime()) < newStagingGrace {
		// Perhaps a file a writer has just created and is about to lock
		// (claimStaging): leave it. It holds no space; if it is a
		// leftover, a later clean removes it.
		return false, 0, nil
	}
	// The file we locked may have been renamed into place by its writer
	// between our open and our lock, and a new staging file created under
	// the same name: remove the name only if it still is our file.
	now, err := os.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, err
	}
	if !os.SameFile(fi, now) || !fi.Mode().IsRegular() {
		return false, 0, nil
	}
	if err := os.Remove(name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, 0, nil
		}
		return false, 0, err
	}
	return true, fi.Size(), nil
}
