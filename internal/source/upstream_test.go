package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The credentials of the upstream in the leak tests. None of them may
// appear in any text modgate shows (errors, String, origin names).
const (
	secretUser  = "alice7"
	secretPass  = "s3cretPW"
	secretToken = "t0kenVAL"
)

// withSecrets returns srvURL with user information and a token query
// parameter, the way operators configure authenticated upstreams.
func withSecrets(srvURL string) string {
	return strings.Replace(srvURL, "://", "://"+secretUser+":"+secretPass+"@", 1) + "/base?token=" + secretToken
}

func assertNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{secretUser, secretPass, secretToken} {
		if strings.Contains(text, s) {
			t.Errorf("%s leaks %q: %s", what, s, text)
		}
	}
}

// echoServer answers every request with status and a body that quotes the
// full request URL back, with its query token (as some proxies do in error
// pages), over several lines.
func echoServer(t *testing.T, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		fmt.Fprintf(w, "cannot serve http://%s%s: %s\nsecond line with token=%s\n%s",
			r.Host, r.RequestURI, strings.Repeat("because ", 100), secretToken, strings.Repeat("x", 5000))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestUpstreamCredentialsNeverShown(t *testing.T) {
	type fetch func(ctx context.Context, u Source) error
	fetchers := map[string]fetch{
		"List": func(ctx context.Context, u Source) error { _, err := u.List(ctx, "example.com/m"); return err },
		"Info": func(ctx context.Context, u Source) error {
			_, err := u.Info(ctx, "example.com/m", "v1.0.0")
			return err
		},
		"Zip": func(ctx context.Context, u Source) error {
			rc, err := u.Zip(ctx, "example.com/m", "v1.0.0")
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			return err
		},
	}

	deadURL := refusedURL(t)

	// hang sends nothing, not even headers, until the client goes away.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hang.Close)
	// stall sends headers and a little data, then stalls.
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		io.WriteString(w, "v1.0.0\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(stall.Close)
	// huge announces more than a file may hold (list, zip), or sends it
	// without announcing a length (info).
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, ".zip"):
			w.Header().Set("Content-Length", fmt.Sprint(MaxZipSize+1))
		case strings.HasSuffix(r.URL.Path, "/list"):
			w.Header().Set("Content-Length", fmt.Sprint(maxListSize+1))
		default:
			w.(http.Flusher).Flush() // chunked: no length
			w.Write(make([]byte, maxInfoSize+1))
			return
		}
		w.WriteHeader(200)
	}))
	t.Cleanup(huge.Close)

	cases := []struct {
		name    string
		srvURL  string
		timeout time.Duration
		check   func(t *testing.T, err error)
	}{
		{"404", echoServer(t, 404).URL, 0, wantNotFound},
		{"410", echoServer(t, 410).URL, 0, wantNotFound},
		{"403", echoServer(t, 403).URL, 0, wantNotFound},
		{"400", echoServer(t, 400).URL, 0, wantNotFound},
		{"401", echoServer(t, 401).URL, 0, wantStatus(401)},
		{"429", echoServer(t, 429).URL, 0, wantStatus(429)},
		{"500", echoServer(t, 500).URL, 0, wantStatus(500)},
		{"504", echoServer(t, 504).URL, 0, wantStatus(504)},
		{"unreachable", deadURL, 0, func(t *testing.T, err error) {
			var op *net.OpError
			if !errors.As(err, &op) {
				t.Errorf("err = %v, want a *net.OpError inside", err)
			}
		}},
		{"timeout", hang.URL, 300 * time.Millisecond, wantTimeout},
		{"idle", stall.URL, 0, wantTimeout},
		{"too large", huge.URL, 0, func(t *testing.T, err error) {
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("err = %v, want ErrTooLarge", err)
			}
		}},
	}
	client := NewHTTPClient(WithIdleTimeout(300 * time.Millisecond))
	for _, tc := range cases {
		for op, fetch := range fetchers {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				ctx := t.Context()
				if tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.timeout)
					defer cancel()
				}
				u := NewUpstream(withSecrets(tc.srvURL), client)
				assertNoSecrets(t, "String()", u.String())
				err := fetch(ctx, u)
				if err == nil {
					t.Fatal("fetch succeeded")
				}
				assertNoSecrets(t, "error", err.Error())
				if len(err.Error()) > 600 || strings.ContainsAny(err.Error(), "\r\n") {
					t.Errorf("error is not one short line (%d bytes): %q", len(err.Error()), err)
				}
				tc.check(t, err)

				// Through a chain (where not-found reasons are joined).
				if tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(t.Context(), tc.timeout)
					defer cancel()
				}
				list := withSecrets(tc.srvURL) + "," + withSecrets(tc.srvURL)
				c, perr := ParseList(list, func(base string) Source { return NewUpstream(base, client) })
				if perr != nil {
					t.Fatal(perr)
				}
				assertNoSecrets(t, "Chain.String()", c.String())
				err = fetch(ctx, c)
				if err == nil {
					t.Fatal("fetch through the chain succeeded")
				}
				assertNoSecrets(t, "chain error", err.Error())
				tc.check(t, err)
			})
		}
	}
}

func wantNotFound(t *testing.T, err error) {
	t.Helper()
	var fe *FetchError
	if !errors.Is(err, ErrNotFound) || errors.As(err, &fe) {
		t.Errorf("err = %v, want not-found", err)
	}
	if !strings.Contains(err.Error(), "cannot serve") {
		t.Errorf("err = %v, want the upstream's reason", err)
	}
}

func wantStatus(status int) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var fe *FetchError
		if !errors.As(err, &fe) || fe.Status != status || errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want a FetchError with status %d", err, status)
		}
		if !strings.Contains(err.Error(), "cannot serve") {
			t.Errorf("err = %v, want the upstream's reason", err)
		}
	}
}

