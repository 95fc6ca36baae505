package httpserver

import (
	"errors"
	"net"
	"testing"
)

type accepted struct {
	c   net.Conn
	err error
}

// TestListenerLimit: with the cap reached, Accept waits (and says so)
// until a connection closes; closing a connection twice frees one slot.
func TestListenerLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	full := make(chan struct{}, 10)
	ln := NewListener(inner, 2, func() { full <- struct{}{} })
	defer ln.Close()
	for range 4 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	accept := func() <-chan accepted {
		ch := make(chan accepted, 1)
		go func() {
			c, err := ln.Accept()
			ch <- accepted{c, err}
		}()
		return ch
	}
	a := <-accept()
	b := <-accept()
	if a.err != nil || b.err != nil {
		t.Fatal(a.err, b.err)
	}
	third := accept()
	<-full // Accept found the cap reached and waits
	select {
	case r := <-third:
		t.Fatalf("a third connection was accepted with the cap at 2 (err %v)", r.err)
	default:
	}
	a.c.Close()
	a.c.Close() // a second Close must not free a second slot
	r := <-third
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	fourth := accept()
	<-full
	select {
	case r := <-fourth:
		t.Fatalf("a fourth connection was accepted: closing one connection twice freed two slots (err %v)", r.err)
	default:
	}
	// Closing the listener ends the wait.
	ln.Close()
	if r := <-fourth; !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("Accept waiting on a closed listener: %v, want net.ErrClosed", r.err)
	}
}

// TestListenerAcceptError: a failed accept gives its slot back.
func TestListenerAcceptError(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, 1, func() { t.Error("Accept waited for a slot that a failed accept should have freed") })
	inner.Close() // Accept now fails
	for range 3 {
		if _, err := ln.Accept(); err == nil {
			t.Fatal("Accept on a closed listener succeeded")
		}
	}
}

func TestMaxConns(t *testing.T) {
	for _, tc := range []struct {
		requested int
		nofile    uint64
		want      int
	}{
		{4096, 0, 4096},       // limit unknown
		{4096, 1 << 20, 4096}, // plenty
		{4096, 1024, 320},     // (1024-64)/3
		{4096, 256, 64},       // (256-64)/3
		{10, 256, 10},         // asked for less
		{4096, 64, 1},         // nothing left: still serve
		{4096, 1 << 62, 4096}, // effectively unlimited
		{1 << 30, 1 << 62, 1 << 30},
	} {
		if got := MaxConns(tc.requested, tc.nofile); got != tc.want {
			t.Errorf("MaxConns(%d, %d) = %d, want %d", tc.requested, tc.nofile, got, tc.want)
		}
	}
}
