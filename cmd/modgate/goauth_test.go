package main

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
)

// parseGoauth reads a GOAUTH command's output by the grammar of
// "go help goauth": credential sets of URL lines (https), a blank line,
// header lines ("Name: value"), a blank line. It returns the headers by
// URL.
func parseGoauth(out string) (map[string]http.Header, error) {
	sets := map[string]http.Header{}
	next := func() (string, bool) {
		line, rest, ok := strings.Cut(out, "\n")
		out = rest
		return line, ok
	}
	for out != "" {
		var urls []string
		for {
			line, ok := next()
			if !ok {
				return nil, errors.New("no blank line after the URLs")
			}
			if line == "" {
				break
			}
			if !strings.HasPrefix(line, "https://") {
				return nil, fmt.Errorf("URL line %q does not start with https://", line)
			}
			if _, err := url.ParseRequestURI(line); err != nil {
				return nil, err
			}
			urls = append(urls, line)
		}
		if len(urls) == 0 {
			return nil, errors.New("a credential set without URLs")
		}
		h := http.Header{}
		for {
			line, ok := next()
			if !ok {
				return nil, errors.New("no blank line after the headers")
			}
			if line == "" {
				break
			}
			name, value, ok := strings.Cut(line, ": ")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return nil, fmt.Errorf("bad header line %q", line)
			}
			h.Add(name, value)
		}
		for _, u := range urls {
			sets[u] = h
		}
	}
	return sets, nil
}

// drainCheck is a stdin that records whether it was read to the end.
type drainCheck struct {
	r       *strings.Reader
	drained bool
}

func (d *drainCheck) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil {
		d.drained = true
	}
	return n, err
}

func TestGoauthOutput(t *testing.T) {
	const token = "mgt_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
	home := t.TempDir()
	t.Setenv("HOME", home)
	os.MkdirAll(filepath.Join(home, ".config", "modgate"), 0o700)
	file := filepath.Join(home, ".config", "modgate", "token")
	os.WriteFile(file, []byte("  "+token+"\n\n"), 0o600)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "MODGATE_TOKEN" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name   string
		args   []string
		getenv func(string) string
		stdin  string
		urls   []string
		token  string
	}{
		{"file", []string{"--url", "https://modgate.corp.example.com/", "--token-file", file}, env(""), "", []string{"https://modgate.corp.example.com"}, token},
		{"home", []string{"--url", "https://modgate.corp.example.com", "--token-file", "~/.config/modgate/token"}, env(""), "", []string{"https://modgate.corp.example.com"}, token},
		{"file wins", []string{"--url", "https://m.example.com:8443/go/", "--token-file", file}, env("mgt_other"), "", []string{"https://m.example.com:8443/go"}, token},
		{"env", []string{"--url", "https://a.example.com,https://b.example.com", "--url", "https://c.example.com"}, env(" mgt_env\n"), "", []string{"https://a.example.com", "https://b.example.com", "https://c.example.com"}, "mgt_env"},
		{"retry", []string{"--url", "https://a.example.com", "https://a.example.com/x/@v/list"}, env("mgt_env"),
			"HTTP/1.1 401 Unauthorized\nWww-Authenticate: Basic realm=\"modgate\"\n\n", []string{"https://a.example.com"}, "mgt_env"},
	} {
		stdin := &drainCheck{r: strings.NewReader(tc.stdin)}
		var out, stderr bytes.Buffer
		if err := goauthCmd(tc.args, stdin, &out, &stderr, tc.getenv); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		sets, err := parseGoauth(out.String())
		if err != nil {
			t.Errorf("%s: output %q does not parse: %v", tc.name, out.String(), err)
			continue
		}
		if len(sets) != len(tc.urls) {
			t.Errorf("%s: output %q, want sets for %q", tc.name, out.String(), tc.urls)
		}
		for _, u := range tc.urls {
			if h := sets[u]; len(h) != 1 || h.Get("Authorization") != "Bearer "+tc.token {
				t.Errorf("%s: headers for %s = %v, want only Authorization: Bearer %s", tc.name, u, h, tc.token)
			}
		}
		if tc.stdin != "" && !stdin.drained {
			t.Errorf("%s: stdin not read", tc.name)
		}
	}

	os.WriteFile(filepath.Join(home, "two"), []byte("mgt_a mgt_b\n"), 0o600)
	os.WriteFile(filepath.Join(home, "empty"), []byte(" \n"), 0o600)
	for _, tc := range []struct {
		args       []string
		env, wantE string
	}{
		{[]string{"--url", "https://a.example.com"}, "", "no token: give --token-file FILE or set MODGATE_TOKEN"},
		{[]string{"--url", "https://a.example.com", "--token-file", filepath.Join(home, "missing")}, token, "reading the token"},
		{[]string{"--url", "https://a.example.com", "--token-file", filepath.Join(home, "empty")}, token, "is empty"},
		{[]string{"--url", "https://a.example.com", "--token-file", filepath.Join(home, "two")}, "", "should hold just the token"},
		{[]string{"--token-file", file}, "", "--url is required"},
		{[]string{"--url", "http://a.example.com"}, token, "not an https URL"},
		{[]string{"--url", "https://me:pw@a.example.com"}, token, "user name or password"},
		{[]string{"--url", "https://a.example.com/?x=1"}, token, "query"},
		{[]string{"--url", "a.example.com"}, token, "not a URL"},
	} {
		var out, stderr bytes.Buffer
		err := goauthCmd(tc.args, strings.NewReader(""), &out, &stderr, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.wantE) || out.Len() != 0 {
			t.Errorf("goauth %q: err %v, stdout %q; want %q and no output", tc.args, err, out.String(), tc.wantE)
		}
		if err != nil && (strings.Contains(err.Error(), "mgt_") || strings.Contains(err.Error(), "pw")) {
			t.Errorf("goauth %q: error quotes a credential: %v", tc.args, err)
		}
	}
}

