package main

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinary()
	os.Exit(code)
}

func TestServeTLS(t *testing.T) {
	ca := testenv.NewCA(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1")
	pool := ca.Pool
	up := testenv.NewUpstream(t, t.TempDir())
	p := testenv.Start(t, "--data-dir", t.TempDir(), "--upstream", up.URL(), "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(p.URL, "https://") {
		t.Fatalf("modgate announced %s, want https", p.URL)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(p.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("GET /readyz over TLS: %d %s", resp.StatusCode, body)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	bin := testenv.Binary(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "modgate.yaml")
	os.WriteFile(cfgFile, []byte("listn: \":1\"\n"), 0o644)
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--config", cfgFile}, nil, `unknown key "listn"`},
		{[]string{"--list-ttl", "5x"}, nil, "--list-ttl"},
		{nil, []string{"MODGATE_NEGATIVE_TTL=-1s"}, "MODGATE_NEGATIVE_TTL"},
		{nil, []string{"MODGATE_LISTN=:1"}, "MODGATE_LISTN"},
		{[]string{"--upstream", "ftp://x"}, nil, "upstream"},
		{[]string{"--sumdb", "nosuch.example.com"}, nil, "sumdb"},
		{[]string{"--tls-cert", filepath.Join(dir, "missing.crt")}, nil, "tls-cert"},
	} {
		cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--upstream", "http://127.0.0.1:1"}, tc.args...)...)
		if tc.args != nil && tc.args[0] == "--upstream" {
			cmd.Args = append([]string{bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir}, tc.args...)
		}
		cmd.Env = append(os.Environ(), tc.env...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("%v %v: modgate started instead of failing", tc.args, tc.env)
		}
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v %v: err=%v, output %q; want a failure naming %q", tc.args, tc.env, err, out, tc.want)
		}
	}
}

// TestJSONLogLines: in JSON mode (the default) every line modgate writes
// to stderr is a JSON object, from start-up to shutdown, so a log shipper
// can read them all. The address is in the start-up line's message.
func TestJSONLogLines(t *testing.T) {
	up := testenv.NewUpstream(t, t.TempDir())
	p := testenv.Start(t, "--data-dir", t.TempDir(), "--upstream", up.URL(), "--log-level", "debug")
	for _, path := range []string{"/healthz", "/example.com/m/@v/list", "/example.com/m/@v/bad!.info", "/nope"} {
		resp, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	p.Stop(t)
	lines := strings.Split(strings.TrimSpace(p.Logs()), "\n")
	if len(lines) < 5 {
		t.Fatalf("only %d log lines for a start, 5 requests and a stop:\n%s", len(lines), p.Logs())
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line is not JSON (%v): %s", err, line)
		}
	}
}
