//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// limitedProc is modgate started under a low open-file limit.
type limitedProc struct {
	url  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
	done chan struct{}
}

func (p *limitedProc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// startWithFileLimit runs "modgate serve" with RLIMIT_NOFILE (soft and
// hard, so the Go runtime cannot raise it) set to nofile by a shell's
// ulimit, and waits for it to announce its URL. It is stopped with SIGTERM
// when the test ends.
func startWithFileLimit(t *testing.T, nofile int, args ...string) *limitedProc {
	t.Helper()
	full := append([]string{"-c", `ulimit -n "$0" && exec "$@"`, strconv.Itoa(nofile),
		testenv.Binary(t), "serve", "--listen", "127.0.0.1:0", "--sumdb", "off", "--log-format", "text"}, args...)
	p := &limitedProc{cmd: exec.Command("sh", full...), done: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlc := make(chan string, 1)
	serving := regexp.MustCompile(`serving on (http://\S+)`)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := serving.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Errorf("modgate did not stop on SIGTERM within 30s; killing it")
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("modgate logs:\n%s", p.Logs())
		}
	})
	select {
	case p.url = <-urlc:
	case <-p.done:
		t.Fatalf("modgate exited at start:\n%s", p.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("modgate did not start in 30s:\n%s", p.Logs())
	}
	return p
}

// TestStalledClientsDropped reproduces the outage of issue #6: clients that
// request a large zip and never read it, more of them than the process has
// file descriptors. modgate must cap its connections below its file limit,
// drop each stalled client once it makes no progress for --send-timeout,
// and keep answering everyone else (health checks, modules) meanwhile.
func TestStalledClientsDropped(t *testing.T) {
	const (
		nofile  = 128 // the process's whole open-file limit
		stalled = 100 // each would hold a socket and the zip's file
	)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	testenv.BuildTree(t, tree, []testenv.Module{
		bigModule(8 << 20), // far more than socket buffers hold
		{Path: "example.com/m", Version: "v1.0.0", Files: goFile("m", "v1.0.0")},
	})
	up := testenv.NewUpstream(t, tree)
	// No --max-conns: the default must be lowered to fit the file limit.
	p := startWithFileLimit(t, nofile, "--data-dir", filepath.Join(dir, "data"), "--upstream", up.URL(),
		"--send-timeout", "1s", "--min-send-rate", "64KiB")
	m := regexp.MustCompile(`connection limit lowered.* max_conns=(\d+)`).FindStringSubmatch(p.Logs())
	if m == nil {
		t.Fatalf("no log line says the connection limit was lowered to fit %d open files:\n%s", nofile, p.Logs())
	}
	if n, _ := strconv.Atoi(m[1]); n < 1 || 2*n >= nofile {
		t.Fatalf("connection limit lowered to %d with %d open files: each connection may hold two", n, nofile)
	}

	probe := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer probe.CloseIdleConnections()
	fetch := func(urlPath string) []byte {
		t.Helper()
		resp, err := probe.Get(p.url + urlPath)
		if err != nil {
			t.Fatalf("GET %s: %v", urlPath, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d, %v (%q)", urlPath, resp.StatusCode, err, abbrev(body))
		}
		return body
	}
	zipPath := vPath("example.com/big", "v1.0.0", "zip")
	zip := fetch(zipPath) // stored: the stalled clients get it from disk
	smallZip := vPath("example.com/m", "v1.0.0", "zip")

	conns := make([]net.Conn, 0, stalled)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range stalled {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(p.url, "http://"), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: modgate\r\n\r\n", zipPath)
	}

	// While they stall: health checks and modules are answered. Each probe
	// queues behind the stalled clients the cap keeps waiting, and gets in
	// as they are dropped.
	var smallLen int
	for i := range 3 {
		if got := fetch("/healthz"); string(got) != "ok\n" {
			t.Fatalf("probe %d: /healthz answered %q", i, got)
		}
		fetch(vPath("example.com/m", "v1.0.0", "info"))
		smallLen = len(fetch(smallZip)) // a stored file: needs a descriptor
	}

	// Every stalled request ends, and the stalled clients got less than a
	// zip each: they were dropped, not served.
	const others = 1 + 3 // the warm-up, three probes
	var text string
	waitFor(t, 90*time.Second, "every stalled zip request to end", func() bool {
		text = string(fetch("/metrics"))
		n, _ := metricValue(text, "modgate_http_requests_total", `endpoint="zip"`)
		return n >= stalled+others
	})
	sent, _ := metricValue(text, "modgate_http_response_bytes_total", `endpoint="zip"`)
	toStalled := sent - float64(len(zip)) - 3*float64(smallLen)
	if toStalled >= float64(stalled)*float64(len(zip)) {
		t.Errorf("%v zip bytes sent to %d stalled clients: they got everything, nobody was dropped", toStalled, stalled)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, _ := io.Copy(io.Discard, c) // what was in flight, then the close
		if n >= int64(len(zip)) {
			t.Errorf("stalled client %d: read %d bytes, a whole zip: it was not dropped", i, n)
		}
	}
	if strings.Contains(p.Logs(), "too many open files") {
		t.Errorf("modgate ran out of file descriptors:\n%s", p.Logs())
	}
	// And it still serves a large zip to a client that reads.
	if got := fetch(zipPath); !bytes.Equal(got, zip) {
		t.Errorf("the zip after the stall differs: %d bytes, want %d", len(got), len(zip))
	}
}
