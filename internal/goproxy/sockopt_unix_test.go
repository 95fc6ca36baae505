//go:build unix

package goproxy

import "syscall"

// smallReceiveBuffer is a net.Dialer Control function setting SO_RCVBUF
// to 64 KiB before the connection is made (so the advertised window is
// small from the first packet on).
func smallReceiveBuffer(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
	}); err != nil {
		return err
	}
	return serr
}
