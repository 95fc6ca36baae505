package httpserver

import (
	"net"
	"syscall"
)

// tcpNotSentLowat is TCP_NOTSENT_LOWAT (netinet/tcp.h).
const tcpNotSentLowat = 0x201

// setNotSentLowat sets TCP_NOTSENT_LOWAT on c; a failure leaves the
// default, which only makes send deadlines coarser.
func setNotSentLowat(c *net.TCPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, notSentLowat)
	})
}
