package proxylist

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		list string
		want []Entry
	}{
		{"https://a.example", []Entry{{URL: "https://a.example"}}},
		{"https://a.example|https://b.example,direct", []Entry{
			{URL: "https://a.example", FallThroughOnAnyError: true},
			{URL: "https://b.example"},
			{Keyword: Direct},
		}},
		// As the go command: spaces trimmed, empty entries skipped, a bare
		// host gets https://, the separator after the last entry is kept
		// on it (and lost by Format).
		{"  127.0.0.1:3000 |, http://a.example/ |,", []Entry{
			{URL: "https://127.0.0.1:3000", FallThroughOnAnyError: true},
			{URL: "http://a.example/", FallThroughOnAnyError: true},
		}},
		{"a.example/mirror", []Entry{{URL: "https://a.example/mirror"}}},
		// Entries past off are kept: a strict list says what was written.
		{"off|https://a.example", []Entry{{Keyword: Off, FallThroughOnAnyError: true}, {URL: "https://a.example"}}},
		// Credentials are kept: requests need them.
		{"https://user:pw@a.example/?token=t", []Entry{{URL: "https://user:pw@a.example/?token=t"}}},
		{"HTTPS://A.EXAMPLE", []Entry{{URL: "HTTPS://A.EXAMPLE"}}},
	} {
		got, err := Parse(tc.list)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.list, got, err, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ list, want string }{
		{"", "list has no entries"},
		{" , |", "list has no entries"},
		{"ftp://a.example", `list entry "ftp://a.example": want an http(s) URL, "direct" or "off"`},
		{"https://a.example,file:///srv/mods", `list entry "file:///srv/mods"`},
		{"example", `list entry "example"`}, // single words are keywords
		{"/srv/mods", `list entry "/srv/mods"`},
		{"https://", `list entry "https://"`},
		{"https://https://h", `list entry "https://https://h"`},
		{"https://a.example:port", `list entry "https://a.example:port"`},
		// Credentials are not shown, also where URL parsing does not
		// find them.
		{"ftp://user:pw@a.example", `list entry "ftp://REDACTED@a.example"`},
		{"https://https://user:pw@h", `list entry "https://https://REDACTED@h"`},
	} {
		_, err := Parse(tc.list)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): err = %v, want %q", tc.list, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("Parse(%q): err = %v shows the password", tc.list, err)
		}
	}
}

// TestProxies covers the default upstream derived from the go command's
// GOPROXY.
func TestProxies(t *testing.T) {
	for _, tc := range []struct{ list, want string }{
		{"https://a.example,direct", "https://a.example"},
		{"https://a.example|https://b.example,off", "https://a.example|https://b.example"},
		// The separator after a kept entry stays with it.
		{"https://a.example|direct,https://b.example", "https://a.example|https://b.example"},
		{"direct,https://a.example|http://127.0.0.1:3000", "https://a.example|http://127.0.0.1:3000"},
		// The go command never goes past off.
		{"https://a.example,off,https://b.example", "https://a.example"},
		{"a.example/mirror, ,file:///srv/mods,https://b.example", "https://a.example/mirror,https://b.example"},
		{"https://https://h,https://a.example", "https://a.example"},
		{"direct", ""},
		{"off", ""},
		{"off,https://a.example", ""},
		{"file:///srv/mods,direct", ""},
		{"", ""},
	} {
		if got := Format(Proxies(tc.list)); got != tc.want {
			t.Errorf("Proxies(%q) = %q, want %q", tc.list, got, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, list := range []string{
		"https://a.example",
		"https://a.example|https://b.example,direct,off|https://c.example",
		"https://user:pw@a.example/base?token=t",
	} {
		entries, err := Parse(list)
		if err != nil {
			t.Fatal(err)
		}
		if got := Format(entries); got != list {
			t.Errorf("Format(Parse(%q)) = %q", list, got)
		}
	}
	if got := Format(nil); got != "" {
		t.Errorf("Format(nil) = %q", got)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://a.example", "https://a.example"},
		{"https://user:pw@a.example/base", "https://REDACTED@a.example/base"},
		{"https://a.example/base?token=t&v=1", "https://a.example/base?token=REDACTED&v=1"},
		{"https://https://user:pw@h", "https://https://REDACTED@h"},
	} {
		got := Redact(tc.in)
		if got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if again := Redact(got); again != got {
			t.Errorf("Redact(%q) = %q, but Redact of that is %q", tc.in, got, again)
		}
	}
}
