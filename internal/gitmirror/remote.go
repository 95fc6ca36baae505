package gitmirror

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// remote is a parsed, checked and normalized remote URL.
type remote struct {
	// url is what git is given and what the mirror's config stores:
	// "https://host[:port]/path", "http://...", "ssh://[user@]host[:port]/path"
	// or the scp-like "[user@]host:path". It never holds a password.
	url string
	// scheme is "https", "http" or "ssh" (scp-like URLs included).
	scheme string
	// host is the host name, lower case, with the port when it is not the
	// scheme's default: what credentials are looked up by and errors name.
	host string
}

// maxURLLen bounds a remote URL; real ones are far shorter.
const maxURLLen = 2048

var (
	// hostName is a DNS name or an IPv4 address. A leading "-" would be read
	// as an option by ssh.
	hostName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	// sshUser is the user name of an ssh URL ("git"), never a secret.
	sshUser = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
	// repoPath is the path of a repository on its host, decoded. Slashes,
	// "~" for ssh home directories, and the punctuation hosting sites use.
	repoPath = regexp.MustCompile(`^[A-Za-z0-9._~/+@-]+$`)
	// remoteHelper is how git recognizes "transport::address" (ext::,
	// fd::, or any git-remote-<transport> on the PATH).
	remoteHelper = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*::`)
)

var defaultPorts = map[string]string{"https": "443", "http": "80", "ssh": "22"}

// parseRemote checks raw and returns its normalized form. Only https, ssh
// (URL or scp-like) and http URLs pass; anything git could read as a local
// path, a remote helper ("ext::", "fd::") or an option is refused, as is a
// URL carrying a password or a query. Whether http is allowed is checked
// by the caller.
func parseRemote(raw string) (remote, error) {
	refuse := func(host, format string, args ...any) (remote, error) {
		return remote{}, &Error{Host: host, Kind: KindRefused, Detail: fmt.Sprintf(format, args...)}
	}
	if raw == "" || len(raw) > maxURLLen {
		return refuse("", "remote URL is empty or longer than %d bytes", maxURLLen)
	}
	for _, c := range raw {
		if c <= ' ' || c == 0x7f || c > 0x7e {
			return refuse("", "remote URL contains a space, a control or a non-ASCII character")
		}
	}
	if strings.HasPrefix(raw, "-") {
		return refuse("", "remote URL starts with '-'")
	}
	if remoteHelper.MatchString(raw) {
		return refuse("", "git remote helpers (transport::address) are not allowed")
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		return parseURL(raw, refuse)
	}
	return parseSCP(raw, refuse)
}

func parseURL(raw string, refuse func(host, format string, args ...any) (remote, error)) (remote, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return refuse("", "remote URL does not parse")
	}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "https", "http", "ssh":
	case "git+ssh", "ssh+git":
		scheme = "ssh"
	default:
		return refuse(strings.ToLower(u.Host), "scheme %q is not allowed (only https and ssh, and http where --insecure allows it)", scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return refuse("", "remote URL has no host")
	}
	hostname := strings.ToLower(u.Hostname())
	if strings.HasPrefix(u.Host, "[") {
		ip := net.ParseIP(hostname)
		if ip == nil || ip.To4() != nil {
			return refuse("", "remote URL has a bad host")
		}
		hostname = "[" + ip.String() + "]"
	} else if !hostName.MatchString(hostname) {
		return refuse("", "remote URL has a bad host")
	}
	host := hostname
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return refuse(hostname, "remote URL has a bad port")
		}
		if strconv.Itoa(n) != defaultPorts[scheme] {
			host += ":" + strconv.Itoa(n)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return refuse(hostname, "remote URL has an empty port")
	}
	user := ""
	if u.User != nil {
		_, hasPassword := u.User.Password()
		if scheme != "ssh" || hasPassword {
			return refuse(host, "remote URL must not carry credentials; configure them for the host instead")
		}
		user = u.User.Username()
		if !sshUser.MatchString(user) {
			return refuse(host, "remote URL has a bad ssh user name")
		}
		user += "@"
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return refuse(host, "remote URL must not have a query or a fragment")
	}
	p := strings.TrimRight(u.Path, "/")
	if err := checkRepoPath(p, true); err != nil {
		return refuse(host, "remote URL path: %v", err)
	}
	return remote{url: scheme + "://" + user + host + p, scheme: scheme, host: host}, nil
}

// parseSCP parses git's scp-like syntax, "[user@]host:path".
func parseSCP(raw string, refuse func(host, format string, args ...any) (remote, error)) (remote, error) {
	colon := strings.Index(raw, ":")
	if colon < 0 || strings.Contains(raw[:colon], "/") {
		return refuse("", "remote %q is not a URL (local paths are not allowed)", raw)
	}
	userHost, p := raw[:colon], raw[colon+1:]
	user, hostname := "", userHost
	if at := strings.LastIndex(userHost, "@"); at >= 0 {
		user, hostname = userHost[:at], userHost[at+1:]
		if !sshUser.MatchString(user) {
			return refuse("", "remote URL has a bad ssh user name")
		}
		user += "@"
	}
	hostname = strings.ToLower(hostname)
	if !hostName.MatchString(hostname) {
		return refuse("", "remote URL has a bad host")
	}
	p = strings.TrimRight(p, "/")
	if err := checkRepoPath(p, false); err != nil {
		return refuse(hostname, "remote URL path: %v", err)
	}
	return remote{url: user + hostname + ":" + p, scheme: "ssh", host: hostname}, nil
}

// checkRepoPath checks a repository path: plain characters, no empty, "."
// or ".." element, and not starting with "-" (ssh would see an option).
func checkRepoPath(p string, absolute bool) error {
	if absolute {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("no repository path")
		}
		p = p[1:]
	}
	if p == "" {
		return fmt.Errorf("no repository path")
	}
	if !repoPath.MatchString(p) {
		return fmt.Errorf("unexpected character")
	}
	if strings.HasPrefix(p, "-") {
		return fmt.Errorf("starts with '-'")
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("empty, '.' or '..' element")
		}
	}
	return nil
}
