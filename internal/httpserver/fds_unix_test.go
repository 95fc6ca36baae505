//go:build unix

package httpserver

import (
	"syscall"
	"testing"
)

func TestFileLimit(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	want := uint64(rl.Cur)
	if want == ^uint64(0) {
		want = 0 // unlimited: no cap to derive
	}
	if got := FileLimit(); got != want {
		t.Errorf("FileLimit() = %d, want %d (RLIMIT_NOFILE %d)", got, want, rl.Cur)
	}
}
