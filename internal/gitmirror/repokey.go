package gitmirror

import (
	"strings"
	"unicode"
)

// RepoKey reduces a repository URL to what identifies the repository
// across the ways it is named, "host/path": no scheme, user information,
// port, query, trailing "/" or ".git", the host in lower case (paths keep
// their case). The https, ssh, scp-like and web URLs of one repository
// then compare equal, as a webhook's payload names them:
// "git@git.corp.example.com:team/repo.git",
// "ssh://git@git.corp.example.com:2222/team/repo.git" and
// "https://git.corp.example.com/team/repo" all give
// "git.corp.example.com/team/repo". It returns "" for what names no
// repository. Two repositories that differ only by port share a key.
func RepoKey(raw string) string {
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+len("://"):]
	} else if colon := strings.IndexByte(s, ':'); colon > 0 && !strings.Contains(s[:colon], "/") {
		// scp-like syntax: [user@]host:path
		s = s[:colon] + "/" + strings.TrimPrefix(s[colon+1:], "/")
	}
	hostEnd := strings.IndexByte(s, '/')
	if hostEnd < 0 {
		hostEnd = len(s)
	}
	host, p := s[:hostEnd], s[hostEnd:]
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	host = strings.ToLower(host)
	if !validKeyHost(host) {
		return ""
	}
	for {
		trimmed := strings.TrimSuffix(strings.TrimRight(p, "/"), ".git")
		if trimmed == p {
			break
		}
		p = trimmed
	}
	if p == "" || strings.ContainsFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '\\' }) {
		return ""
	}
	return host + p
}

// validKeyHost accepts a DNS name or IPv4 address, or a bracketed IPv6
// address.
func validKeyHost(h string) bool {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
		return h != "" && strings.Trim(h, "0123456789abcdef:.") == ""
	}
	return h != "" && strings.Trim(h, "abcdefghijklmnopqrstuvwxyz0123456789.-_") == ""
}
