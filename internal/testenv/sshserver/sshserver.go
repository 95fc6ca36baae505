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

	dir string
	cmd *exec.Cmd
	log *testenv.SyncBuffer
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
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		testenv.SkipOrFatal(t, "ssh-keygen is not installed (Debian package openssh-client)")
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
	port := freePort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(hostPub))
	s.KnownHosts = filepath.Join(s.dir, "known_hosts")
	if err := os.WriteFile(s.KnownHosts, fmt.Appendf(nil, "[127.0.0.1]:%d %s %s\n", port, fields[0], fields[1]), 0o644); err != nil {
		t.Fatal(err)
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
		t.Fatal(err)
	}
	// -D: stay in the foreground, as the child of the test; -e: log to
	// stderr, which the test shows when it fails.
	s.cmd = exec.Command(sshd, "-D", "-e", "-f", config)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("sshserver: starting sshd: %v", err)
	}
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.log.String())
		}
	})
	if err := s.waitBanner(); err != nil {
		t.Fatalf("sshserver: %v; sshd log:\n%s", err, s.log.String())
	}
	return s
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

// waitBanner waits until sshd answers with its protocol banner.
func (s *Server) waitBanner() error {
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-2.0-") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd did not answer on %s within %v", s.Addr, startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
