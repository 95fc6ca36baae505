//go:build unix

package httpserver

import "syscall"

// FileLimit returns the process's limit on open file descriptors (the soft
// RLIMIT_NOFILE, which the Go runtime raises to the hard limit at start),
// or 0 when it cannot be read or is unlimited.
func FileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	// Cur is signed on some systems; infinity is all ones or the largest
	// signed value, both far above any count of connections.
	if cur := uint64(rl.Cur); cur != ^uint64(0) {
		return cur
	}
	return 0
}
