// Package redisserver is a test fixture: a real redis-server (Debian's
// package) on 127.0.0.1, private to one test, with persistence off, stopped
// by its process id when the test ends. Only tests import it.
//
// Tests that need it skip when redis-server is not installed, and fail
// under CI=true, where .ci/run installs it.
package redisserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// Options configures a Server. The zero value is a plain server.
type Options struct {
	// Password, if set, is required of clients (requirepass, the default
	// user's password).
	Password string
	// Cluster starts the server as a one-node Redis Cluster that owns
	// every hash slot.
	Cluster bool
	// ReplicaOf, "host:port", starts the server as a replica of that
	// master.
	ReplicaOf string
	// Sentinel, when set, starts a Redis Sentinel (redis-server
	// --sentinel) that watches the master at Sentinel.Addr under
	// Sentinel.Name, with a quorum of one and a down-after of a second,
	// so that a test's failover takes seconds.
	Sentinel *Watch
}

// Watch is the master a sentinel watches.
type Watch struct {
	Name string // the master's name, as clients ask the sentinels for it
	Addr string // its host:port
}

// Server is a running redis-server.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// URL is "redis://127.0.0.1:port/0", with the password when there is
	// one.
	URL string

	t    testing.TB
	opts Options
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	log    *testenv.SyncBuffer
}

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 10 * time.Second

// Start runs a redis-server until the test ends.
func Start(t testing.TB) *Server { return StartOptions(t, Options{}) }

// StartOptions is Start with options.
func StartOptions(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.SkipOrFatal(t, "redis-server is not installed (Debian package redis-server)")
	}
	s := &Server{t: t, opts: opts, dir: t.TempDir()}
	// redis-server takes its port as a flag, so the port is picked here.
	err = testenv.RetryOnTakenPort(func() error {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.port = port
		return s.start(bin)
	})
	if err != nil {
		t.Fatalf("redisserver: %v", err)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.URL = "redis://" + s.Addr + "/0"
	if opts.Password != "" {
		s.URL = "redis://:" + opts.Password + "@" + s.Addr + "/0"
	}
	t.Cleanup(s.Kill)
	return s
}

// freePort is testenv.FreePort, a variable: the package's tests hand out
// taken ports.
var freePort = testenv.FreePort

// start runs redis-server on s.port and waits until it answers.
func (s *Server) start(bin string) error {
	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", "",
		"--databases", "16",
		// A replica's first sync starts at once, instead of after
		// Redis's default 5 s wait for more replicas to join.
		"--repl-diskless-sync-delay", "0",
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	if s.opts.Cluster {
		args = append(args, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, fmt.Sprintf("nodes-%d.conf", s.port)))
	}
	if s.opts.ReplicaOf != "" {
		host, port, err := net.SplitHostPort(s.opts.ReplicaOf)
		if err != nil {
			return fmt.Errorf("ReplicaOf %q: %v", s.opts.ReplicaOf, err)
		}
		args = append(args, "--replicaof", host, port)
	}
	if w := s.opts.Sentinel; w != nil {
		// A sentinel reads its configuration from a file it rewrites (it
		// records the masters and replicas it learns of there).
		host, port, err := net.SplitHostPort(w.Addr)
		if err != nil {
			return fmt.Errorf("Sentinel.Addr %q: %v", w.Addr, err)
		}
		conf := filepath.Join(s.dir, fmt.Sprintf("sentinel-%d.conf", s.port))
		text := strings.Join([]string{
			"port " + strconv.Itoa(s.port),
			"bind 127.0.0.1",
			"daemonize no",
			"logfile \"\"",
			"dir " + s.dir,
			fmt.Sprintf("sentinel monitor %s %s %s 1", w.Name, host, port),
			fmt.Sprintf("sentinel down-after-milliseconds %s 1000", w.Name),
			fmt.Sprintf("sentinel failover-timeout %s 10000", w.Name),
			"",
		}, "\n")
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return err
		}
		args = []string{conf, "--sentinel"}
	}
	cmd := exec.Command(bin, args...)
	log := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return testenv.PortTaken(log.String(), fmt.Errorf("redis-server exited at start:\n%s", log.String()))
		default:
		}
		if err := s.ping(); err == nil {
			break
		} else if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server did not answer PING within %v (%v):\n%s", startTimeout, err, log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Whatever answered PING may be another test's server that took the
	// port first (this one then exits, unable to bind): only the process
	// started here is accepted.
	if err := s.checkPID(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%w: %v:\n%s", testenv.ErrPortTaken, err, log.String())
	}
	if s.opts.Cluster {
		if err := s.claimSlots(); err != nil {
			cmd.Process.Kill()
			<-exited
			return err
		}
	}
	s.mu.Lock()
	s.cmd, s.exited, s.log = cmd, exited, log
	s.mu.Unlock()
	return nil
}

// Kill stops the server at once (SIGKILL, as a crash would), and waits for
// it. Its data is lost. Calling it again does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// Restart kills the server and starts an empty one on the same address, as
// a Redis without persistence comes back after a crash.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatal(err)
	}
	var startErr error
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		// The port may linger for a moment after the kill.
		if startErr = s.start(bin); startErr == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("redisserver: restart: %v", startErr)
}

// Logs returns what the server has printed.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// command sends one command in RESP and returns the first line of the
// reply, after authenticating when the server has a password.
func (s *Server) command(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(c)
	send := func(args ...string) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			return "", err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "$") { // a bulk string: read its body
			n, _ := strconv.Atoi(line[1:])
			if n < 0 {
				return "", nil
			}
			body := make([]byte, n+2)
			if _, err := io.ReadFull(r, body); err != nil {
				return "", err
			}
			return string(body[:n]), nil
		}
		if strings.HasPrefix(line, "-") {
			return "", errors.New(line[1:])
		}
		return line, nil
	}
	if s.opts.Password != "" {
		if _, err := send("AUTH", s.opts.Password); err != nil {
			return "", err
		}
	}
	return send(args...)
}

func (s *Server) ping() error {
	reply, err := s.command("PING")
	if err != nil {
		return err
	}
	if reply != "+PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

// checkPID makes sure the server answering on s.port is the process pid,
// by the process_id INFO reports (a sentinel too).
func (s *Server) checkPID(pid int) error {
	info, err := s.command("INFO", "server")
	if err != nil {
		return fmt.Errorf("INFO server on port %d: %v", s.port, err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if v != strconv.Itoa(pid) {
				return fmt.Errorf("port %d is another redis-server's (process %s, not %d)", s.port, v, pid)
			}
			return nil
		}
	}
	return fmt.Errorf("INFO server on port %d names no process_id: %q", s.port, info)
}

// claimSlots gives every hash slot to the one node and waits until the
// cluster says it is ready.
func (s *Server) claimSlots() error {
	if _, err := s.command("CLUSTER", "ADDSLOTSRANGE", "0", "16383"); err != nil {
		return fmt.Errorf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		info, err := s.command("CLUSTER", "INFO")
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the one-node cluster is not ready within %v: %v %q", startTimeout, err, info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Command sends one command to the server and returns its reply's first
// line, or a bulk string reply whole (INFO, SENTINEL ...).
func (s *Server) Command(args ...string) (string, error) { return s.command(args...) }
