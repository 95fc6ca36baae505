//go:build !unix

package store

import (
	"errors"
	"io/fs"
)

// inode is not available: ETags use size and modification time only.
func inode(fs.FileInfo) (uint64, bool) { return 0, false }

// isNotDir reports whether err says a path component is not a directory.
// Outside Unix such errors already map to fs.ErrNotExist.
func isNotDir(err error) bool { return errors.Is(err, errNotDir) }

// syncDir is a no-op: directories cannot be fsynced on Windows (and
// renames there are made durable by the filesystem journal).
func syncDir(string) error { return nil }
