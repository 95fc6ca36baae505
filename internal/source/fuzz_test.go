package source

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/testenv"
)

func FuzzParseVersionList(f *testing.F) {
	for _, seed := range []string{
		"",
		"\n",
		"v1.0.0\nv1.1.0\n",
		"v1.0.0\nv1.1.0", // no final newline
		"v0.0.0-20240101120000-abcdef123456\nv1.2.3-rc.1\nv2.0.0+incompatible\n",
		"v1.0.0 2019-05-06T15:21:08Z\nv1.0.1 2019-06-01T00:00:00Z\n", // extra fields
		"v1.0.0\r\nv1.1.0\r\n", // CRLF
		"\n\n  v1.0.0  \n\t\nv1.0.1\n",
		"v1.0.0\x00\nv1.\xff\n",
		"v1.0.0\u00a0v1.0.1\u2028v1.0.2\n", // Unicode spaces
		"<html><body>not a list</body></html>",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		versions := ParseVersionList(body)
		if n := strings.Count(string(body), "\n") + 1; len(versions) > n {
			t.Fatalf("%d versions from %d lines", len(versions), n)
		}
		for _, v := range versions {
			// The version, or the version, one space and the time.
			fields := strings.Split(v, " ")
			if len(fields) > 2 || slices.ContainsFunc(fields, func(f string) bool {
				return f == "" || strings.ContainsFunc(f, unicode.IsSpace)
			}) {
				t.Fatalf("entry %q: not a version and at most one more field", v)
			}
			for _, f := range fields {
				if !strings.Contains(string(body), f) {
					t.Fatalf("entry %q: %q is not in the body", v, f)
				}
			}
		}
		// What it returns, written as a list, parses to the same.
		if again := ParseVersionList([]byte(strings.Join(versions, "\n"))); !slices.Equal(again, versions) {
			t.Fatalf("round trip: %q, then %q", versions, again)
		}
	})
}

func FuzzParseList(f *testing.F) {
	for _, seed := range []string{
		"https://proxy.example",
		"https://proxy.example/,direct",
		"https://a.example|https://b.example,off",
		"https://user:secret@proxy.example/base?token=abc,https://mirror.example",
		"http://tokenonly@127.0.0.1:3000|direct",
		"https://proxy.example/x?access_token=abc&v=1&sig=zz",
		"  https://a.example  ,, https://b.example//",
		"off",
		"direct,off",
		"https://[::1]:8080/p%2Fq",
		"https://u:p%zz@host/",
		"ftp://x",
		"https://",
		",|,",
		"https://a.example#frag",
		"HTTPS://A.EXAMPLE",
	} {
		f.Add(seed)
	}
	newUpstream := func(base string) Source { return NewUpstream(base, nil) }
	f.Fuzz(func(t *testing.T, list string) {
		c, err := ParseList(list, newUpstream)
		if err != nil {
			if u := testenv.ShownUserinfo(err.Error()); u != "" {
				t.Fatalf("error shows user information %q: %v", u, err)
			}
			return
		}
		s := c.String()
		c2, err := ParseList(s, newUpstream)
		if err != nil {
			t.Fatalf("String() = %q does not parse: %v", s, err)
		}
		if s2 := c2.String(); s2 != s {
			t.Fatalf("round trip: %q -> %q -> %q", list, s, s2)
		}
		if len(c2.entries) != len(c.entries) {
			t.Fatalf("round trip: %d entries, then %d", len(c.entries), len(c2.entries))
		}
		// No credentials: every URL in String() is already redacted, and
		// no password or user name of the input survives.
		for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '|' }) {
			if e == "off" || e == "direct" {
				continue
			}
			if redact.URL(e) != e {
				t.Fatalf("String() = %q: entry %q is not redacted", s, e)
			}
			if u := testenv.ShownUserinfo(e); u != "" {
				t.Fatalf("String() = %q shows user information %q", s, u)
			}
			u, err := url.Parse(e)
			if err != nil {
				t.Fatalf("String() = %q: entry %q does not parse: %v", s, e, err)
			}
			if u.User != nil && u.User.String() != redact.Mask {
				t.Fatalf("String() = %q shows user information %q", s, u.User)
			}
		}
	})
}
