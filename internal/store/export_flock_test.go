//go:build unix && !aix

package store

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// LockKey takes key's conditional-put lock, as PutIf does.
func LockKey(ctx context.Context, d *Disk, key string) (unlock func(), err error) {
	return d.lockKey(ctx, key)
}

// LockFile is the name of key's lock file.
func LockFile(d *Disk, key string) string { return d.lockFile(key) }

// KeyLocked reports whether some open file, in any process, holds key's
// conditional-put lock, without waiting for it.
func KeyLocked(d *Disk, key string) (bool, error) {
	f, err := os.Open(d.lockFile(key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = flock(f, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}
