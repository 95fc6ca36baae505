package gitauth

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// tricky is a netrc file with every shape the parser must get right.
const tricky = `
machine no-login.example
password p0

machine api.example.com
  login alice
  password pw1

machine login-only.example
  login bob

machine lines.example
login carol
password pw2

machine oneline.example login dave password pw3
machine api.example.com login eve password later-entry-for-the-same-host

machine macro.example macdef init
  login nobody
  password skipped-because-inside-the-macro

machine macro-same-line.example macdef m login frank password pw4
  cd /pub
  password still-in-the-macro

machine after-macro.example login grace password pw5 account ignored-account
machine crlf.example login heidi password pw6` + "\r" + `
default
login anonymous
password anonymous-must-never-be-used

machine after-default.example login ivan password too-late
`

func TestParseNetrc(t *testing.T) {
	got := ParseNetrc(tricky)
	want := []NetrcEntry{
		{"api.example.com", "alice", "pw1"},
		{"lines.example", "carol", "pw2"},
		{"oneline.example", "dave", "pw3"},
		{"api.example.com", "eve", "later-entry-for-the-same-host"},
		{"macro-same-line.example", "frank", "pw4"},
		{"after-macro.example", "grace", "pw5"},
		{"crlf.example", "heidi", "pw6"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseNetrc:\n got %q\nwant %q", got, want)
	}
	for _, tc := range []struct{ name, data string }{
		{"empty", ""},
		{"keyword without value", "machine"},
		{"only default", "default login a password b"},
		{"incomplete at end", "machine x.example login a"},
	} {
		if got := ParseNetrc(tc.data); len(got) != 0 {
			t.Errorf("%s: ParseNetrc = %q, want nothing", tc.name, got)
		}
	}
}

// TestParseNetrcLikeGoCommand runs the real go command against an HTTPS
// GOPROXY on 127.0.0.1 with netrc files and checks that it sends exactly
// the credentials this package picks for that host: same parser, same
// choice among duplicates.
func TestParseNetrcLikeGoCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		mu.Lock()
		if ok {
			seen = append(seen, user+":"+pass)
		} else {
			seen = append(seen, "")
		}
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/@v/list") {
			w.Write([]byte("v1.0.0\n"))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	machine := strings.TrimPrefix(srv.URL, "https://") // "127.0.0.1:PORT"

	for _, tc := range []struct{ name, netrc string }{
		{"tricky file", strings.ReplaceAll(tricky, "api.example.com", machine)},
		{"first of two wins", "machine " + machine + " login first password one\nmachine " + machine + " login second password two\n"},
		{"inside a macro", "machine other.example macdef x\nmachine " + machine + " login m password in-macro\n\nmachine " + machine + " login after password blank-line\n"},
		{"after default", "default\nmachine " + machine + " login late password never\n"},
		{"split over lines", "machine " + machine + "\nlogin split\npassword over-lines\n"},
		{"password first", "machine " + machine + " password reversed login order\n"},
		{"machine resets", "machine " + machine + " login lost\nmachine other.example password x\npassword orphan\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			netrc := filepath.Join(t.TempDir(), "netrc")
			if err := os.WriteFile(netrc, []byte(tc.netrc), 0o600); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			seen = nil
			mu.Unlock()
			cmd := exec.Command(gobin, "list", "-m", "-versions", "example.com/netrc/probe")
			cmd.Dir = t.TempDir()
			cmd.Env = []string{
				"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"),
				"NETRC=" + netrc, "SSL_CERT_FILE=" + caFile,
				"GOPROXY=" + srv.URL, "GOSUMDB=off", "GOFLAGS=", "GOENV=off", "GOTOOLCHAIN=local",
				"GOPRIVATE=", "GONOPROXY=", "GOINSECURE=", "GO111MODULE=on",
				"GOPATH=" + t.TempDir(), "GOMODCACHE=" + t.TempDir(), "GOCACHE=" + t.TempDir(),
			}
			// Only the first request matters (it carries the netrc
			// credentials); how the command ends does not.
			out, _ := cmd.CombinedOutput()
			mu.Lock()
			got := append([]string(nil), seen...)
			mu.Unlock()
			if len(got) == 0 {
				t.Fatalf("the go command sent no request:\n%s", out)
			}
			want := ""
			for _, e := range ParseNetrc(tc.netrc) {
				if e.Machine == machine {
					want = e.Login + ":" + e.Password
					break
				}
			}
			if got[0] != want {
				t.Errorf("the go command sent %q, ParseNetrc picks %q", got[0], want)
			}
		})
	}
}

