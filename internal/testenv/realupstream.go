package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// GoTimeout bounds one go command run by GoRun.
const GoTimeout = 5 * time.Minute

// SkipOrFatal skips the test, or fails it when CI=true: CI must never pass
// by silently skipping a test whose service is missing.
func SkipOrFatal(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and the test cannot run: %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// RealUpstream returns the first http(s) entry of `go env GOPROXY` once it
// has answered, within 15s, that it proxies the go command's default
// checksum database (which the real-upstream tests verify against). When
// there is none it skips the test, or fails it under CI=true.
func RealUpstream(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOPROXY").Output()
	if err != nil {
		SkipOrFatal(t, "`go env GOPROXY` failed: %v", err)
	}
	var up string
	for _, e := range strings.FieldsFunc(strings.TrimSpace(string(out)), func(r rune) bool { return r == ',' || r == '|' }) {
		if strings.HasPrefix(e, "https://") || strings.HasPrefix(e, "http://") {
			up = strings.TrimRight(e, "/")
			break
		}
	}
	if up == "" {
		SkipOrFatal(t, "`go env GOPROXY` = %q has no http(s) proxy", strings.TrimSpace(string(out)))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, up+"/sumdb/sum.golang.org/supported", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		SkipOrFatal(t, "the upstream proxy (first http(s) entry of `go env GOPROXY`) did not answer within 15s: %v", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		SkipOrFatal(t, "the upstream proxy answers %d for /sumdb/sum.golang.org/supported: it does not proxy the checksum database", resp.StatusCode)
	}
	return up
}

// GoRun runs the go command in dir with env, bounded by GoTimeout, and
// returns its standard output and error separately (-json output must not
// be mixed with progress messages).
func GoRun(t testing.TB, dir string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), GoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 10 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", GoTimeout, err)
	}
	t.Logf("go %s: err=%v (%.1fs)", strings.Join(args, " "), err, time.Since(start).Seconds())
	return o.String(), e.String(), err
}
