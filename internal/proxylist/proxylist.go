// Package proxylist parses GOPROXY lists: the syntax of the go command's
// GOPROXY variable and of modgate's --upstream. A list is entries separated
// by "," (ask the next entry only when this one answers not found) or "|"
// (ask the next entry after any error); an entry is an http(s) proxy URL,
// "direct" or "off".
//
// It is modgate's one parser of that syntax: package config validates and
// normalizes --upstream with Parse and derives the default upstream from
// the go command's GOPROXY with Proxies; package source builds its chain of
// upstreams from Parse. Entries are read as the go command reads them
// (cmd/go/internal/modfetch/proxy.go): spaces around an entry are trimmed,
// empty entries skipped, and a host without a scheme gets "https://".
package proxylist

import (
	"errors"
	"fmt"
	"iter"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/modgate/modgate/internal/redact"
)

// The keyword entries.
const (
	// Direct fetches from version control.
	Direct = "direct"
	// Off disables lookups: the go command stops there.
	Off = "off"
)

// Entry is one element of a GOPROXY list.
type Entry struct {
	// URL is the proxy's base URL as written, credentials included (they
	// are needed for requests; show Redact(URL)), with "https://" in front
	// of a host written without a scheme. It is empty for a keyword.
	URL string
	// Keyword is Direct or Off, or empty for a proxy.
	Keyword string
	// FallThroughOnAnyError reports that the entry was followed by "|":
	// the next entry is asked after any error of this one, not only after
	// a not-found answer (",").
	FallThroughOnAnyError bool
}

// Value is the entry as written in a list: its URL or its keyword.
func (e Entry) Value() string {
	if e.Keyword != "" {
		return e.Keyword
	}
	return e.URL
}

// Parse parses list strictly, for a list that was configured explicitly:
// every entry must be an http(s) URL (a bare host counts, with https://),
// Direct or Off, and there must be at least one. All entries are kept, in
// order, including those after Off. Errors quote entries redacted.
func Parse(list string) ([]Entry, error) {
	var entries []Entry
	for raw, fallThrough := range split(list) {
		e, err := parseEntry(raw, fallThrough)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil, errors.New("list has no entries")
	}
	return entries, nil
}

// Proxies returns the http(s) proxies of list, for a list taken from the go
// command's GOPROXY to be used as modgate's upstream: Direct and entries
// that are not http(s) URLs (file://, typos) are dropped, and Off ends the
// list, since the go command never goes past it. A kept entry keeps the
// separator that followed it, so "A|direct,B" gives the entries of "A|B".
// The result may be empty.
func Proxies(list string) []Entry {
	var entries []Entry
	for raw, fallThrough := range split(list) {
		if raw == Off {
			break
		}
		if e, err := parseEntry(raw, fallThrough); err == nil && e.Keyword == "" {
			entries = append(entries, e)
		}
	}
	return entries
}

// Format writes entries as a GOPROXY list, credentials included: the
// separator after each entry but the last is "|" if it falls through on any
// error, else ",". Parse(Format(entries)) gives entries back, apart from the
// last one's separator, which no list can express.
func Format(entries []Entry) string {
	var b strings.Builder
	for i, e := range entries {
		if i > 0 {
			if entries[i-1].FallThroughOnAnyError {
				b.WriteByte('|')
			} else {
				b.WriteByte(',')
			}
		}
		b.WriteString(e.Value())
	}
	return b.String()
}

// split yields the non-empty entries of list, trimmed, each with whether
// "|" followed it.
func split(list string) iter.Seq2[string, bool] {
	return func(yield func(string, bool) bool) {
		for list != "" {
			var raw string
			fallThrough := false
			if i := strings.IndexAny(list, ",|"); i >= 0 {
				raw, fallThrough, list = list[:i], list[i] == '|', list[i+1:]
			} else {
				raw, list = list, ""
			}
			if raw = strings.TrimSpace(raw); raw == "" {
				continue
			}
			if !yield(raw, fallThrough) {
				return
			}
		}
	}
}

// parseEntry reads one non-empty, trimmed entry.
func parseEntry(raw string, fallThrough bool) (Entry, error) {
	if raw == Direct || raw == Off {
		return Entry{Keyword: raw, FallThroughOnAnyError: fallThrough}, nil
	}
	// As the go command: single words are reserved for keywords, and
	// anything containing ":/" or that is an absolute path must be a
	// complete URL; otherwise https:// is implied.
	s := raw
	if strings.ContainsAny(s, ".:/") && !strings.Contains(s, ":/") && !filepath.IsAbs(s) && !path.IsAbs(s) {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		// A host ending in ":" is a doubled scheme ("https://https://h"),
		// which would put credentials in the path.
		strings.HasSuffix(u.Host, ":") {
		// The entry may carry credentials: quote it redacted.
		return Entry{}, fmt.Errorf("list entry %q: want an http(s) URL, %q or %q", Redact(raw), Direct, Off)
	}
	return Entry{URL: s, FallThroughOnAnyError: fallThrough}, nil
}

// Redact returns a proxy URL with its credentials masked, for showing it:
// the user information and token-like query values become redact.Mask. The
// result redacts to itself, so that a list of redacted entries, parsed and
// redacted again, is the same list: redact.URL alone is not always a fixed
// point (a query it had to replace whole, "?REDACTED", is re-encoded as
// "?REDACTED=" the next time), so it is applied until nothing changes; each
// pass only normalizes further.
//
// User information after a later "://" is masked too: a doubled scheme
// ("https://https://user:pw@host") parses as host "https:" with the
// credentials in the path, where redact.URL does not look.
func Redact(rawURL string) string {
	name := redact.URL(rawURL)
	for range 3 {
		again := redact.URL(name)
		if again == name {
			break
		}
		name = again
	}
	return maskNestedUserinfo(name)
}

// maskNestedUserinfo replaces whatever lies between any "://" and an "@"
// before the end of that authority with redact.Mask.
func maskNestedUserinfo(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		end := strings.IndexAny(s, "/?#")
		if end < 0 {
			end = len(s)
		}
		if at := strings.LastIndex(s[:end], "@"); at >= 0 {
			if s[:at] != redact.Mask {
				b.WriteString(redact.Mask)
				s = s[at:]
			}
		}
	}
}