func TestNetrcPermissionWarning(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "netrc")
	if err := os.WriteFile(path, []byte("machine h.example login u password secret-pw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	h, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := h.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], path) || !strings.Contains(w[0], "chmod 600") || strings.Contains(w[0], "secret-pw") {
		t.Fatalf("Warnings = %q, want one naming the file and chmod 600", w)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if w := h.Warnings(); len(w) != 0 {
		t.Fatalf("Warnings after chmod 600 = %q, want none", w)
	}
	// A Kubernetes Secret mounted for the pod's group: 0440, no warning;
	// group-writable is warned about.
	for mode, warn := range map[os.FileMode]bool{0o440: false, 0o640: false, 0o660: true, 0o604: true} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if err := h.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := len(h.Warnings()) == 1; got != warn {
			t.Errorf("mode %#o: warnings %q, want a warning: %v", mode, h.Warnings(), warn)
		}
	}
}

func TestDefaultNetrc(t *testing.T) {
	t.Setenv("NETRC", "/some/where/netrc")
	if got := DefaultNetrc(); got != "/some/where/netrc" {
		t.Errorf("with $NETRC: %q", got)
	}
	t.Setenv("NETRC", "")
	home := t.TempDir()
	t.Setenv("HOME", home)
	if got := DefaultNetrc(); got != filepath.Join(home, ".netrc") {
		t.Errorf("with $HOME: %q", got)
	}
	t.Setenv("HOME", "")
	if got := DefaultNetrc(); got != "" {
		t.Errorf("without a home: %q, want \"\"", got)
	}
}

func FuzzParseNetrc(f *testing.F) {
	f.Add(tricky)
	f.Add("machine a.example login u password p\n")
	f.Add("macdef x\n\n\nmachine b login c password d default")
	f.Add("default\n")
	f.Fuzz(func(t *testing.T, data string) {
		for _, e := range ParseNetrc(data) {
			for _, v := range []string{e.Machine, e.Login, e.Password} {
				if v == "" || strings.ContainsAny(v, " \t\n\r\v\f") || !strings.Contains(data, v) {
					t.Fatalf("entry %q: field %q empty, with space, or not from the input", e, v)
				}
			}
		}
		// Loading the same bytes as a file: whatever it says, it never
		// quotes a password.
		path := filepath.Join(t.TempDir(), "netrc")
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		h, err := Load(path, nil)
		var said []string
		if err != nil {
			said = append(said, err.Error())
		} else {
			said = append(said, h.Warnings()...)
		}
		for _, e := range ParseNetrc(data) {
			for _, s := range said {
				if strings.Contains(s, e.Password) && !strings.Contains(e.Machine, e.Password) && !strings.Contains(path, e.Password) && !strings.Contains(fixedText, e.Password) {
					t.Fatalf("%q quotes the password %q", s, e.Password)
				}
			}
		}
	})
}

// fixedText is the wording of every message about a netrc entry; a
// password that happens to be part of it proves nothing.
const fixedText = `netrc file : machine "" skipped: not a host name (letters, digits, dots, dashes; no scheme, user or path) an IP address, nor host:port brackets hold an IPv6 address only malformed bracketed address port must be a number from 1 to 65535 empty port empty host name the user name or password contains a control character (a line break?) the user name contains a colon, which basic auth cannot carry`
