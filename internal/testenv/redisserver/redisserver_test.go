package redisserver

import (
	"strconv"
	"strings"
	"testing"
)

// TestStartOnTakenPort: when the port Start picks is taken before
// redis-server binds it, by another redis-server, Start does not take that
// server for its own: it starts again on another port.
func TestStartOnTakenPort(t *testing.T) {
	other := Start(t)
	taken := []int{other.port}
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
		t.Fatalf("Start did not try the taken port %v", taken)
	}
	if s.Addr == other.Addr {
		t.Fatalf("Start answered with the taken %s", s.Addr)
	}
	info, err := s.Command("INFO", "server")
	if err != nil || !strings.Contains(info, "process_id:"+strconv.Itoa(s.cmd.Process.Pid)+"\r\n") {
		t.Fatalf("INFO server on %s: %v\n%s\nwant process %d", s.Addr, err, info, s.cmd.Process.Pid)
	}
}

// TestCheckPID: the process_id check accepts the server's own process and
// no other, a sentinel's too.
func TestCheckPID(t *testing.T) {
	master := Start(t)
	sentinel := StartOptions(t, Options{Sentinel: &Watch{Name: "m", Addr: master.Addr}})
	for _, s := range []*Server{master, sentinel} {
		pid := s.cmd.Process.Pid
		if err := s.checkPID(pid); err != nil {
			t.Errorf("checkPID(%d) on %s: %v", pid, s.Addr, err)
		}
		if err := s.checkPID(pid + 1); err == nil {
			t.Errorf("checkPID(%d) on %s, whose process is %d, succeeded", pid+1, s.Addr, pid)
		}
	}
}
