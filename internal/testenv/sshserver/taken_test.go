package sshserver

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestStartOnTakenPorts: when the ports Start picks are taken before sshd
// binds them, by a server that sends an SSH banner and by another sshd,
// Start does not take them for its own server: it starts again on another
// port, and its known_hosts names that port.
func TestStartOnTakenPorts(t *testing.T) {
	other := Start(t)
	fake, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	go func() {
		for {
			c, err := fake.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			c.Close()
		}
	}()
	_, otherPort, _ := net.SplitHostPort(other.Addr)
	p, _ := strconv.Atoi(otherPort)
	taken := []int{fake.Addr().(*net.TCPAddr).Port, p}
	real := freePort
	defer func() { freePort = real }()
	freePort = func() (int, error) {
		if len(taken) == 0 {
			return real()
		}
		port := taken[0]
		taken = taken[1:]
		return port, nil
	}
	s := Start(t)
	if len(taken) != 0 {
		t.Fatalf("Start did not try the taken ports %v", taken)
	}
	if s.Addr == other.Addr || s.Addr == fake.Addr().String() {
		t.Fatalf("Start answered with the taken %s", s.Addr)
	}
	if err := s.checkHostKey(); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	known, err := os.ReadFile(s.KnownHosts)
	if err != nil || !strings.HasPrefix(string(known), "[127.0.0.1]:"+port+" ") {
		t.Fatalf("known_hosts %q, %v; want the entry for port %s", known, err, port)
	}
	if !strings.Contains(s.log.String(), "Address already in use") {
		t.Errorf("sshd log shows no failed bind:\n%s", s.log.String())
	}
}
