//go:build !unix || aix

package gitmirror

import "context"

// lockFile is a no-op without flock(2): fetches into one mirror are
// serialized within this process only (git's own ref locks still keep two
// processes from corrupting it; one of them then fails).
func lockFile(ctx context.Context, name string) (unlock func(), err error) {
	return func() {}, nil
}
