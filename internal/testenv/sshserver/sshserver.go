// Package sshserver is a test fixture: a real OpenSSH server (Debian's
// openssh-server) on 127.0.0.1, private to one test, that lets one fresh
// client key log in as the user running the tests and serves git
// repositories over ssh by their absolute paths. Stopped by its process id
// when the test ends. Only tests import it.
//
// Tests that need it skip when sshd or ssh-keygen is not installed, and
// fail under CI=true, where .ci/run installs them.
package sshserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// Server is a running sshd.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// User is the login name the client key is authorized for: the user
	// running the tests.
	User string
	// ClientKey is the client's private key file (mode 0600).
	ClientKey string
	// KnownHosts is a known_hosts file that trusts this server's host key.
	KnownHosts string
	// OtherKey is a second client key the server does not authorize.
	OtherKey string

	dir     string
	hostKey []string // the host key's type and base64, as in known_hosts
	log     *testenv.SyncBuffer
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
}

// startTimeout bounds how long sshd may take to accept connections.
const startTimeout = 10 * time.Second

// Start runs sshd until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		if p, lerr := exec.LookPath("sshd"); lerr == nil {
			sshd = p
		} else {
			testenv.SkipOrFatal(t, "sshd is not installed (Debian package openssh-server)")
		}
	}
	for _, tool := range []string{"ssh-keygen", "ssh-keyscan"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFatal(t, "%s is not installed (Debian package openssh-client)", tool)
		}
	}
	if os.Geteuid() == 0 {
		// Run as root, sshd insists on its privilege separation directory.
		if fi, err := os.Stat("/run/sshd"); err != nil || !fi.IsDir() {
			testenv.SkipOrFatal(t, "sshd runs as root here and needs /run/sshd (mkdir -p /run/sshd; .ci/run does it)")
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{dir: t.TempDir(), User: u.Username, log: &testenv.SyncBuffer{}}
	hostKey := s.keygen(t, "host")
	s.ClientKey = s.keygen(t, "client")
	s.OtherKey = s.keygen(t, "other")
	pub, err := os.ReadFile(s.ClientKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(s.dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	s.hostKey = strings.Fields(string(hostPub))
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.log.String())
		}
	})
	// The port is picked here, for sshd_config.
	if err := testenv.RetryOnTakenPort(func() error { return s.start(sshd, hostKey, authorized) }); err != nil {
		t.Fatalf("sshserver: %v; sshd log:\n%s", err, s.log.String())
	}
	return s
}

// start runs sshd on a port that was free a moment ago, with the
// known_hosts file for it, and waits until it answers as itself. On an
// error the process has exited.
func (s *Server) start(sshd, hostKey, authorized string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.KnownHosts = filepath.Join(s.dir, "known_hosts")
	if err := os.WriteFile(s.KnownHosts, fmt.Appendf(nil, "[127.0.0.1]:%d %s %s\n", port, s.hostKey[0], s.hostKey[1]), 0o644); err != nil {
		return err
	}
	config := filepath.Join(s.dir, "sshd_config")
	conf := strings.Join([]string{
		"Port " + strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authorized,
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"AllowUsers " + s.User,
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no", // the test's temporary directories are not root's
		"AllowTcpForwarding no",
		"X11Forwarding no",
		"PrintMotd no",
		"LogLevel VERBOSE",
		// git-upload-pack runs in the session with this PATH.
		"SetEnv PATH=/usr/local/bin:/usr/bin:/bin",
		"",
	}, "\n")
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		return err
	}
	// -D: stay in the foreground, as the child of the test; -e: log to
	// stderr, which the test shows when it fails.
	cmd := exec.Command(sshd, "-D", "-e", "-f", config)
	// This attempt's output, also kept in s.log.
	out := &testenv.SyncBuffer{}
	w := io.MultiWriter(s.log, out)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting sshd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	err = s.waitReady(done, out)
	if err == nil {
		return nil
	}
	s.stop()
	return testenv.PortTaken(out.String(), err)
}

// stop kills the sshd it started, by its process id, and waits for it.
func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

// URL is the ssh URL of the repository in dir (an absolute path).
func (s *Server) URL(dir string) string {
	return "ssh://" + s.User + "@" + s.Addr + filepath.ToSlash(dir)
}

// keygen makes an ed25519 key pair named name, without a passphrase.
func (s *Server) keygen(t testing.TB, name string) string {
	t.Helper()
	key := filepath.Join(s.dir, name)
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "modgate-test-"+name, "-f", key).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return key
}

// waitReady waits until sshd answers with its protocol banner and is
// this sshd, not another server that took the port: sshd logged that it
// listens on the port (no other socket can then listen there), or, should
// its log say otherwise, it has the host key made for it. It fails when
// the process exits first.
func (s *Server) waitReady(done <-chan struct{}, log *testenv.SyncBuffer) error {
	_, port, _ := net.SplitHostPort(s.Addr)
	listening := "Server listening on 127.0.0.1 port " + port + "."
	deadline := time.Now().Add(startTimeout)
	var last error
	for {
		if last = s.banner(); last == nil {
			if strings.Contains(log.String(), listening) {
				break
			}
			if last = s.checkHostKey(); last == nil {
				break
			}
		}
		select {
		case <-done:
			return fmt.Errorf("sshd exited before answering on %s (%v)", s.Addr, last)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd did not answer on %s within %v: %v", s.Addr, startTimeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-done:
		return fmt.Errorf("sshd exited after answering on %s", s.Addr)
	default:
		return nil
	}
}

// banner reads the server's protocol banner.
func (s *Server) banner() error {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("banner %q", line)
	}
	return nil
}

// checkHostKey makes sure the server on s.Addr has this server's host key,
// which was made for it.
func (s *Server) checkHostKey() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	out, err := exec.Command("ssh-keyscan", "-T", "5", "-p", port, "-t", s.hostKey[0], "127.0.0.1").Output()
	if err != nil {
		return fmt.Errorf("ssh-keyscan %s: %v", s.Addr, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[1] == s.hostKey[0] {
			if f[2] != s.hostKey[1] {
				return fmt.Errorf("the server on %s has another host key", s.Addr)
			}
			return nil
		}
	}
	return fmt.Errorf("ssh-keyscan %s: no %s host key in %q", s.Addr, s.hostKey[0], out)
}

// freePort is testenv.FreePort, a variable: the package's tests hand out
// taken ports.
var freePort = testenv.FreePort
