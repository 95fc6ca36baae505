//go:build linux || darwin

package retention

import (
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/modgate/modgate/internal/store"
)

// accessTimes returns a function giving a key's access time, for the
// stores that have them (the disk store), or nil.
func accessTimes(st store.Store) func(key string) (time.Time, bool) {
	d, ok := st.(*store.Disk)
	if !ok {
		return nil
	}
	root := d.Root()
	return func(key string) (time.Time, bool) {
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(key)))
		if err != nil {
			return time.Time{}, false
		}
		sys, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return time.Time{}, false
		}
		return statAtime(sys), true
	}
}
