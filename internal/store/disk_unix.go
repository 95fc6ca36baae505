//go:build unix

package store

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// inode returns the file's inode number, used in ETags.
func inode(fi fs.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Ino), true
}

// isNotDir reports whether err says a path component is not a directory.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR) || errors.Is(err, errNotDir)
}

// syncDir fsyncs a directory, making the entries created in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
