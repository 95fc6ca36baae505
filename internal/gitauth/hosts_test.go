package gitauth

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func writeFile(t *testing.T, name, content string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHostsFor(t *testing.T) {
	netrc := writeFile(t, "netrc", `
machine git.corp.example.com login netrc-user password netrc-pw
machine git.corp.example.com login second password ignored
machine Mixed.Example.COM login mixed password mixed-pw
machine ports.example:8443 login port-user password port-pw
machine ports.example login any-port password any-pw
machine configured.example login netrc-loses password netrc-loses
machine https://not-a-host.example/x login u password url-pw
`, 0o600)
	h, err := Load(netrc, map[string]Credentials{
		"configured.example":   {Header: "PRIVATE-TOKEN: glpat-config"},
		"Only-Config.example":  {Username: "oauth2", Password: "cfg-token"},
		"ports.example:9443":   {Password: "cfg-port-pw"},
		"[::1]:8443":           {Password: "v6-pw"},
		"10.1.2.3":             {Password: "v4-pw"},
		"scm.example.internal": {Username: "bot", Password: "pw"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		want string // the password or header; "" for none
	}{
		{"git.corp.example.com", "netrc-pw"},
		{"GIT.corp.example.com", "netrc-pw"},
		{"git.corp.example.com:443", "netrc-pw"},
		{"git.corp.example.com.evil.com", ""},
		{"evil.git.corp.example.com", ""},
		{"corp.example.com", ""},
		{"mixed.example.com", "mixed-pw"},
		{"configured.example", "PRIVATE-TOKEN: glpat-config"},
		{"only-config.example", "cfg-token"},
		{"ports.example:8443", "port-pw"},
		{"ports.example:9443", "cfg-port-pw"},
		{"ports.example:1234", "any-pw"},
		{"ports.example", "any-pw"},
		{"[::1]:8443", "v6-pw"},
		{"[::1]:8444", ""},
		{"10.1.2.3:8080", "v4-pw"},
		{"not-a-host.example", ""},
		{"", ""},
		{"user@git.corp.example.com", ""},
		{"git.corp.example.com/path", ""},
	} {
		c, ok := h.For(tc.host)
		got := c.Password
		if c.Header != "" {
			got = c.Header
		}
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("For(%q) = %q, %v; want %q", tc.host, got, ok, tc.want)
		}
	}
	if w := h.Warnings(); len(w) != 1 || !strings.Contains(w[0], "https://not-a-host.example/x") || strings.Contains(w[0], "url-pw") {
		t.Errorf("Warnings = %q, want one about the URL-shaped machine, without its password", w)
	}
	var nilHosts *Hosts
	if _, ok := nilHosts.For("git.corp.example.com"); ok {
		t.Error("a nil *Hosts gave credentials")
	}
}

func TestLoadNetrcPaths(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-netrc")

	// Explicitly given: it must exist.
	_, err := Load(missing, nil)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing explicit file) = %v, want a not-exist error naming it", err)
	}

	// The default place ($NETRC, then ~/.netrc): absence is normal.
	t.Setenv("NETRC", missing)
	h, err := Load("", map[string]Credentials{"a.example": {Password: "x"}})
	if err != nil {
		t.Fatalf("Load with a missing default netrc: %v", err)
	}
	if h.NetrcPath() != missing {
		t.Errorf("NetrcPath = %q, want %q", h.NetrcPath(), missing)
	}
	if _, ok := h.For("a.example"); !ok {
		t.Error("configured entry lost")
	}

	// Off: not even the default is read.
	t.Setenv("NETRC", writeFile(t, "netrc", "machine b.example login u password p\n", 0o600))
	h, err = Load(NetrcOff, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.For("b.example"); ok || h.NetrcPath() != "" {
		t.Error("NetrcOff read a netrc file")
	}
	h, err = Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := h.For("b.example"); !ok || c.Username != "u" {
		t.Error("the default netrc ($NETRC) was not read")
	}

	// Not a file, too large.
	if _, err := Load(t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(directory) = %v", err)
	}
	big := writeFile(t, "big", strings.Repeat("# padding\n", maxNetrcSize/10+1), 0o600)
	if _, err := Load(big, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big file) = %v", err)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	known := filepath.Join(dir, "known_hosts")
	looseKey := filepath.Join(dir, "loose_key")
	for path, perm := range map[string]os.FileMode{key: 0o600, known: 0o644, looseKey: 0o644} {
		if err := os.WriteFile(path, []byte("x\n"), perm); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, perm)
	}
	const secret = "s3cr3t-VALUE"
	for _, tc := range []struct {
		name string
		host string
		c    Credentials
		want string
	}{
		{"key without known_hosts", "h.example", Credentials{SSHKeyFile: key}, "known_hosts"},
		{"known_hosts without key", "h.example", Credentials{KnownHostsFile: known}, "ssh key"},
		{"missing key", "h.example", Credentials{SSHKeyFile: key + ".nope", KnownHostsFile: known}, "no such file"},
		{"loose key", "h.example", Credentials{SSHKeyFile: looseKey, KnownHostsFile: known}, "chmod 600"},
		{"header without colon", "h.example", Credentials{Header: secret}, "Name: value"},
		{"header name with space", "h.example", Credentials{Header: "Private Token: " + secret}, "Name: value"},
		{"header with CRLF", "h.example", Credentials{Header: "X-Token: " + secret + "\r\nX-Evil: 1"}, "one line"},
		{"header empty value", "h.example", Credentials{Header: "X-Token:  "}, "empty"},
		{"header framing", "h.example", Credentials{Header: "Host: " + secret}, "cannot be set"},
		{"two authorizations", "h.example", Credentials{Username: "u", Password: secret, Header: "Authorization: Bearer " + secret}, "Authorization"},
		{"password with newline", "h.example", Credentials{Username: "u", Password: secret + "\nhost=evil.example"}, "control character"},
		{"user with colon", "h.example", Credentials{Username: "u:" + secret}, "colon"},
		{"empty entry", "h.example", Credentials{}, "empty"},
		{"URL as host", "https://h.example", Credentials{Password: secret}, "not a host name"},
		{"host with path", "h.example/group", Credentials{Password: secret}, "not a host name"},
		{"user in host", "user@h.example", Credentials{Password: secret}, "not a host name"},
		{"bad port", "h.example:0", Credentials{Password: secret}, "port"},
		{"empty port", "h.example:", Credentials{Password: secret}, "port"},
		{"empty host", "", Credentials{Password: secret}, "empty host"},
	} {
		_, err := Load(NetrcOff, map[string]Credentials{tc.host: tc.c})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Load = %v, want an error about %q", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("%s: error %q shows the secret or is not one line", tc.name, err)
		}
	}
	if _, err := Load(NetrcOff, map[string]Credentials{"H.example": {Password: "a"}, "h.EXAMPLE": {Password: "b"}}); err == nil {
		t.Error("two entries for one host (different case) accepted")
	}
	h, err := Load(NetrcOff, map[string]Credentials{"h.example": {SSHKeyFile: key, KnownHostsFile: known}})
	if err != nil {
		t.Fatalf("valid ssh credentials: %v", err)
	}
	if c, _ := h.For("h.example"); c.SSHKeyFile != key {
		t.Errorf("For = %v", c)
	}
}

