package httpserver

import (
	"net"
	"syscall"
)

// tcpNotSentLowat is TCP_NOTSENT_LOWAT (linux/tcp.h), which package syscall
// defines for only some architectures.
const tcpNotSentLowat = 0x19

// setNotSentLowat sets TCP_NOTSENT_LOWAT on c; a failure (an old kernel)
// leaves the default, which only makes send deadlines coarser.
func setNotSentLowat(c *net.TCPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, notSentLowat)
	})
}
