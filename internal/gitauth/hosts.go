package gitauth

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// NetrcOff, given to Load as the netrc path, reads no netrc file at all
// (tests, and operators who keep every credential in the configuration).
const NetrcOff = "off"

// Hosts is the credential table: one Credentials per host, or per host
// and port. It is safe for concurrent use; Reload swaps in a re-read
// netrc file while lookups go on.
type Hosts struct {
	netrcPath  string // "" for none
	explicit   bool   // given by the operator: a missing file is an error
	configured map[string]Credentials
	table      atomic.Pointer[table]
}

type table struct {
	byHost   map[string]Credentials
	warnings []string
}

// Load builds the table from a netrc file and the configured entries,
// which win over the netrc file's for the same host. configured is keyed
// by "host" or "host:port" (see For).
//
// netrcPath "" means the go command's default (DefaultNetrc), which need
// not exist; any other path must exist; NetrcOff reads none. Warnings
// (a netrc file others may read, entries skipped) are in Warnings, for
// the caller to log.
//
// Errors name the host and the field at fault, never a value.
func Load(netrcPath string, configured map[string]Credentials) (*Hosts, error) {
	h := &Hosts{configured: make(map[string]Credentials, len(configured))}
	switch netrcPath {
	case NetrcOff:
	case "":
		h.netrcPath = DefaultNetrc()
	default:
		h.netrcPath, h.explicit = netrcPath, true
	}
	for key, c := range configured {
		host, err := canonicalHost(key)
		if err != nil {
			return nil, fmt.Errorf("gitauth: credentials for %q: %v", key, err)
		}
		if _, dup := h.configured[host]; dup {
			return nil, fmt.Errorf("gitauth: credentials for %q: host given twice (names are not case-sensitive)", key)
		}
		if c.IsZero() {
			return nil, fmt.Errorf("gitauth: credentials for %q: the entry is empty", key)
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("gitauth: credentials for %q: %v", key, err)
		}
		if err := checkSSHFiles(c); err != nil {
			return nil, fmt.Errorf("gitauth: credentials for %q: %v", key, err)
		}
		h.configured[host] = c
	}
	if err := h.Reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// Reload reads the netrc file again. On error the table in use stays.
func (h *Hosts) Reload() error {
	t := &table{byHost: make(map[string]Credentials)}
	if h.netrcPath != "" {
		entries, warning, err := readNetrc(h.netrcPath)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !h.explicit:
			// No netrc file where the go command would look: fine.
		case err != nil:
			return fmt.Errorf("gitauth: %w", err)
		default:
			if warning != "" {
				t.warnings = append(t.warnings, warning)
			}
			for _, e := range entries {
				host, err := canonicalHost(e.Machine)
				if err != nil {
					t.warnings = append(t.warnings, fmt.Sprintf("netrc file %s: machine %q skipped: %v", h.netrcPath, e.Machine, err))
					continue
				}
				c := Credentials{Username: e.Login, Password: e.Password}
				if err := c.Validate(); err != nil {
					t.warnings = append(t.warnings, fmt.Sprintf("netrc file %s: machine %q skipped: %v", h.netrcPath, e.Machine, err))
					continue
				}
				// The first entry for a machine is the one used, as by
				// the go command and curl.
				if _, seen := t.byHost[host]; !seen {
					t.byHost[host] = c
				}
			}
		}
	}
	for host, c := range h.configured {
		t.byHost[host] = c
	}
	h.table.Store(t)
	return nil
}

// For returns the credentials for host, as in a URL's Host: "name" or
// "name:port". An entry with a port matches that port only; an entry
// without one matches every port of the name, the more specific entry
// winning. Names are compared without regard to case, and only whole:
// an entry for "git.corp.example.com" is never given to
// "git.corp.example.com.evil.com", nor to "sub.git.corp.example.com".
func (h *Hosts) For(host string) (Credentials, bool) {
	if h == nil {
		return Credentials{}, false
	}
	t := h.table.Load()
	if t == nil {
		return Credentials{}, false
	}
	key, err := canonicalHost(host)
	if err != nil {
		return Credentials{}, false
	}
	if c, ok := t.byHost[key]; ok {
		return c, true
	}
	if name, _, err := net.SplitHostPort(key); err == nil {
		if c, ok := t.byHost[name]; ok {
			return c, true
		}
	}
	return Credentials{}, false
}

// Names lists the hosts that have credentials, sorted, for a start-up
// log line (names only).
func (h *Hosts) Names() []string {
	if h == nil || h.table.Load() == nil {
		return nil
	}
	var names []string
	for host := range h.table.Load().byHost {
		names = append(names, host)
	}
	slices.Sort(names)
	return names
}

// Warnings returns what the last load found worth telling the operator.
func (h *Hosts) Warnings() []string {
	if h == nil || h.table.Load() == nil {
		return nil
	}
	return slices.Clone(h.table.Load().warnings)
}

// NetrcPath is the netrc file Hosts reads, "" for none.
func (h *Hosts) NetrcPath() string {
	if h == nil {
		return ""
	}
	return h.netrcPath
}

// canonicalHost checks a host name with an optional port and returns it in
// lower case, an IPv6 literal without brackets unless a port follows.
func canonicalHost(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty host name")
	}
	if strings.ContainsAny(s, "/@?# \\") {
		return "", errNotHostName
	}
	name, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		if n, p, err := net.SplitHostPort(s); err == nil {
			name, port = n, p
		} else if strings.HasSuffix(s, "]") {
			name = s[1 : len(s)-1]
		} else {
			return "", errors.New("malformed bracketed address")
		}
		if ip := net.ParseIP(name); ip == nil || ip.To4() != nil {
			return "", errors.New("brackets hold an IPv6 address only")
		}
	case strings.Count(s, ":") == 1:
		name, port, _ = strings.Cut(s, ":")
	case strings.Count(s, ":") > 1:
		if net.ParseIP(s) == nil {
			return "", errors.New("not a host name, an IP address, nor host:port")
		}
	}
	name = strings.ToLower(name)
	if net.ParseIP(name) == nil && !validHostName(name) {
		return "", errNotHostName
	}
	if port == "" {
		if strings.HasSuffix(s, ":") {
			return "", errors.New("empty port")
		}
		return name, nil
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
		return "", errors.New("port must be a number from 1 to 65535")
	}
	return net.JoinHostPort(name, port), nil
}

var errNotHostName = errors.New("not a host name (letters, digits, dots, dashes; no scheme, user or path)")

func validHostName(s string) bool {
	if s == "" || len(s) > 253 || s[0] == '.' || s[0] == '-' || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkSSHFiles makes sure the key and known_hosts files can be used, so
// that a wrong path stops the start-up with its name rather than failing
// every fetch later with whatever ssh says.
func checkSSHFiles(c Credentials) error {
	if c.SSHKeyFile == "" {
		return nil
	}
	for _, f := range []struct{ what, path string }{{"ssh key file", c.SSHKeyFile}, {"known_hosts file", c.KnownHostsFile}} {
		info, err := os.Stat(f.path)
		if err != nil {
			return fmt.Errorf("%s: %v", f.what, err)
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s %s is not a regular file", f.what, f.path)
		}
	}
	if runtime.GOOS != "windows" {
		info, _ := os.Stat(c.SSHKeyFile)
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			// ssh itself refuses such a key ("UNPROTECTED PRIVATE KEY
			// FILE"); saying so now beats a failed fetch later.
			return fmt.Errorf("ssh key file %s has mode %#o and ssh refuses keys other users may read; chmod 600 it", c.SSHKeyFile, perm)
		}
	}
	return nil
}
