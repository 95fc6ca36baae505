package config

// Fuzz targets for the configuration loader: config file contents (YAML and
// TOML) and flag and environment values. A bad configuration must stop the
// start with a message that says which key is wrong and where it was set;
// it must never panic, and what is accepted must be a value the option can
// hold and print back (the start-up log and --help print it).
//
// Run one with: go test -run '^$' -fuzz FuzzLoadYAML -fuzztime 60s ./internal/config/
// Without -fuzz, `go test` runs the seeds and testdata/fuzz/ as unit tests.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var yamlSeeds = []string{
	// docs/configuration.md
	"# modgate.yaml\nlisten: \":8080\"\ndata-dir: /var/lib/modgate\nupstream: https://goproxy.example.internal|https://mirror.example.com\nlist-ttl: 10m\nnegative-ttl: 30s\nlog-format: json\n",
	"{listen: \":1\", data-dir: file-dir, list-ttl: 1m, negative-ttl: 0s, log-level: debug, log-format: text}",
	"listen: :9090\nnosumdb: \"*.corp.example,example.com/private\"\nsumdb: 'off'\n",
	"negative-ttl: 0\nfetch-timeout: 1h30m\nshutdown-timeout: 45s\n",
	"",
	"# only a comment\n",
	"listen:\n",
	"---\nlisten: \":1\"\n---\nlisten: \":2\"\n",
	// Broken.
	"listn: \":1\"\n",
	"config: other.yaml\n",
	"- listen\n",
	"listen: \":1\"\nlisten: \":2\"\n",
	"listen: [\":1\"]\n",
	"listen: {port: 1}\n",
	"list-ttl: 5x\n",
	"list-ttl: 5\n",
	"list-ttl: -1s\n",
	"log-level: verbose\n",
	"tls-cert: /nonexistent/cert.pem\n",
	"upstream: ftp://a.example\n",
	"nosumdb: \"[\"\n",
	"listen: \":1\n",
	"? [a, b]\n: c\n",
	"a: &x [*x]\n",
	"listen: !!binary aGVsbG8=\n",
	"listen: 1e400\n",
	"listen: .inf\n",
	"data-dir: ~\n",
	"\t",
	// Sections (the test-only hosts and rules of section_test.go).
	"listen: \":1\"\nhosts:\n  - pattern: corp.example.com\n    token-env: CORP_TOKEN\n    tags: [a, b]\n  - pattern: \"*.internal\"\n    timeout: 1m\n    insecure: true\nrules:\n  deny: [evil.example]\n  min-age: 24h\n",
	"hosts: [{pattern: a.example}, {pattern: b.example, tags: []}]\nrules: {min-age: 0}\n",
	"hosts:\nrules: ~\n",
	"hosts: [{pattern: a.example, token_env: X}]\n",
	"hosts: [{pattern: a.example, timeout: 5x}, {}]\n",
	"hosts: [{pattern: \"[\"}]\n",
	"hosts: [{pattern: a.example, insecure: true, token-env: X}]\n",
	"hosts: [{pattern: {x: 1}}]\n",
	"hosts: [{1: x}]\n",
	"hosts: [a, [b], ~]\n",
	"hosts: corp.example.com\n",
	"hosts: {pattern: a}\n",
	"rules: [x]\n",
	"rules: {deyn: [x], deny: \"a, b\", min-age: -1h}\n",
	"hots: []\n",
	"hosts: &h [{pattern: a.example}]\nrules: {deny: *h}\n",
	"hosts: [{pattern: a.example, pattern: b.example}]\n",
}