func wantTimeout(t *testing.T, err error) {
	t.Helper()
	var fe *FetchError
	if !errors.As(err, &fe) || !fe.Timeout {
		t.Errorf("err = %v, want a FetchError with Timeout", err)
	}
}

// TestUpstreamSendsCredentials checks that redacting names does not redact
// the requests: the user information becomes basic auth, the query is kept,
// and the module path goes after the base path.
func TestUpstreamSendsCredentials(t *testing.T) {
	type seen struct {
		user, pass, path, token string
		ok                      bool
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		got <- seen{user, pass, r.URL.EscapedPath(), r.URL.Query().Get("token"), ok}
		io.WriteString(w, "v1.0.0\n")
	}))
	defer srv.Close()
	c, err := ParseList(withSecrets(srv.URL), func(base string) Source { return NewUpstream(base, NewHTTPClient()) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, origin := WithOrigin(t.Context())
	if _, err := c.List(ctx, "example.com/M"); err != nil {
		t.Fatal(err)
	}
	s := <-got
	want := seen{secretUser, secretPass, "/base/example.com/%21m/@v/list", secretToken, true}
	if s != want {
		t.Errorf("upstream saw %+v, want %+v", s, want)
	}
	assertNoSecrets(t, "origin", origin.String())
	if origin.String() == "" {
		t.Error("origin not recorded")
	}
	if urls := c.UpstreamURLs(); len(urls) != 1 || urls[0] != withSecrets(srv.URL) {
		t.Errorf("UpstreamURLs() = %q, want the configured URL with its credentials", urls)
	}
}

// TestUpstreamRefusalIsNotFound: an upstream refusing a module (a mirror's
// 400 "module host not permitted", 403, 404, 410) means "not here", so the
// chain falls through on ","; credential and rate-limit answers do not.
func TestUpstreamRefusalIsNotFound(t *testing.T) {
	ctx := t.Context()
	ok, _ := proxyAnswering(t, 200, "v1.0.0\n")
	for _, status := range []int{400, 403, 404, 410} {
		refusing, _ := proxyAnswering(t, status, "module host not permitted\n")
		got, err := chainOf(t, refusing.URL+","+ok.URL).List(ctx, "example.com/m")
		if err != nil || len(got) != 1 {
			t.Errorf("%d then 200: List = %v, %v; want the second entry's answer", status, got, err)
		}
		_, err = chainOf(t, refusing.URL).List(ctx, "example.com/m")
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "module host not permitted") {
			t.Errorf("%d: err = %v, want not-found with the upstream's reason", status, err)
		}
	}
	for _, status := range []int{401, 407, 429, 500, 502, 503} {
		failing, _ := proxyAnswering(t, status, "go away\n")
		_, err := chainOf(t, failing.URL+","+ok.URL).List(ctx, "example.com/m")
		var fe *FetchError
		if !errors.As(err, &fe) || fe.Status != status || errors.Is(err, ErrNotFound) {
			t.Errorf("%d: err = %v, want a FetchError that stops the chain", status, err)
		}
	}
}

// TestUpstreamIdleTimeout: headers, then nothing: the fetch ends after the
// idle timeout with a timeout error saying so, long before the total
// deadline; the upstream sees its connection closed.
func TestUpstreamIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	gone := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		io.WriteString(w, "PK\x03\x04")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		gone <- struct{}{}
	}))
	defer srv.Close()
	u := NewUpstream(srv.URL, NewHTTPClient(WithIdleTimeout(idle)))
	// The total timeout is far away: only the idle timeout can end this.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	start := time.Now()
	_, err := u.GoMod(ctx, "example.com/m", "v1.0.0")
	checkIdle(t, "GoMod", err, time.Since(start), idle)
	<-gone

	start = time.Now()
	rc, err := u.Zip(ctx, "example.com/m", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	checkIdle(t, "Zip", err, time.Since(start), idle)
	if n != 4 {
		t.Errorf("read %d bytes before the stall, want 4", n)
	}
	<-gone
}

func checkIdle(t *testing.T, op string, err error, took, idle time.Duration) {
	t.Helper()
	var fe *FetchError
	if !errors.As(err, &fe) || !fe.Timeout || !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("%s: err = %v, want an idle-timeout FetchError", op, err)
	}
	if !strings.Contains(err.Error(), "no data for "+idle.String()) {
		t.Errorf("%s: err = %q, want it to say how long nothing came", op, err)
	}
	if took < idle || took > 20*idle {
		t.Errorf("%s: took %v with an idle timeout of %v", op, took, idle)
	}
}

// TestUpstreamIdleTimeoutDrip: an upstream that sends a byte at intervals
// below the idle timeout is slow, not stalled: the fetch completes although
// it takes longer than the idle timeout in total.
func TestUpstreamIdleTimeoutDrip(t *testing.T) {
	const (
		idle  = time.Second
		every = 100 * time.Millisecond
		bytes = 20 // 2s in total, twice the idle timeout
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(bytes))
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for range bytes {
			// The upstream's own pace: this is the behaviour under test.
			time.Sleep(every)
			w.Write([]byte{'x'})
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	u := NewUpstream(srv.URL, NewHTTPClient(WithIdleTimeout(idle)))
	start := time.Now()
	rc, err := u.Zip(t.Context(), "example.com/m", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil || n != bytes {
		t.Fatalf("read %d bytes, err %v; want %d bytes", n, err, bytes)
	}
	if took := time.Since(start); took < idle {
		t.Fatalf("took %v, less than the idle timeout: the test proves nothing", took)
	}
}
