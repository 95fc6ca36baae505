//go:build !unix

package httpserver

// FileLimit returns 0: this system has no RLIMIT_NOFILE to read.
func FileLimit() uint64 { return 0 }
