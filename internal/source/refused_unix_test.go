//go:build unix

package source

import (
	"fmt"
	"syscall"
	"testing"
)

// refusedURL returns an http URL on 127.0.0.1 whose port refuses
// connections. The port is held by a socket that is bound but not
// listening, so no other test's server can take it over (a closed server's
// port can be handed out again at once).
func refusedURL(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
