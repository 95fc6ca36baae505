package goproxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/httpserver"
)

// sendServer serves h behind Instrument with send deadlines on a real
// 127.0.0.1 server. done receives once per request after Instrument has
// logged it.
func sendServer(t *testing.T, logs *logLines, rate int64, window time.Duration, h http.HandlerFunc) (srv *httptest.Server, done chan struct{}) {
	t.Helper()
	done = make(chan struct{}, 16)
	inst := Instrument(logs.logger(), h, SendDeadlines(rate, window))
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inst.ServeHTTP(w, r)
		done <- struct{}{}
	}))
	// The listener modgate serves on (connection cap, unsent-data mark).
	srv.Listener = httpserver.NewListener(srv.Listener, 64, nil)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, done
}

// stalledGet sends a GET on a new connection and never reads the answer.
func stalledGet(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	// A small receive buffer, set before the connection is made (it sizes
	// the advertised window): little of the body waits on our side, so the
	// server's writes block soon on a client that does not read, and follow
	// the pace of one that reads slowly. The server's side is bounded by
	// the listener's TCP_NOTSENT_LOWAT.
	d := net.Dialer{Control: smallReceiveBuffer}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) // before srv.Close (cleanups run last first)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	return c
}

// TestSendDeadlineDropsStalledClient: a client that sends its request and
// never reads is dropped once a write makes no progress for the window,
// whether the body goes out by ReadFrom (a file: sendfile) or by Write.
func TestSendDeadlineDropsStalledClient(t *testing.T) {
	// Far more than the socket buffers of both ends hold.
	content := bytes.Repeat([]byte("modgate stall test "), (32<<20)/19)
	file := writeTemp(t, content)
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"ReadFrom", func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "", time.Time{}, file)
		}},
		{"Write", func(w http.ResponseWriter, r *http.Request) {
			for p := content; len(p) > 0; p = p[min(len(p), 32<<10):] {
				if _, err := w.Write(p[:min(len(p), 32<<10)]); err != nil {
					return
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logLines
			srv, done := sendServer(t, &logs, 64<<10, 200*time.Millisecond, tc.h)
			stalledGet(t, srv.Listener.Addr().String(), "/m/@v/v1.0.0.zip")
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("a client that never reads was not dropped in 60s")
			}
			recs := logs.records(t)
			if len(recs) != 1 {
				t.Fatalf("log: %v, want one line", recs)
			}
			r := recs[0]
			if b, _ := r["bytes"].(float64); b >= float64(len(content)) {
				t.Errorf("logged %v bytes sent, want fewer than the %d of the body", b, len(content))
			}
			if e, _ := r["send_err"].(string); !strings.Contains(e, "timeout") {
				t.Errorf("send_err %q, want a write timeout", e)
			}
		})
	}
}

// TestSendDeadlineSlowReader: a client that reads slowly but steadily, for
// many windows in all, gets the whole body: the deadline moves with the
// transfer.
func TestSendDeadlineSlowReader(t *testing.T) {
	// A second between chunks of 32 KiB: a client that reads 16 KiB every
	// 10ms is 50 times faster, so only a stall of the test itself can make
	// it miss one. Such a stall (the race detector and a loaded 2-core
	// machine can pause this process for a second) is measured, and the
	// attempt repeated: a cut transfer whose reader never paused for a
	// window fails at once.
	const window = time.Second
	content := bytes.Repeat([]byte("0123456789abcdef"), (6<<20)/16)
	file := writeTemp(t, content)
	for attempt := 1; ; attempt++ {
		var logs logLines
		srv, _ := sendServer(t, &logs, 32<<10, window, func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "", time.Time{}, file)
		})
		c := stalledGet(t, srv.Listener.Addr().String(), "/m/@v/v1.0.0.zip")
		start := time.Now()
		var got bytes.Buffer
		var longestGap time.Duration
		buf := make([]byte, 16<<10)
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		for last := time.Now(); ; {
			n, err := io.ReadFull(c, buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
			now := time.Now()
			longestGap = max(longestGap, now.Sub(last))
			last = now
		}
		elapsed := time.Since(start)
		if !bytes.HasSuffix(got.Bytes(), content) {
			if longestGap >= window/2 && attempt < 3 {
				t.Logf("attempt %d: the test itself paused %v between reads; the transfer was cut, as it should then: again", attempt, longestGap)
				continue
			}
			t.Fatalf("slow reader got %d bytes in %v (longest pause between its reads %v), want the %d-byte body after the headers; log: %v",
				got.Len(), elapsed, longestGap, len(content), logs.records(t))
		}
		// The premise: the server was writing for several windows, so one
		// fixed deadline would have cut this transfer.
		recs := logs.records(t)
		if len(recs) != 1 {
			t.Fatalf("log: %v, want one line", recs)
		}
		if secs, _ := recs[0]["seconds"].(float64); secs < 2*window.Seconds() {
			t.Fatalf("the server sent the body in %vs, less than 2 windows of %v: buffers took it all, the test tests nothing", secs, window)
		}
		return
	}
}

// TestSendDeadlineLateResponse: no deadline runs before the response
// starts (a cold fetch can take minutes), even on a kept-alive connection
// whose previous response left one behind.
func TestSendDeadlineLateResponse(t *testing.T) {
	const window = 100 * time.Millisecond
	body := bytes.Repeat([]byte("x"), 1<<20)
	var logs logLines
	srv, _ := sendServer(t, &logs, 64<<10, window, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			// Standing in for a slow upstream fetch.
			time.Sleep(5 * window)
		}
		w.Write(body)
	})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	var reused []bool
	for _, p := range []string{"/fast", "/slow"} {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		resp, err := client.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("GET %s: %d bytes, %v; want the %d-byte body", p, len(got), err, len(body))
		}
	}
	if len(reused) != 2 || !reused[1] {
		t.Fatalf("connection reuse %v: the second request did not use the first's connection", reused)
	}
}
