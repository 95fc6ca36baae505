package httpserver

import (
	"net"
	"syscall"
	"testing"
)

// TestNotSentLowat: accepted TCP connections carry the unsent-data mark.
func TestNotSentLowat(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, 1, nil)
	defer ln.Close()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rc, err := s.(*limitConn).Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat) })
	if gerr != nil || v != notSentLowat {
		t.Errorf("TCP_NOTSENT_LOWAT = %d (%v), want %d", v, gerr, notSentLowat)
	}
}