var tomlSeeds = []string{
	"# modgate.toml\nlisten = \":8443\"\ndata-dir = \"/var/lib/modgate\"\ntls-cert = \"/etc/modgate/tls.crt\"\ntls-key = \"/etc/modgate/tls.key\"\n",
	"listen = \":1\"\ndata-dir = \"file-dir\"\nlist-ttl = \"1m\"\nnegative-ttl = 0\nlog-level = \"debug\"\nlog-format = \"text\"\n",
	"upstream = 'https://a.example,https://b.example|direct'\nnosumdb = \"*.corp.example\"\n",
	"",
	// Broken.
	"listn = \":1\"\n",
	"config = \"other.toml\"\n",
	"[listen]\nport = 1\n",
	"listen.port = 1\n",
	"\"listen\" = \":1\"\n\"\" = 2\n",
	"listen = [\":1\", 2]\n",
	"listen = \n",
	"list-ttl = 5\n",
	"list-ttl = 1.5\n",
	"list-ttl = 1979-05-27T07:32:00Z\n",
	"log-format = true\n",
	"[[data-dir]]\n",
	"listen = \":1\"\nlisten = \":2\"\n",
	"fetch-timeout = inf\n",
	// Sections (the test-only hosts and rules of section_test.go).
	"listen = \":1\"\n\n[[hosts]]\npattern = \"corp.example.com\"\ntoken-env = \"CORP_TOKEN\"\ntags = [\"a\", \"b\"]\n\n[[hosts]]\npattern = \"*.internal\"\ntimeout = \"1m\"\ninsecure = true\n\n[rules]\ndeny = [\"evil.example\"]\nmin-age = \"24h\"\n",
	"hosts = [{pattern = \"a.example\", tags = \"a,b\"}, {pattern = \"b\", insecure = true}]\nrules = {deny = \"x\"}\n",
	"hosts = []\n",
	"[[hosts]]\npattern = \"a.example\"\ntimout = \"1m\"\n",
	"[[hosts]]\n[hosts.sub]\nx = 1\n",
	"[rules]\nmin-age = 1979-05-27T07:32:00Z\n[rules.deny]\nx = 1\n",
	"rules = 1\nhosts = \"x\"\n",
	"[[rules]]\ndeny = \"x\"\n",
}

// One file per fuzz target, rewritten for each input: a fuzz worker calls
// the target sequentially, and a fresh temporary directory per input would
// cost more than loading it.

func FuzzLoadYAML(f *testing.F) {
	for _, s := range yamlSeeds {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), "m.yaml")
	f.Fuzz(func(t *testing.T, data []byte) { checkLoadFile(t, path, data) })
}

func FuzzLoadTOML(f *testing.F) {
	for _, s := range tomlSeeds {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), "m.toml")
	f.Fuzz(func(t *testing.T, data []byte) { checkLoadFile(t, path, data) })
}

// checkLoadFile loads data as the config file path (.yaml or .toml), with
// the test-only sections (section_test.go) in the table so that nested
// input is decoded for real, and checks what the loader says about it.
func checkLoadFile(t *testing.T, path string, data []byte) {
	ext := filepath.Ext(path)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	parse := parseYAML
	if ext == ".toml" {
		parse = parseTOML
	}
	entries, perr := parse(data)

	c, ts, secs := newFuzzConfig()
	byName := map[string]*option{}
	for _, o := range c.options() {
		byName[o.name] = o
	}
	err := c.loadFile(path, byName, secs)
	where := "config file " + path + ": "
	switch {
	case perr != nil:
		// A syntax error: reported, with the file.
		if err == nil {
			t.Fatalf("%q: does not parse (%v), but loadFile accepted it", data, perr)
		}
		if !strings.HasPrefix(err.Error(), where) {
			t.Fatalf("%q: error %q does not start with %q", data, err, where)
		}
		return
	case err != nil:
		// The file parsed, so each problem is one of its keys, or a key
		// below one of its sections: the message names it.
		for _, e := range unjoin(err) {
			if !namesEntry(e.Error(), where, entries) {
				t.Fatalf("%q: error %q names none of the keys %v", data, e, entries)
			}
		}
		return
	}

	// Accepted: every value set its option or section, which says so. An
	// option holds a value that it can print and read back as a flag or
	// env value; the sections hold what the file said, so that writing
	// them back as a file loads the same values again.
	for _, e := range entries {
		if e.value == nil {
			continue
		}
		if got, want := c.Source(e.key), where+e.key; got != want {
			t.Errorf("%q: Source(%s) = %q, want %q", data, e.key, got, want)
		}
		if o := byName[e.key]; o != nil && !roundTrips(e.key, o.get()) {
			t.Errorf("%q: %s = %q from the file cannot be given back as a flag value", data, e.key, o.get())
		}
	}
	checkSectionsRoundTrip(t, filepath.Join(filepath.Dir(path), "again.yaml"), ts, data)
	checkValidateNames(t, c, secs, data)
}

// newFuzzConfig returns a Default config and a section table holding the
// test-only sections, reset.
func newFuzzConfig() (*Config, *testSections, []*section) {
	ts := &testSections{}
	c := Default()
	secs := append(c.sections(), ts.table()...)
	c.resetSections(secs)
	return c, ts, secs
}

