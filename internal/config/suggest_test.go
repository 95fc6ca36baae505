package config

import (
	"strings"
	"testing"
)

// TestDidYouMean checks that a misspelled option gets the closest known
// option named in the same message that names the key and its source, for
// each of the three sources.
func TestDidYouMean(t *testing.T) {
	noGoEnv(t)

	t.Run("file", func(t *testing.T) {
		for _, tc := range []struct{ name, content, want string }{
			{"m.yaml", "listn: \":1\"\n", `unknown key "listn" (did you mean "listen"?)`},
			{"m.yml", "lsit-ttl: 1m\n", `unknown key "lsit-ttl" (did you mean "list-ttl"?)`},               // transposition
			{"m.yaml", "data_dir: /srv\n", `unknown key "data_dir" (did you mean "data-dir"?)`},            // env-style spelling
			{"m.toml", "Log-Format = \"text\"\n", `unknown key "Log-Format" (did you mean "log-format"?)`}, // case
			{"m.toml", "nosumbd = \"x\"\n", `unknown key "nosumbd" (did you mean "nosumdb"?)`},
			// Nothing close: no guess.
			{"m.yaml", "retention: 3d\n", `unknown key "retention"`},
			// config is not allowed in a file, so it is never suggested there.
			{"m.yaml", "confg: x.yaml\n", `unknown key "confg"`},
		} {
			path := writeFile(t, tc.name, tc.content)
			_, err := Load([]string{"--config", path}, env(nil))
			want := "config file " + path + ": " + tc.want
			if err == nil || err.Error() != want {
				t.Errorf("%s %q: got error %v, want %q", tc.name, tc.content, err, want)
			}
		}
	})

	t.Run("env", func(t *testing.T) {
		for _, tc := range []struct{ v, want string }{
			{"MODGATE_LISTN", "env MODGATE_LISTN: unknown variable (no such modgate option; did you mean MODGATE_LISTEN? see --help)"},
			{"MODGATE_LISTTTL", "env MODGATE_LISTTTL: unknown variable (no such modgate option; did you mean MODGATE_LIST_TTL? see --help)"},
			{"MODGATE_CONFG", "env MODGATE_CONFG: unknown variable (no such modgate option; did you mean MODGATE_CONFIG? see --help)"},
			{"MODGATE_UPSTREAMS", "env MODGATE_UPSTREAMS: unknown variable (no such modgate option; did you mean MODGATE_UPSTREAM? see --help)"},
			{"MODGATE_RETENTION", "env MODGATE_RETENTION: unknown variable (no such modgate option; see --help)"},
		} {
			_, err := LoadEnviron(nil, []string{"GOPROXY=https://a.example", tc.v + "=1"})
			if err == nil || err.Error() != tc.want {
				t.Errorf("%s: got error %v, want %q", tc.v, err, tc.want)
			}
		}
	})

	t.Run("flag", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--listn", ":1"}, "flag --listn: unknown flag (did you mean --listen? see --help)"},
			{[]string{"-lisen=:1"}, "flag --lisen: unknown flag (did you mean --listen? see --help)"},
			{[]string{"--list_ttl=1m"}, "flag --list_ttl: unknown flag (did you mean --list-ttl? see --help)"},
			{[]string{"--tls-crt", "x"}, "flag --tls-crt: unknown flag (did you mean --tls-cert? see --help)"},
			{[]string{"--confg", "x"}, "flag --confg: unknown flag (did you mean --config? see --help)"},
			{[]string{"--verbose"}, "flag --verbose: unknown flag (see --help)"},
		} {
			_, err := Load(tc.args, env(nil))
			if err == nil || err.Error() != tc.want {
				t.Errorf("%q: got error %v, want %q", tc.args, err, tc.want)
			}
		}
	})
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"listen", "listen", 0},
		{"listn", "listen", 1},    // deletion
		{"listenn", "listen", 1},  // insertion
		{"lisxen", "listen", 1},   // substitution
		{"lsiten", "listen", 1},   // transposition counts once
		{"ca", "abc", 3},          // restricted: no edit of a transposed pair
		{"kitten", "sitting", 3},  // the textbook case
		{"sumdb", "nosumdb", 2},   // prefix
		{"négatif", "negatif", 1}, // runes, not bytes
		{strings.Repeat("a", 64), "", 64},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := editDistance(tc.b, tc.a); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d (not symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"listen", "list-ttl", "log-level", "log-format", "sumdb", "nosumdb"}
	for _, tc := range []struct{ in, want string }{
		{"listen", "listen"},
		{"LISTEN", "listen"},
		{"list_ttl", "list-ttl"},
		{"log-levl", "log-level"},
		{"logformat", "log-format"},
		{"sumbd", "sumdb"},
		// Short names need a close match: one edit in four letters is a
		// guess, two is noise.
		{"sumd", "sumdb"},
		{"smd", ""},
		{"x", ""},
		{"", ""},
		{"list", ""},
		// Equally close (two edits) to listen and list-ttl: the first in
		// table order, so the message does not change from run to run.
		{"list-ten", "listen"},
		{"retention", ""},
	} {
		if got := suggest(tc.in, names); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
