// Package httpserver holds the connection-level protections of modgate's
// HTTP server: a cap on open connections, derived from the process's file
// descriptor limit, so that a crowd of clients (or of stalled ones) cannot
// take the descriptors the server needs to open stored files and reach its
// upstreams.
package httpserver

import (
	"net"
	"sync"
	"sync/atomic"
)

// NewListener wraps l for serving clients:
//
//   - at most maxConns accepted connections are open at once. When
//     maxConns are open, Accept waits until one is closed: the kernel holds
//     further clients in the listen backlog, where they cost the process
//     nothing, instead of modgate accepting connections it has no file
//     descriptors for (accept fails with EMFILE, and so does every file the
//     server then tries to open). onFull, if not nil, is called each time
//     Accept starts waiting.
//   - each TCP connection gets a low-water mark for unsent data (see
//     setNotSentLowat), so that a write blocked on a slow client wakes as
//     soon as the client takes more data, and the send deadlines of
//     goproxy.SendDeadlines measure the client's pace rather than the
//     kernel's buffer sizes.
func NewListener(l net.Listener, maxConns int, onFull func()) net.Listener {
	if maxConns < 1 {
		maxConns = 1
	}
	return &limitListener{Listener: l, sem: make(chan struct{}, maxConns), done: make(chan struct{}), onFull: onFull}
}

type limitListener struct {
	net.Listener
	sem       chan struct{} // one token per open connection
	done      chan struct{} // closed by Close: Accept stops waiting
	closeOnce sync.Once
	onFull    func()
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		if l.onFull != nil {
			l.onFull()
		}
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		setNotSentLowat(tc)
	}
	return &limitConn{Conn: c, release: l.release}, nil
}

func (l *limitListener) release() { <-l.sem }

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// limitConn gives its token back once, however often it is closed.
type limitConn struct {
	net.Conn
	closed  atomic.Bool
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.release()
	}
	return err
}