// namesEntry reports whether msg, one problem loadFile reported, starts
// with where and names one of the file's top-level entries: the entry
// itself or a key below it.
func namesEntry(msg, where string, entries []keyValue) bool {
	rest, ok := strings.CutPrefix(msg, where)
	if !ok {
		return false
	}
	for _, e := range entries {
		if strings.HasPrefix(rest, fmt.Sprintf("unknown key %q", e.key)) ||
			strings.HasPrefix(rest, fmt.Sprintf("key %q is not allowed", e.key)) ||
			strings.HasPrefix(rest, e.key+": ") {
			return true
		}
		// Below a section: `unknown key "hosts[1].x"`, `hosts[1].x: ...`.
		// Section names need no quoting.
		for _, below := range []string{"[", "."} {
			if strings.HasPrefix(rest, `unknown key "`+e.key+below) || strings.HasPrefix(rest, e.key+below) {
				return true
			}
		}
	}
	return false
}

// checkSectionsRoundTrip writes the values of the test-only sections to
// path as YAML, loads that, and checks that the same values come back.
func checkSectionsRoundTrip(t *testing.T, path string, ts *testSections, input []byte) {
	t.Helper()
	doc := map[string]any{}
	if ts.hosts != nil {
		hosts := []any{}
		for _, h := range ts.hosts {
			m := map[string]any{"pattern": h.Pattern, "token-env": h.TokenEnv, "timeout": h.Timeout.String(), "insecure": h.Insecure}
			if h.Tags != nil {
				m["tags"] = h.Tags
			}
			hosts = append(hosts, m)
		}
		doc["hosts"] = hosts
	}
	policy := map[string]any{"min-age": ts.policy.MinAge.String()}
	if ts.policy.Deny != nil {
		policy["deny"] = ts.policy.Deny
	}
	doc["rules"] = policy
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatalf("%q: cannot write the sections back: %v", input, err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	c, ts2, secs := newFuzzConfig()
	if err := c.loadFile(path, map[string]*option{}, secs); err != nil {
		t.Fatalf("%q: sections written back as %q do not load: %v", input, out, err)
	}
	if !reflect.DeepEqual(ts.hosts, ts2.hosts) || !reflect.DeepEqual(ts.policy, ts2.policy) {
		t.Fatalf("%q: sections %+v %+v, written back as %q, load as %+v %+v", input, ts.hosts, ts.policy, out, ts2.hosts, ts2.policy)
	}
}

// roundTrips reports whether text, the printed value of option name, parses
// back to the same printed value.
func roundTrips(name, text string) bool {
	for _, o := range new(Config).options() {
		if o.name == name {
			return o.setText(text) == nil && o.get() == text
		}
	}
	return false
}

// checkValidateNames checks that each problem validate reports starts with
// where the offending value came from: an option's source, or a section's
// followed by the path of the key below it.
func checkValidateNames(t *testing.T, c *Config, secs []*section, input any) {
	t.Helper()
	for _, e := range unjoin(c.validate(secs)) {
		named := false
		for _, o := range c.options() {
			if strings.HasPrefix(e.Error(), c.Source(o.name)+": ") {
				named = true
			}
		}
		for _, s := range secs {
			for _, below := range []string{"[", ".", ": "} {
				if strings.HasPrefix(e.Error(), c.Source(s.name)+below) {
					named = true
				}
			}
		}
		if !named {
			t.Errorf("%q: Validate error %q does not say where the value came from", input, e)
		}
	}
}

func FuzzFlagEnv(f *testing.F) {
	for _, s := range [][2]string{
		{"listen", ":8080"}, {"listen", "127.0.0.1:9"}, {"listen", "8080"},
		{"data-dir", "/var/lib/modgate"}, {"data-dir", ""},
		{"upstream", "https://a.example|https://b.example,direct"}, {"upstream", "a.example/mirror, ,off"}, {"upstream", "ftp://x"},
		{"list-ttl", "5m"}, {"list-ttl", "1h30m"}, {"list-ttl", "5x"}, {"list-ttl", "0"}, {"list-ttl", " 2m "},
		{"negative-ttl", "-1s"}, {"fetch-timeout", "9223372036854775807ns"}, {"shutdown-timeout", "1e3s"},
		{"sumdb", "sum.golang.org"}, {"sumdb", "off"},
		{"nosumdb", "*.corp.example,example.com/private"}, {"nosumdb", "["},
		{"log-level", "debug"}, {"log-level", "DEBUG"}, {"log-format", "xml"},
		{"tls-cert", "/nonexistent.pem"}, {"tls-key", "/"},
		// Unknown names.
		{"listn", ":1"}, {"list_ttl", "1m"}, {"LISTEN", ":1"}, {"verbose", "true"}, {"a b", "1"},
	} {
		f.Add(s[0], s[1])
	}
	old := helpOutput
	helpOutput = io.Discard
	f.Cleanup(func() { helpOutput = old })

	f.Fuzz(func(t *testing.T, name, value string) {
		var o *option
		for _, x := range new(Config).options() {
			if x.name == name {
				o = x
			}
		}
		switch {
		case o != nil && name != configKey:
			// --config's value is a file to read (which could be
			// /dev/stdin); file contents are FuzzLoadYAML's and
			// FuzzLoadTOML's business.
			checkKnown(t, name, "flag --"+name, []string{"--" + name + "=" + value}, nil)
			if value != "" && !strings.ContainsRune(value, 0) {
				checkKnown(t, name, "env "+EnvName(name), nil, map[string]string{EnvName(name): value})
			}
		case o == nil:
			checkUnknownFlag(t, name, value)
			checkUnknownEnv(t, name, value)
		}
	})
}

// checkKnown loads a setting of option name and checks that an error names
// where, and that an accepted value is recorded as coming from there.
func checkKnown(t *testing.T, name, where string, args []string, environ map[string]string) {
	t.Helper()
	c, err := Load(args, env(environ))
	if err != nil {
		if !strings.Contains(err.Error(), where+": ") {
			t.Fatalf("%s %q: error %q does not name %s", where, args, err, where)
		}
		return
	}
	want := where
	if name == "upstream" && c.UpstreamDerived {
		// An empty --upstream is no upstream: derived from GOPROXY
		// (found by FuzzFlagEnv; testdata/fuzz/FuzzFlagEnv).
		want = "env GOPROXY"
	}
	if got := c.Source(name); got != want {
		t.Fatalf("%s: accepted, but Source(%s) = %q, want %q", where, name, got, want)
	}
	for _, o := range c.options() {
		if o.name == name && !roundTrips(name, o.get()) {
			t.Fatalf("%s: accepted value prints as %q, which does not read back", where, o.get())
		}
	}
}

// checkUnknownFlag passes --name=value for a name that is no option.
func checkUnknownFlag(t *testing.T, name, value string) {
	t.Helper()
	// Names the flag package reads as a flag name at all: anything else
	// is a syntax error, an end of flags ("--") or a help request.
	if name == "" || name[0] == '-' || strings.Contains(name, "=") || name == "h" || name == "help" {
		return
	}
	_, err := Load([]string{"--" + name + "=" + value}, env(nil))
	prefix := "flag --" + name + ": unknown flag ("
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("--%s=%q: error %v, want one starting %q", name, value, err, prefix)
	}
	checkHint(t, name, strings.TrimPrefix(err.Error(), prefix), "--")
}

