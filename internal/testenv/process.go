package testenv

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// RepoRoot returns the root of the modgate checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds cmd/modgate once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "modgate-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "modgate")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/modgate")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// CleanupBinary removes the built binary; call it from TestMain.
func CleanupBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// Proc is a running modgate process.
type Proc struct {
	URL  string
	Cmd  *exec.Cmd
	logs *SyncBuffer
	done chan struct{}
}

var servingRE = regexp.MustCompile(`serving on (https?://\S+)`)

// Start runs "modgate serve --listen 127.0.0.1:0 args..." and waits until it
// answers /healthz. The process is stopped when the test ends.
func Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return StartEnv(t, nil, args...)
}

// StartEnv is Start with extra environment variables.
//
// Unless args name a --sumdb, checksum verification is turned off: fixture
// modules are in no public checksum database. Tests of verification pass
// --sumdb themselves.
func StartEnv(t testing.TB, env []string, args ...string) *Proc {
	t.Helper()
	full := []string{"serve", "--listen", "127.0.0.1:0"}
	if !hasFlag(args, "sumdb") {
		full = append(full, "--sumdb", "off")
	}
	cmd := exec.Command(Binary(t), append(full, args...)...)
	cmd.Env = append(os.Environ(), env...)
	logs := &SyncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, logs: logs, done: make(chan struct{})}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			logs.Write([]byte(line + "\n"))
			if m := servingRE.FindStringSubmatch(line); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.Stop(t) })
	select {
	case p.URL = <-urlc:
	case <-p.done:
		t.Fatalf("modgate exited at start:\n%s", logs.String())
	case <-time.After(30 * time.Second):
		p.Kill()
		t.Fatalf("modgate did not start in 30s:\n%s", logs.String())
	}
	// The health probe only asks whether the process answers; a test of TLS
	// checks the certificate with its own client.
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for i := 0; i < 100; i++ {
		resp, err := probe.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("modgate /healthz never answered:\n%s", logs.String())
	return nil
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// Logs returns everything the process wrote so far.
func (p *Proc) Logs() string { return p.logs.String() }

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after 15s).
func (p *Proc) Stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Errorf("modgate did not stop on SIGTERM within 15s; killing it")
		p.Kill()
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	p.Cmd.Process.Kill()
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// GoEnv returns an environment for running the go command as a client of
// goproxy, with a fresh module cache under dir and nothing reaching out but
// the proxy.
func GoEnv(dir, goproxy string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOFLAGS", "GOPATH", "GOMODCACHE", "GOTOOLCHAIN", "GO111MODULE", "GOINSECURE", "GOENV":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"GOPROXY="+goproxy,
		"GOPATH="+filepath.Join(dir, "gopath"),
		"GOMODCACHE="+filepath.Join(dir, "gopath", "pkg", "mod"),
		"GOFLAGS=-modcacherw",
		"GOTOOLCHAIN=local",
		"GOENV=off",
		"GO111MODULE=on",
	)
}

// Go runs the go command in dir with env and returns its combined output.
func Go(t testing.TB, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// RefusedURL returns an http URL on 127.0.0.1 where connections are
// refused, for as long as the test runs.
//
// The port is held by a TCP socket that is bound but never listens: the
// kernel answers a connection to it with a reset (ECONNREFUSED), and no
// other process can take the port before the test ends, as it could a
// port merely found free. The socket has no SO_REUSEADDR, so no listener
// can share the port either. It is closed by t.Cleanup.
func RefusedURL(t testing.TB) string {
	t.Helper()
	// Under ForkLock, as the net package does where sockets cannot be
	// created close-on-exec at once: a process a test starts must not
	// inherit the socket and keep the port after the test.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, syscall.IPPROTO_TCP)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatalf("RefusedURL: socket: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatalf("RefusedURL: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatalf("RefusedURL: getsockname: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	return fmt.Sprintf("http://127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
