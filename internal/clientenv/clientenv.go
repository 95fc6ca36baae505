// Package clientenv computes the go command's settings for a client of a
// modgate server and writes them in the syntax of each shell, of
// `go env -w`, and of the CI and container files people paste them into.
package clientenv

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/modgate/modgate/internal/redact"
)

// DefaultTokenFile is where the settings tell `modgate goauth` to read the
// client's token; `modgate goauth` expands the leading ~/ itself, so the
// value works in GOAUTH, which no shell expands.
const DefaultTokenFile = "~/.config/modgate/token"

// Settings describe the server a client is set up for.
type Settings struct {
	// URL is modgate's base URL as the client reaches it (http or https).
	URL string
	// Private holds the server's private module path patterns (GOPRIVATE
	// syntax, comma-separated).
	Private string
	// Tokens is whether the server requires client tokens.
	Tokens bool
	// SumDB is the checksum database the server verifies against: a name,
	// "off", or "" when unknown (the default is assumed).
	SumDB string
}

// Var is one go command setting.
type Var struct {
	Name, Value string
}

// Env is the client configuration: the settings to make, in order, and
// the notes a person should read with them (warnings and guidance).
type Env struct {
	Vars  []Var
	Notes []string
}

// For computes the client configuration for s.
func For(s Settings) (Env, error) {
	base, err := ProxyURL(s.URL)
	if err != nil {
		return Env{}, err
	}
	private, err := Patterns(s.Private)
	if err != nil {
		return Env{}, err
	}
	var e Env
	// One entry, with no ",direct" fallback: behind a firewall a direct
	// fetch never works, and falling back to it only turns modgate's clear
	// error (a 403 from the gate, a one-line reason) into a confusing
	// network timeout from some outside host.
	e.Vars = append(e.Vars, Var{"GOPROXY", base})
	if private != "" {
		// GONOSUMDB, not GOPRIVATE: GOPRIVATE would also set GONOPROXY and
		// send those modules straight to their git servers, around
		// modgate, which fetches them with credentials the client lacks.
		e.Vars = append(e.Vars, Var{"GONOSUMDB", private})
		e.Notes = append(e.Notes, "GONOSUMDB: the public checksum database cannot know the private modules ("+private+"); modgate serves them")
	}
	if s.Tokens {
		e.Vars = append(e.Vars, Var{"GOAUTH", GoAuthCommand(base, DefaultTokenFile)})
		e.Notes = append(e.Notes, "GOAUTH: put your modgate token (from the administrator: modgate token add) in "+DefaultTokenFile+", readable by you alone")
		if strings.HasPrefix(base, "http://") {
			e.Notes = append(e.Notes, "warning: the server requires tokens but is reached over http; the go command sends GOAUTH credentials over https only")
		}
	}
	switch sdb := strings.TrimSpace(s.SumDB); {
	case sdb == "off":
		e.Notes = append(e.Notes, "warning: the server verifies nothing against a checksum database (--sumdb off); GOSUMDB stays at its default, which the go command may not reach from here: ask the administrator rather than setting GOSUMDB=off")
	case sdb != "" && sdb != "sum.golang.org":
		e.Notes = append(e.Notes, "note: the server verifies against the checksum database "+sdb+"; GOSUMDB stays at the go command's default")
	}
	return e, nil
}

// GoAuthCommand is the GOAUTH value that makes `modgate goauth` give the
// go command the token in tokenFile for the server at base. The go command
// splits GOAUTH at spaces with no shell: tokenFile must have none.
func GoAuthCommand(base, tokenFile string) string {
	return "modgate goauth --url " + base + " --token-file " + tokenFile
}

// ProxyURL checks a modgate base URL and returns it in the form GOPROXY
// takes: http or https, a host, no credentials, no query, no trailing
// slash. Errors never repeat credentials.
func ProxyURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("no modgate URL")
	}
	shown := redact.URL(raw)
	if strings.ContainsAny(raw, ",| \t") || hasControl(raw) {
		// ',' and '|' separate GOPROXY entries.
		return "", fmt.Errorf("modgate URL %q: spaces, control characters, ',' and '|' are not allowed", shown)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("modgate URL %q: not a URL", shown)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("modgate URL %q: the scheme must be http or https", shown)
	}
	if u.Host == "" {
		return "", fmt.Errorf("modgate URL %q: no host", shown)
	}
	if u.User != nil {
		return "", fmt.Errorf("modgate URL %q: credentials do not belong in GOPROXY (every go env shows it); use a token with GOAUTH or .netrc", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", fmt.Errorf("modgate URL %q: a query or fragment is not allowed", shown)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Patterns normalizes a comma-separated list of module path patterns:
// spaces around entries and empty entries are dropped.
func Patterns(list string) (string, error) {
	if hasControl(list) {
		return "", errors.New("private patterns: control characters are not allowed")
	}
	var out []string
	for p := range strings.SplitSeq(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ","), nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