func TestCredentialsStringAndRequest(t *testing.T) {
	c := Credentials{Username: "token-as-user", Password: "pw-secret", Header: "private-token: glpat-secret", SSHKeyFile: "/k", KnownHostsFile: "/kh"}
	s := c.String()
	for _, secret := range []string{"token-as-user", "pw-secret", "glpat-secret", "private-token"} {
		if strings.Contains(s, secret) {
			t.Errorf("String() = %q shows %q", s, secret)
		}
	}
	if !strings.Contains(s, "basic auth") || !strings.Contains(s, "/k") {
		t.Errorf("String() = %q", s)
	}
	if (Credentials{}).String() != "no credentials" || !(Credentials{}).IsZero() || c.IsZero() {
		t.Error("zero Credentials")
	}
	req, _ := http.NewRequest("GET", "https://h.example/", nil)
	c.AddTo(req)
	if u, p, ok := req.BasicAuth(); !ok || u != "token-as-user" || p != "pw-secret" {
		t.Errorf("basic auth = %q %q %v", u, p, ok)
	}
	if got := req.Header.Get("Private-Token"); got != "glpat-secret" {
		t.Errorf("header = %q", got)
	}
}

// TestHostsConcurrent reloads while others look up; run with -race.
func TestHostsConcurrent(t *testing.T) {
	netrc := writeFile(t, "netrc", "machine a.example login u password p\n", 0o600)
	h, err := Load(netrc, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if i%4 == 0 {
					if err := h.Reload(); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if c, ok := h.For("a.example"); !ok || c.Password != "p" {
					t.Errorf("For = %v, %v", c, ok)
					return
				}
				h.Names()
				h.Warnings()
			}
		}()
	}
	wg.Wait()
}

func FuzzCredentials(f *testing.F) {
	f.Add("user", "pass", "X-Token", "value", "/key")
	f.Add("", "", "Authorization", "Bearer x", "")
	f.Add("a:b", "c\nd", "Host", "\r\n", "k")
	f.Fuzz(func(t *testing.T, user, pass, hname, hvalue, key string) {
		// Every secret carries a marker that no message text contains.
		const mark = "QZX"
		c := Credentials{Username: mark + user, Password: mark + pass, Header: hname + ":" + mark + hvalue, SSHKeyFile: key}
		if hname == "" {
			c.Header = ""
		}
		var said []string
		if err := c.Validate(); err != nil {
			said = append(said, err.Error())
		}
		s := c.String()
		said = append(said, strings.ReplaceAll(s, key, ""))
		if _, err := Load(NetrcOff, map[string]Credentials{"h.example": c}); err != nil {
			said = append(said, strings.ReplaceAll(err.Error(), key, ""))
		}
		for _, m := range said {
			if strings.Contains(m, mark) {
				t.Fatalf("message %q shows a secret", m)
			}
		}
		if name, value, ok := c.HeaderField(); ok {
			if strings.ContainsAny(name+value, "\r\n") || !isToken(name) {
				t.Fatalf("HeaderField accepted %q: %q", name, value)
			}
		}
	})
}
