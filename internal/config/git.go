package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/mod/module"
)

// GitHost is one table of the git-hosts section: what modgate presents to
// one git host (discovery requests and git traffic alike, to that host
// only).
type GitHost struct {
	// Host is the host name, with a port when only that port is meant.
	Host string
	// Username and Password (or an access token) go as HTTP basic auth.
	Username string
	Password string
	// Header is one extra HTTP header, "Name: value".
	Header string
	// SSHKey and KnownHosts are for ssh:// repository URLs.
	SSHKey     string
	KnownHosts string
}

func (h *GitHost) fields() []*option {
	return []*option{
		opt(&h.Host, "host", stringKind, "", "the git host (host or host:port)", notEmpty),
		opt(&h.Username, "username", stringKind, "", "basic auth user name (any non-empty name for most token schemes)"),
		opt(&h.Password, "password", stringKind, "", "basic auth password or access token"),
		opt(&h.Header, "header", stringKind, "", `an HTTP header sent instead, "Name: value" (e.g. "PRIVATE-TOKEN: ...")`),
		opt(&h.SSHKey, "ssh-key", stringKind, "", "private key file for ssh repository URLs", fileExists),
		opt(&h.KnownHosts, "known-hosts", stringKind, "", "known_hosts file the host's ssh key is checked against", fileExists),
	}
}

// checkGitHost checks the relations between a host's keys. Its errors
// never quote a secret.
func checkGitHost(h *GitHost) error {
	if strings.ContainsAny(h.Host, "/@ ") || strings.Contains(h.Host, "://") {
		return fmt.Errorf("host %q: want a host name, optionally with :port, not a URL", h.Host)
	}
	if (h.SSHKey == "") != (h.KnownHosts == "") {
		return errors.New("ssh-key and known-hosts go together: host keys are never trusted on first use")
	}
	if h.Password != "" && h.Username == "" {
		return errors.New("password needs a username (for a token, any name the host accepts, e.g. oauth2)")
	}
	if h.Header != "" {
		name, _, ok := strings.Cut(h.Header, ":")
		if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(h.Header, "\r\n") {
			return errors.New(`header: want one "Name: value" line`)
		}
	}
	if h.Username == "" && h.Header == "" && h.SSHKey == "" {
		return errors.New("no credentials: set username and password, header, or ssh-key")
	}
	return nil
}

// GitRepo is one table of the git-repos section: a module path prefix and
// the repository that holds it.
type GitRepo struct {
	// Module is the module path prefix the repository's root holds.
	Module string
	// URL is the repository's clone URL (https, http with --insecure, ssh).
	URL string
	// Subdir is the repository directory that Module corresponds to.
	Subdir string
}

func (r *GitRepo) fields() []*option {
	return []*option{
		opt(&r.Module, "module", stringKind, "", "module path prefix, e.g. corp.example.com/legacy", notEmpty),
		opt(&r.URL, "url", stringKind, "", "repository clone URL, e.g. https://git.corp.example.com/legacy.git", notEmpty),
		opt(&r.Subdir, "subdir", stringKind, "", "directory of the repository that the prefix corresponds to"),
	}
}

func checkGitRepo(r *GitRepo) error {
	if err := module.CheckImportPath(r.Module); err != nil {
		return fmt.Errorf("module: %v", err)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return errors.New("url: not a URL")
	}
	switch u.Scheme {
	case "https", "http", "ssh":
	default:
		return fmt.Errorf("url: scheme %q: want https, http (with --insecure) or ssh", u.Scheme)
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword || u.Scheme != "ssh" {
			return errors.New("url: credentials belong in git-hosts or the netrc, not in the URL")
		}
	}
	if strings.HasPrefix(r.Subdir, "/") || strings.Contains("/"+r.Subdir+"/", "/../") {
		return fmt.Errorf("subdir %q: want a relative path inside the repository", r.Subdir)
	}
	return nil
}
