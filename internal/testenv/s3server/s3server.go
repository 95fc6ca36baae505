// Package s3server is a test fixture: a real S3 server (versitygw, Apache
// 2.0, over its posix backend) on 127.0.0.1, started per test and stopped
// when the test ends. Only tests import it.
//
// The versitygw binary is looked up as $VERSITYGW, then on PATH, then in
// $(go env GOPATH)/bin; .ci/run installs it there
// (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0). Without
// it Start skips the test, or fails it under CI=true.
package s3server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/modgate/modgate/internal/testenv"
)

// startTimeout bounds how long Start waits for the server to answer.
const startTimeout = 30 * time.Second

// Server is one running versitygw.
type Server struct {
	// Endpoint is the server's base URL, "http://127.0.0.1:port".
	Endpoint string
	// AccessKey and SecretKey are the root credentials, random per server.
	AccessKey, SecretKey string
	// Dir is the posix backend's root: each bucket is a directory in it.
	Dir string

	cmd  *exec.Cmd
	logs testenv.SyncBuffer
	done chan struct{}
}

// Binary returns the path of the versitygw binary, or skips the test (fails
// it under CI=true) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("s3server: $VERSITYGW: %v", err)
		}
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "versitygw")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	testenv.SkipOrFatal(t, "versitygw is not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0, or set $VERSITYGW)")
	return ""
}

// Start runs versitygw over a new directory on a free port of 127.0.0.1
// and waits until it answers. It is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{
		AccessKey: "test-" + randomHex(t, 8),
		SecretKey: randomHex(t, 20),
		Dir:       t.TempDir(),
	}
	t.Cleanup(func() { s.stop(t) })
	// versitygw takes its port as a flag, so the port is picked here.
	if err := testenv.RetryOnTakenPort(func() error { return s.start(bin) }); err != nil {
		t.Fatalf("s3server: %v\nversitygw output:\n%s", err, s.logs.String())
	}
	return s
}

// start runs versitygw on a port that was free a moment ago and waits
// until it answers as itself. On an error the process has exited.
func (s *Server) start(bin string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	s.Endpoint = "http://" + addr
	// --keep-alive as real S3 servers do: connections are reused, and
	// --quiet: no line per request.
	cmd := exec.Command(bin, "--port", addr, "--keep-alive", "--quiet", "posix", s.Dir)
	cmd.Env = append(os.Environ(),
		"ROOT_ACCESS_KEY="+s.AccessKey,
		"ROOT_SECRET_KEY="+s.SecretKey,
	)
	// This attempt's output, also kept in s.logs.
	out := &testenv.SyncBuffer{}
	w := io.MultiWriter(&s.logs, out)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	err = s.waitReady()
	if err == nil {
		return nil
	}
	s.stop(nil)
	return testenv.PortTaken(out.String(), err)
}

// CreateBucket creates an empty bucket. With the posix backend a bucket
// is a directory under Dir.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if !bucketName.MatchString(name) {
		t.Fatalf("s3server: %q is not a valid bucket name", name)
	}
	if err := os.Mkdir(filepath.Join(s.Dir, name), 0o755); err != nil {
		t.Fatalf("s3server: %v", err)
	}
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Logs returns what versitygw printed so far.
func (s *Server) Logs() string { return s.logs.String() }

// waitReady polls the endpoint until the server lists the buckets for a
// request signed with this server's own credentials, which are random:
// another S3 server that took the port would refuse it. It fails when the
// process exits first.
func (s *Server) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	addr := strings.TrimPrefix(s.Endpoint, "http://")
	client, err := minio.New(addr, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
		Transport:    &http.Transport{DisableKeepAlives: true},
	})
	if err != nil {
		return err
	}
	var last error
	for {
		// A plain connection first, as the client is slow to fail.
		var c net.Conn
		if c, last = net.DialTimeout("tcp", addr, time.Second); last == nil {
			c.Close()
			try, cancelTry := context.WithTimeout(ctx, 2*time.Second)
			_, last = client.ListBuckets(try)
			cancelTry()
			if last == nil {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("versitygw exited before answering on %s: %v (last answer: %v)", s.Endpoint, s.cmd.ProcessState, last)
		case <-ctx.Done():
			return fmt.Errorf("versitygw did not answer on %s within %v: %v", s.Endpoint, startTimeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the process it started, by its PID: SIGTERM, then SIGKILL if
// it has not exited after a few seconds. t is nil when a failed start is
// stopped.
func (s *Server) stop(t testing.TB) {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	if t != nil && t.Failed() {
		t.Logf("versitygw output:\n%s", s.logs.String())
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago. A variable: the package's tests hand out taken ones.
var freeAddr = func() (string, error) {
	port, err := testenv.FreePort()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), err
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
