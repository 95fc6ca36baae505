//go:build !unix || aix

package store

import (
	"context"
	"errors"
	"hash/maphash"
	"io/fs"
	"os"
	"sync"
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

// lockKey takes the lock of key's conditional puts. Without flock(2) the
// lock holds within this process only (every Disk on the same root shares
// it): processes sharing a data dir on such systems can both win a
// conditional put.
func (d *Disk) lockKey(ctx context.Context, key string) (unlock func(), err error) {
	mu := &keyLocks[maphash.String(keyLockSeed, d.lockFile(key))%uint64(len(keyLocks))]
	mu.Lock()
	return mu.Unlock, nil
}

// keyLocks are the in-process locks of conditional puts, by lock file name
// (keys of different roots or the same root may share one: a swap is short).
var (
	keyLocks    [64]sync.Mutex
	keyLockSeed = maphash.MakeSeed()
)