// checkUnknownEnv sets MODGATE_<name> for a name that is no option's.
func checkUnknownEnv(t *testing.T, name, value string) {
	t.Helper()
	k := envPrefix + name
	if strings.ContainsAny(k, "=\x00") {
		return // not a variable name an environment can hold
	}
	for _, o := range new(Config).options() {
		if EnvName(o.name) == k {
			return // a known variable, spelled differently from the option
		}
	}
	_, err := LoadEnviron(nil, []string{"GOPROXY=https://a.example", k + "=" + value})
	prefix := "env " + k + ": unknown variable (no such modgate option; "
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("%s=%q: error %v, want one starting %q", k, value, err, prefix)
	}
	checkHint(t, name, strings.TrimPrefix(err.Error(), prefix), envPrefix)
}

// checkHint checks the "did you mean" part of an unknown-name message: if
// there is one, it names an option at the smallest edit distance from name,
// within the limit.
func checkHint(t *testing.T, name, rest, show string) {
	t.Helper()
	if rest == "see --help)" {
		return
	}
	hint, ok := strings.CutPrefix(rest, "did you mean "+show)
	hint, ok2 := strings.CutSuffix(hint, "? see --help)")
	if !ok || !ok2 {
		t.Fatalf("%q: malformed hint %q", name, rest)
	}
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "-")) }
	best, d := -1, -1
	for _, o := range new(Config).options() {
		od := editDistance(norm(name), o.name)
		if best < 0 || od < best {
			best = od
		}
		if norm(hint) == o.name {
			d = od
		}
	}
	if d < 0 || d != best || d > 2 {
		t.Fatalf("%q: hint %q is %d edits away, the closest option %d", name, hint, d, best)
	}
}

// TestRoundTrips checks the fuzz targets' round-trip helper: one that
// accepted everything would make their assertion pointless.
func TestRoundTrips(t *testing.T) {
	if roundTrips("list-ttl", "5 m") || roundTrips("list-ttl", "300s") || roundTrips("no-such-option", "x") || !roundTrips("list-ttl", "5m") {
		t.Error("roundTrips is not discriminating")
	}
}
