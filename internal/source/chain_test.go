package source

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// proxyAnswering is a real HTTP server that answers every request with status
// and body, counting requests.
func proxyAnswering(t *testing.T, status int, body string) (*httptest.Server, *int) {
	n := new(int)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*n++
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, n
}

func chainOf(t *testing.T, list string) *Chain {
	t.Helper()
	c, err := ParseList(list, func(base string) Source { return NewUpstream(base, NewHTTPClient()) })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChainFallThrough(t *testing.T) {
	ctx := context.Background()
	ok, okN := proxyAnswering(t, 200, "v1.0.0\nv1.1.0\n")
	missing, _ := proxyAnswering(t, 404, "not here")
	forbidden, _ := proxyAnswering(t, 403, "This module version is not available.")
	broken, _ := proxyAnswering(t, 500, "boom")

	// "," falls through on not found, including a 403 "not available".
	got, err := chainOf(t, missing.URL+","+forbidden.URL+","+ok.URL).List(ctx, "example.com/m")
	if err != nil || strings.Join(got, " ") != "v1.0.0 v1.1.0" {
		t.Fatalf("List = %v, %v", got, err)
	}
	// "," stops on other errors.
	_, err = chainOf(t, broken.URL+","+ok.URL).List(ctx, "example.com/m")
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Status != 500 || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want the 500 from the first entry", err)
	}
	// "|" falls through on any error.
	before := *okN
	if _, err := chainOf(t, broken.URL+"|"+ok.URL).List(ctx, "example.com/m"); err != nil || *okN != before+1 {
		t.Fatalf("err = %v, second entry asked %d times", err, *okN-before)
	}
	// All not found: one not-found error carrying every reason.
	_, err = chainOf(t, missing.URL+","+forbidden.URL).List(ctx, "example.com/m")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not here") || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("err = %v", err)
	}
	// off stops the walk, as it stops the go command: nothing past it is
	// asked, and the not-found reasons before it are kept.
	before = *okN
	_, err = chainOf(t, missing.URL+",off,"+ok.URL).List(ctx, "example.com/m")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not here") || !strings.Contains(err.Error(), "upstream=off") || *okN != before {
		t.Fatalf("past off: err = %v, entry past off asked %d times", err, *okN-before)
	}
	// off and direct answer not found with a reason.
	_, err = chainOf(t, "off").List(ctx, "example.com/m")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "off") {
		t.Fatalf("off: %v", err)
	}
	_, err = chainOf(t, "direct").Info(ctx, "example.com/m", "v1.0.0")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("direct: %v", err)
	}
}

func TestChainUnreachable(t *testing.T) {
	dead := refusedURL(t)
	_, err := chainOf(t, dead).GoMod(context.Background(), "example.com/m", "v1.0.0")
	var fe *FetchError
	if !errors.As(err, &fe) || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), dead) {
		t.Fatalf("err = %v, want a FetchError naming %s", err, dead)
	}
}

func TestParseListErrors(t *testing.T) {
	for _, list := range []string{"", ",", "ftp://x", "example", "/srv/mods", "https://", "https://https://h"} {
		if _, err := ParseList(list, func(string) Source { return off{} }); err == nil {
			t.Errorf("ParseList(%q) succeeded", list)
		}
	}
	// A host without a scheme is an https proxy, as for the go command
	// (the one parser, package proxylist, reads lists for config too).
	if got := chainOf(t, "example.com/mirror/|http://a.example").String(); got != "https://example.com/mirror|http://a.example" {
		t.Errorf("bare host: String() = %q", got)
	}
	// A doubled scheme puts the credentials where URL parsing does not
	// see them: rejected, and not shown in the error.
	_, err := ParseList("https://https://user:pw@h", func(string) Source { return off{} })
	if err == nil || strings.Contains(err.Error(), "user") || strings.Contains(err.Error(), "pw") {
		t.Errorf("doubled scheme: err = %v", err)
	}
	c := chainOf(t, "https://a.example|https://b.example,direct")
	if got := c.String(); got != "https://a.example|https://b.example,direct" {
		t.Errorf("String() = %q", got)
	}
}

func TestZipSizeLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "600000000")
		w.WriteHeader(200)
	}))
	defer srv.Close()
	_, err := NewUpstream(srv.URL, NewHTTPClient()).Zip(context.Background(), "example.com/m", "v1.0.0")
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestEscapedRequests(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath()
		io.WriteString(w, `{"Version":"v1.0.0-RC1"}`)
	}))
	defer srv.Close()
	if _, err := NewUpstream(srv.URL, NewHTTPClient()).Info(context.Background(), "github.com/Foo/Bar", "v1.0.0-RC1"); err != nil {
		t.Fatal(err)
	}
	if got != "/github.com/%21foo/%21bar/@v/v1.0.0-%21r%21c1.info" && got != "/github.com/!foo/!bar/@v/v1.0.0-!r!c1.info" {
		t.Fatalf("requested %q", got)
	}
}

// TestChainDirect: a "direct" entry is answered by the source given for it,
// after the proxies before it said not found, and still reads "direct".
func TestChainDirect(t *testing.T) {
	ctx := context.Background()
	missing, _ := proxyAnswering(t, 404, "not here")
	vcs, vcsN := proxyAnswering(t, 200, "v1.0.0\n")
	newUp := func(base string) Source { return NewUpstream(base, NewHTTPClient()) }
	c, err := ParseListDirect(missing.URL+",direct", newUp, NewUpstream(vcs.URL, NewHTTPClient()))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.List(ctx, "example.com/m"); err != nil || len(got) != 1 || got[0] != "v1.0.0" || *vcsN != 1 {
		t.Fatalf("List = %v, %v (direct asked %d times); want the direct source's answer", got, err, *vcsN)
	}
	if got := c.String(); got != missing.URL+",direct" {
		t.Errorf("String() = %q", got)
	}
	// Without a direct source, "direct" says it is not configured.
	_, err = chainOf(t, missing.URL+",direct").List(ctx, "example.com/m")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("unconfigured direct: err = %v", err)
	}
}
