package e2e

import (
	"bytes"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdown sends SIGTERM while a slow zip fetch is in flight:
// that request must complete with the full zip and the process exit 0.
func TestGracefulShutdown(t *testing.T) {
	e := newStdEnv(t)
	const path, version = "example.com/m/v2", "v2.0.0"
	want := e.fixture(path, version, "zip")
	started := make(chan struct{})
	e.up.SetHook(slowHook(upPath(path, version, "zip"), 1500*time.Millisecond, started))

	type result struct {
		r   response
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := tryDo(http.MethodGet, e.url(vPath(path, version, "zip")))
		done <- result{r, err}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the zip request never reached the upstream")
	}
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
