package setup

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var testConfig = Config{Private: "*.corp.example.com", NoSumDB: "example.net/x", SumDB: "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8 https://u:pw@sumdb.example", Tokens: true, Anonymous: "golang.org/x/*", Version: "v1.2.3"}

func get(t *testing.T, h http.Handler, method, path, host string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	r.Host = host
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestSetupJSON(t *testing.T) {
	h := Handler(testConfig)
	for _, c := range []struct {
		host, proto string
		tls         bool
		want        string
	}{
		{"modgate.example.test:8080", "", false, "http://modgate.example.test:8080"},
		{"modgate.example.test", "https", false, "https://modgate.example.test"},
		{"modgate.example.test", "gopher", false, "http://modgate.example.test"},
		{"10.1.2.3:443", "http", true, "https://10.1.2.3:443"},
		{"[::1]:8080", "", false, "http://[::1]:8080"},
	} {
		r := httptest.NewRequest("GET", "/setup.json", nil)
		r.Host = c.host
		if c.proto != "" {
			r.Header.Set("X-Forwarded-Proto", c.proto)
		}
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var in Info
		if err := json.Unmarshal(w.Body.Bytes(), &in); err != nil || w.Code != 200 {
			t.Fatalf("%d %v: %s", w.Code, err, w.Body)
		}
		want := Info{Modgate: true, Version: "v1.2.3", URL: c.want, Private: "*.corp.example.com", NoSumDB: "example.net/x", SumDB: "sum.golang.org", Tokens: true, Anonymous: "golang.org/x/*"}
		if in != want {
			t.Errorf("Host %q: got %+v, want %+v", c.host, in, want)
		}
	}
	if body := get(t, h, "GET", "/setup.json", "h", nil).Body.String(); strings.Contains(body, "pw@") || strings.Contains(body, "Ac4zctda") {
		t.Errorf("setup.json shows the checksum database's key or URL: %s", body)
	}
}

var hostileHosts = []string{
	"evil.example'; rm -rf ~; '",
	`evil.example"><script>alert(1)</script>`,
	"evil.example:80$(id)",
	"evil.example\n",
	"user@evil.example",
	"evil.example/path",
	"[::1]x",
	"::1",
	"evil.example:99999",
	"",
	"-evil.example",
	"evil.example:8080 x",
	"%24(id)",
}

func TestHostileHost(t *testing.T) {
	h := Handler(testConfig)
	for _, host := range hostileHosts {
		var in Info
		json.Unmarshal(get(t, h, "GET", "/setup.json", host, nil).Body.Bytes(), &in)
		if in.URL != "" || in.URLError == "" {
			t.Errorf("Host %q: url %q, url_error %q", host, in.URL, in.URLError)
		}
		page := get(t, h, "GET", "/setup", host, nil).Body.String()
		if strings.Contains(page, "<script") || strings.Contains(page, "go env -w") || !strings.Contains(page, "Host header") {
			t.Errorf("Host %q: page:\n%s", host, page)
		}
		sh := get(t, h, "GET", "/setup.sh", host, nil).Body.String()
		out, err := exec.Command("sh", "-c", sh).CombinedOutput()
		if err == nil || strings.Contains(sh, "go env") || !strings.Contains(string(out), "Host header") {
			t.Errorf("Host %q: setup.sh ran (%v): %s\n%s", host, err, out, sh)
		}
	}
}

func TestRoutes(t *testing.T) {
	h := Handler(testConfig)
	for _, c := range []struct {
		method, path string
		code         int
		ctype, has   string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `href="/setup"`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/setup", 200, "text/html; charset=utf-8", "go env -w GOPROXY=http://modgate.example.test:8080"},
		{"GET", "/setup.sh", 200, "text/plain; charset=utf-8", "go env -w GOPROXY=http://modgate.example.test:8080"},
		{"GET", "/setup.json", 200, "application/json", `"modgate": true`},
		{"POST", "/setup", 405, "", ""},
		{"PUT", "/setup.json", 405, "", ""},
		{"GET", "/other", 404, "", ""},
	} {
		w := get(t, h, c.method, c.path, "modgate.example.test:8080", nil)
		if w.Code != c.code || c.ctype != "" && w.Header().Get("Content-Type") != c.ctype || !strings.Contains(w.Body.String(), c.has) {
			t.Errorf("%s %s: %d %q\n%s", c.method, c.path, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		if c.code == 405 && w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, w.Header().Get("Allow"))
		}
	}
	page := get(t, h, "GET", "/setup", "modgate.example.test:8080", nil).Body.String()
	for _, want := range []string{
		"machine modgate.example.test:8080 login any password",
		"go env -w &#39;GOAUTH=modgate goauth --url http://modgate.example.test:8080 --token-file ~/.config/modgate/token&#39;",
		"ENV GONOSUMDB=&#34;*.corp.example.com&#34;",
		"env:\n  GOPROXY: &#34;http://modgate.example.test:8080&#34;",
		"variables:\n  GOPROXY:",
		"$env:GOPROXY = &#39;http://modgate.example.test:8080&#39;",
		"set -gx GONOSUMDB",
		"golang.org/x/*",
		"curl -fsSL http://modgate.example.test:8080/setup.sh | sh",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/setup lacks %q", want)
		}
	}
}

// TestSetupScript pipes /setup.sh into sh with a fake go command on PATH
// that records its arguments, one line per argument, a blank line per run.
func TestSetupScript(t *testing.T) {
	srv := httptest.NewServer(Handler(Config{Private: "*.corp.example.com,it's/$x", Version: "v1"}))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/setup.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	fake := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> " + log + "; done\necho >> " + log + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh")
	cmd.Stdin = res.Body
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got, _ := os.ReadFile(log)
	want := "env\n-w\nGOPROXY=" + srv.URL + "\n\nenv\n-w\nGONOSUMDB=*.corp.example.com,it's/$x\n\n"
	if string(got) != want {
		t.Errorf("go ran with\n%s\nwant\n%s", got, want)
	}

	// Without go on PATH, the script says so and fails.
	cmd = exec.Command("/bin/sh", "-c", get(t, Handler(Config{}), "GET", "/setup.sh", "h", nil).Body.String())
	cmd.Env = []string{"PATH=" + t.TempDir() + ":/usr/bin:/bin"}
	if _, err := exec.LookPath("/usr/bin/go"); err == nil {
		t.Skip("a go command in /usr/bin")
	}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not on PATH") {
		t.Errorf("without go: %v\n%s", err, out)
	}
}

func TestValidHost(t *testing.T) {
	for _, h := range []string{"a", "a.b", "A-1.b_c:1", "127.0.0.1", "127.0.0.1:65535", "[::1]", "[2001:db8::1]:443"} {
		if _, ok := validHost(h); !ok {
			t.Errorf("validHost(%q) = false", h)
		}
	}
	for _, h := range hostileHosts {
		if _, ok := validHost(h); ok {
			t.Errorf("validHost(%q) = true", h)
		}
	}
}
