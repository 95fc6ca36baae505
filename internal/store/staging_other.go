//go:build !unix || aix

package store

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// Without flock(2) staging files are not locked. CleanStaging then falls
// back to age: a file not modified for staleTempAge is debris of a write
// that died (no write legitimately takes that long), a younger one may be
// another process's write in progress.
const stagingLocks = false

func claimStaging(*os.File) (bool, error) { return true, nil }

// removeIfUnused removes the staging file name if it is older than
// staleTempAge, and returns its size when it did.
func removeIfUnused(name string) (removed bool, size int64, err error) {
	fi, err := os.Lstat(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, 0, nil
		}
		return false, 0, err
	}
	if !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < staleTempAge {
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