// TestGoauthWithGoCommand: the real go command, with GOAUTH running
// modgate goauth, sends the token to a TLS GOPROXY that demands it; with a
// wrong token it fails on the 401 after asking the helper again.
func TestGoauthWithGoCommand(t *testing.T) {
	const token = "mgt_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
	var good, bad atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			bad.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="modgate"`)
			http.Error(w, "modgate: check the token", http.StatusUnauthorized)
			return
		}
		good.Add(1)
		switch r.URL.Path {
		case "/example.com/m/@v/list":
			fmt.Fprint(w, "v1.0.0\nv1.1.0\n")
			return
		case "/example.com/m/@v/v1.1.0.info":
			fmt.Fprint(w, `{"Version":"v1.1.0","Time":"2024-01-02T03:04:05Z"}`)
			return
		case "/example.com/m/@v/v1.1.0.mod":
			fmt.Fprint(w, "module example.com/m\n")
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	tokenFile := filepath.Join(dir, "token")
	bin := testenv.Binary(t)

	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"right token", token, true},
		{"wrong token", "mgt_wrong", false},
	} {
		good.Store(0)
		bad.Store(0)
		os.WriteFile(tokenFile, []byte(tc.token+"\n"), 0o600)
		env := append(testenv.GoEnv(dir, srv.URL),
			"GOSUMDB=off", "SSL_CERT_FILE="+caFile, "NETRC="+filepath.Join(dir, "no-netrc"),
			"GOAUTH="+bin+" goauth --url "+srv.URL+" --token-file "+tokenFile)
		out, err := testenv.Go(t, dir, env, "list", "-m", "-versions", "example.com/m")
		switch {
		case tc.ok && (err != nil || !strings.Contains(out, "example.com/m v1.0.0 v1.1.0")):
			t.Errorf("%s: go list = %v\n%s", tc.name, err, out)
		case tc.ok && bad.Load() != 0:
			t.Errorf("%s: %d requests without the token", tc.name, bad.Load())
		case !tc.ok && (err == nil || !strings.Contains(out, "401")):
			t.Errorf("%s: go list = %v\n%s; want a 401 failure", tc.name, err, out)
		case !tc.ok && bad.Load() < 2:
			t.Errorf("%s: %d refused requests, want the first and the retry after asking GOAUTH again", tc.name, bad.Load())
		}
	}
}
