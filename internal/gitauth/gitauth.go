// Package gitauth holds the credentials modgate presents to git hosts, by
// host: from a .netrc file (--netrc, else $NETRC, else ~/.netrc, as the go
// command reads it) and from the configuration file's per-host entries,
// which win. A credential is only ever given for the exact host it names.
package gitauth

import (
	"errors"
	"net/http"
	"strings"
)

// Credentials are what modgate sends to one git host.
type Credentials struct {
	// Username and Password go as HTTP basic auth (a token is a password;
	// the user name may be anything the host accepts, e.g. "oauth2").
	Username string
	Password string
	// Header is one extra HTTP header, "Name: value" (for example
	// "PRIVATE-TOKEN: glpat-..." or "Authorization: Bearer ..."), sent on
	// discovery and git requests to this host only.
	Header string
	// SSHKeyFile is a private key for ssh:// and scp-like URLs, checked
	// against KnownHostsFile (never trust-on-first-use).
	SSHKeyFile     string
	KnownHostsFile string
}

// IsZero reports whether c carries nothing at all.
func (c Credentials) IsZero() bool { return c == Credentials{} }

// HasBasic reports whether c has a user name or password for basic auth.
func (c Credentials) HasBasic() bool { return c.Username != "" || c.Password != "" }

// String describes which kinds of credential c holds, never their values:
// not even the user name (a token is often given as one) nor the header's
// name (a header written without one would show its value).
func (c Credentials) String() string {
	var parts []string
	if c.HasBasic() {
		parts = append(parts, "basic auth")
	}
	if c.Header != "" {
		parts = append(parts, "header")
	}
	if c.SSHKeyFile != "" {
		// Paths are not secret, and naming them is what makes a
		// misconfiguration findable.
		parts = append(parts, "ssh key "+c.SSHKeyFile)
	}
	if c.KnownHostsFile != "" {
		parts = append(parts, "known_hosts "+c.KnownHostsFile)
	}
	if len(parts) == 0 {
		return "no credentials"
	}
	return strings.Join(parts, ", ")
}

// HeaderField splits Header into its canonical name and its value; ok is
// false when there is no header or it is malformed (Validate says why).
func (c Credentials) HeaderField() (name, value string, ok bool) {
	if c.Header == "" || checkHeader(c.Header) != nil {
		return "", "", false
	}
	n, v, _ := strings.Cut(c.Header, ":")
	return http.CanonicalHeaderKey(n), strings.TrimSpace(v), true
}

// AddTo puts c's basic auth and header on req. The caller decides that
// req goes to the host c belongs to; ssh fields do not apply to HTTP.
func (c Credentials) AddTo(req *http.Request) {
	if c.HasBasic() {
		req.SetBasicAuth(c.Username, c.Password)
	}
	if name, value, ok := c.HeaderField(); ok {
		req.Header.Set(name, value)
	}
}

// Validate checks c's syntax. Its errors never quote a value: they name
// the field that is wrong.
func (c Credentials) Validate() error {
	if (c.SSHKeyFile == "") != (c.KnownHostsFile == "") {
		return errors.New("an ssh key file needs a known_hosts file, and a known_hosts file needs an ssh key file")
	}
	// Git's credential protocol is one "key=value" per line, and user
	// names and passwords end up there: a line break would let a value
	// add lines of its own (another host, another password).
	if hasControl(c.Username) || hasControl(c.Password) {
		return errors.New("the user name or password contains a control character (a line break?)")
	}
	if strings.Contains(c.Username, ":") {
		return errors.New("the user name contains a colon, which basic auth cannot carry")
	}
	if c.Header != "" {
		if err := checkHeader(c.Header); err != nil {
			return err
		}
		n, _, _ := strings.Cut(c.Header, ":")
		if c.HasBasic() && strings.EqualFold(n, "Authorization") {
			return errors.New("an Authorization header and a user name or password both set the Authorization header; keep one")
		}
	}
	if hasControl(c.SSHKeyFile) || hasControl(c.KnownHostsFile) {
		return errors.New("a file name contains a control character")
	}
	return nil
}

// refusedHeaders are header names that would change how a request is
// framed or routed rather than who sends it, or that go to a proxy
// instead of the host.
var refusedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true,
	"Connection": true, "Upgrade": true, "Te": true, "Trailer": true,
	"Keep-Alive": true, "Proxy-Authorization": true, "Proxy-Connection": true,
}

func checkHeader(h string) error {
	const want = `the header must be "Name: value"`
	name, value, ok := strings.Cut(h, ":")
	if !ok {
		return errors.New(want + " (no colon)")
	}
	if !isToken(name) {
		return errors.New(want + " with a name of letters, digits and !#$%&'*+-.^_`|~ (no spaces)")
	}
	if strings.TrimSpace(value) == "" {
		return errors.New(want + " (the value is empty)")
	}
	for _, r := range value {
		// Tab is allowed inside a field value; every other control
		// character, CR and LF first, could smuggle a header of its own.
		if r != '\t' && (r < 0x20 || r == 0x7f) {
			return errors.New(want + " on one line, without control characters")
		}
	}
	if refusedHeaders[http.CanonicalHeaderKey(name)] {
		return errors.New("the header " + http.CanonicalHeaderKey(name) + " cannot be set as a credential")
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110, section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
