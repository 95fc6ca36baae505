package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// TestGracefulShutdown sends SIGTERM while a zip fetch is in flight (the
// upstream holds it until modgate has been seen refusing new connections):
// that request must complete with the full zip and the process exit 0.
func TestGracefulShutdown(t *testing.T) {
	e := newStdEnv(t)
	const path, version = "example.com/m/v2", "v2.0.0"
	want := e.fixture(path, version, "zip")
	up := upPath(path, version, "zip")
	release := holdUpstream(t, e, up)

	type result struct {
		r   response
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := tryDo(http.MethodGet, e.url(vPath(path, version, "zip")))
		done <- result{r, err}
	}()
	waitFor(t, 30*time.Second, "the zip request to reach the upstream", func() bool { return e.up.Count(up) > 0 })
	if err := e.proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused once shutdown has begun (polled: the
	// signal is handled asynchronously).
	waitFor(t, 10*time.Second, "modgate to stop accepting connections", func() bool {
		_, err := tryDo(http.MethodGet, e.url("/healthz"))
		return err != nil || e.proc.Exited()
	})
	if e.proc.Exited() {
		t.Fatal("modgate exited before its in-flight request completed")
	}
	release() // only now may the in-flight request complete

	select {
	case res := <-done:
		if res.err != nil {
			t.Fatalf("in-flight request during shutdown: %v", res.err)
		}
		if res.r.Status != http.StatusOK || !bytes.Equal(res.r.Body, want) {
			t.Fatalf("in-flight request during shutdown: status %d, %d bytes (want 200, %d bytes)", res.r.Status, len(res.r.Body), len(want))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("in-flight request did not complete within 30s of SIGTERM")
	}
	waitFor(t, 20*time.Second, "modgate to exit after SIGTERM", e.proc.Exited)
	if code := e.proc.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("modgate exit code %d after SIGTERM, want 0\n%s", code, e.proc.Logs())
	}
	// The zip fetched during shutdown was stored completely.
	e.up.SetDown(true)
	e.start()
	if got := mustGet(t, e.url(vPath(path, version, "zip"))); !bytes.Equal(got, want) {
		t.Errorf("zip fetched during shutdown differs after restart")
	}
}

// TestShutdownWithStalledClient: a client that stopped reading does not
// hold up a graceful shutdown; it is dropped after --send-timeout and the
// drain completes.
func TestShutdownWithStalledClient(t *testing.T) {
	e := newEnv(t, []testenv.Module{bigModule(8 << 20)}, "--send-timeout", "1s", "--min-send-rate", "64KiB", "--shutdown-timeout", "5m")
	zipPath := vPath("example.com/big", "v1.0.0", "zip")
	mustGet(t, e.url(zipPath)) // stored

	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(e.proc.URL, "http://"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: modgate\r\n\r\n", zipPath)
	// The response has started; from here on the client reads nothing.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if line, err := bufio.NewReader(io.LimitReader(conn, 64)).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q, %v", line, err)
	}

	client.CloseIdleConnections()
	if err := e.proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "modgate to exit after SIGTERM with a stalled client", e.proc.Exited)
	if code := e.proc.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if logs := e.proc.Logs(); !strings.Contains(logs, "msg=stopped") || strings.Contains(logs, "did not drain") {
		t.Errorf("shutdown did not drain cleanly:\n%s", logs)
	}
}
