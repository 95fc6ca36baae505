// Package redact removes credentials from text that leaves modgate: URLs
// with user information or token-like query parameters, in error bodies,
// log lines, metrics and health answers.
//
// Operators put credentials into upstream URLs (https://user:token@host),
// and Go's own errors quote URLs; every place that shows a URL or passes on
// an error text from outside runs it through this package first.
package redact

import (
	"net/url"
	"regexp"
	"strings"
	"unicode"
)

// Mask replaces a secret.
const Mask = "REDACTED"

// secretParams are query parameter names (lower case) whose values are
// credentials. A name containing any of secretParamParts also counts.
var secretParams = map[string]bool{
	"sig": true, "signature": true, "code": true, "key": true,
}

var secretParamParts = []string{"token", "secret", "password", "passwd", "pwd", "auth", "credential", "apikey", "api_key", "access_key", "x-amz-", "session"}

func secretParam(name string) bool {
	n := strings.ToLower(name)
	if secretParams[n] {
		return true
	}
	for _, p := range secretParamParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}

// URL returns raw with its user information and the values of token-like
// query parameters replaced by Mask. Text that does not parse as a URL with
// a scheme and host is returned with anything that looks like userinfo
// (before an "@" following "://") masked all the same.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" && u.User == nil {
		return maskAuthority(raw)
	}
	changed := false
	if u.User != nil {
		u.User = url.User(Mask)
		changed = true
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			// Unparsable: mask it whole, as a parameter so that redacting
			// the result again changes nothing.
			u.RawQuery = Mask + "=" + Mask
			changed = true
		} else {
			for name, vals := range q {
				if secretParam(name) {
					for i := range vals {
						vals[i] = Mask
					}
					changed = true
				}
			}
			if changed {
				u.RawQuery = q.Encode()
			}
		}
	}
	if !changed {
		return raw
	}
	return u.String()
}

// maskAuthority masks "user:pass@" after "://" in text that url.Parse
// refused.
func maskAuthority(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return s[:i+3] + Mask + rest[at:]
	}
	return s
}

// urlInText finds URLs in free text: a scheme, "://", and everything up to
// white space or a quote.
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>` + "`" + `]+`)

// Text returns s with every URL in it redacted (see URL). Punctuation that
// ends a URL in prose ("see https://host/x." or "(https://host/x);") stays
// outside it.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, func(m string) string {
		trimmed := strings.TrimRight(m, ".,:;)]}!?")
		return URL(trimmed) + m[len(trimmed):]
	})
}

// Line makes text from outside (an upstream's error body, a git server's
// message) fit to show: credentials redacted, control characters and line
// breaks turned into spaces, runs of spaces collapsed, invalid UTF-8
// dropped, and at most max bytes (cut on a rune boundary, "..." appended).
func Line(s string, max int) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	s = Text(s)
	if max > 0 && len(s) > max {
		cut := max
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
