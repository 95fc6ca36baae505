package proxylist

// Run with: go test -run '^$' -fuzz FuzzParse -fuzztime 60s ./internal/proxylist/
// Without -fuzz, `go test` runs the seeds as unit tests.

import (
	"reflect"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"https://proxy.example",
		"https://proxy.example/,direct",
		"https://a.example|https://b.example,off",
		"https://user:secret@proxy.example/base?token=abc,https://mirror.example",
		"a.example/mirror, ,file:///srv/mods|https://b.example",
		"127.0.0.1:3000|direct,off,https://c.example",
		"  https://a.example  ,, https://b.example//",
		"https://https://user:pw@h",
		"/abs/path,C:\\mods,example",
		"https://[::1]:8080/p%2Fq",
		",|,",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, list string) {
		entries, err := Parse(list)
		proxies := Proxies(list)

		// Each proxy kept is an entry Parse accepts on its own.
		for _, e := range proxies {
			one, err := Parse(e.URL)
			if err != nil || len(one) != 1 || one[0].URL != e.URL || e.Keyword != "" {
				t.Fatalf("Proxies(%q): entry %+v does not parse as itself: %+v, %v", list, e, one, err)
			}
		}
		// A list of proxies reads back as the same proxies.
		if len(proxies) > 0 {
			again, err := Parse(Format(proxies))
			if err != nil || !sameEntries(again, proxies) {
				t.Fatalf("Proxies(%q) formatted as %q parses to %+v, %v", list, Format(proxies), again, err)
			}
		}

		if err != nil {
			// The error may quote an entry, never its credentials.
			if u := testenv.ShownUserinfo(err.Error()); u != "" {
				t.Fatalf("Parse(%q): error shows user information %q: %v", list, u, err)
			}
			return
		}
		if len(entries) == 0 {
			t.Fatalf("Parse(%q): no entries and no error", list)
		}
		// Where the whole list is valid, Proxies is its proxies up to the
		// first off.
		var want []Entry
		for _, e := range entries {
			if (e.URL == "") == (e.Keyword == "") {
				t.Fatalf("Parse(%q): entry %+v is neither a URL nor a keyword", list, e)
			}
			if e.Keyword == Off {
				break
			}
			if e.Keyword == "" {
				want = append(want, e)
			}
		}
		if !reflect.DeepEqual(proxies, want) {
			t.Fatalf("Proxies(%q) = %+v, want %+v", list, proxies, want)
		}
		// Format is the inverse of Parse, and normalizing twice changes
		// nothing.
		s := Format(entries)
		again, err := Parse(s)
		if err != nil || !sameEntries(again, entries) || Format(again) != s {
			t.Fatalf("Parse(%q) formatted as %q parses to %+v, %v", list, s, again, err)
		}
	})
}

// sameEntries compares entry lists, ignoring the separator after the last
// entry, which a list cannot express.
func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) || len(a) == 0 {
		return len(a) == len(b)
	}
	a, b = append([]Entry(nil), a...), append([]Entry(nil), b...)
	a[len(a)-1].FallThroughOnAnyError = false
	b[len(b)-1].FallThroughOnAnyError = false
	return reflect.DeepEqual(a, b)
}
