package config

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The sections below exist only in tests: they prove the section mechanism
// with the shapes the next features need (a list of per-host tables, one
// policy table) without inventing user-facing options.

// testHost is one table of the test-only "hosts" section.
type testHost struct {
	Pattern  string
	TokenEnv string
	Timeout  time.Duration
	Insecure bool
	Tags     []string
}

func (h *testHost) fields() []*option {
	return []*option{
		opt(&h.Pattern, "pattern", stringKind, "", "module path patterns served by the host", notEmpty, globList),
		opt(&h.TokenEnv, "token-env", stringKind, "", "environment variable holding the host's token"),
		opt(&h.Timeout, "timeout", durationKind, 30*time.Second, "bound on one fetch from the host", positive),
		opt(&h.Insecure, "insecure", boolKind, false, "allow plain http"),
		opt(&h.Tags, "tags", stringListKind, nil, "labels"),
	}
}

// checkHost checks relations between a host's keys.
func checkHost(h *testHost) error {
	if h.Insecure && h.TokenEnv != "" {
		return errors.New("a token must not be sent over plain http: set insecure or token-env, not both")
	}
	return nil
}

// testPolicy is the test-only "rules" table.
type testPolicy struct {
	Deny   []string
	MinAge time.Duration
}

func (p *testPolicy) fields() []*option {
	return []*option{
		opt(&p.Deny, "deny", stringListKind, nil, "module path patterns refused"),
		opt(&p.MinAge, "min-age", durationKind, 0, "youngest version served", nonNegative),
	}
}

// testSections are the test-only sections, bound to their own variables.
type testSections struct {
	hosts  []testHost
	policy testPolicy
}

func (ts *testSections) table() []*section {
	return []*section{
		listSection(&ts.hosts, "hosts", "per-host settings", (*testHost).fields, checkHost),
		tableSection(&ts.policy, "rules", "what is served", (*testPolicy).fields, nil),
	}
}

// loadWithSections is Load with the test-only sections added to the table.
func loadWithSections(args []string, getenv func(string) string) (*Config, *testSections, error) {
	ts := &testSections{}
	c := Default()
	_, err := c.load(args, getenv, append(c.sections(), ts.table()...))
	return c, ts, err
}

func TestSections(t *testing.T) {
	noGoEnv(t)
	files := map[string]string{
		"m.yaml": `
listen: ":1"
hosts:
  - pattern: corp.example.com
    token-env: CORP_TOKEN
    tags: [a, b]
  - pattern: "*.internal"
    timeout: 1m
    insecure: true
rules:
  deny: [evil.example]
  min-age: 24h
`,
		"m.toml": `
listen = ":1"

[[hosts]]
pattern = "corp.example.com"
token-env = "CORP_TOKEN"
tags = ["a", "b"]

[[hosts]]
pattern = "*.internal"
timeout = "1m"
insecure = true

[rules]
deny = ["evil.example"]
min-age = "24h"
`,
		"inline.toml": `
listen = ":1"
hosts = [{pattern = "corp.example.com", token-env = "CORP_TOKEN", tags = "a,b"}, {pattern = "*.internal", timeout = "1m", insecure = true}]
rules = {deny = "evil.example", min-age = "24h"}
`,
	}
	wantHosts := []testHost{
		{Pattern: "corp.example.com", TokenEnv: "CORP_TOKEN", Timeout: 30 * time.Second, Tags: []string{"a", "b"}},
		{Pattern: "*.internal", Timeout: time.Minute, Insecure: true},
	}
	wantPolicy := testPolicy{Deny: []string{"evil.example"}, MinAge: 24 * time.Hour}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, strings.Replace(name, "inline", "m", 1), content)
			// Flat options keep their precedence next to sections.
			c, ts, err := loadWithSections([]string{"--config", path, "--log-format=text"},
				env(map[string]string{"MODGATE_LIST_TTL": "2m"}))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ts.hosts, wantHosts) {
				t.Errorf("hosts = %+v\nwant %+v", ts.hosts, wantHosts)
			}
			if !reflect.DeepEqual(ts.policy, wantPolicy) {
				t.Errorf("rules = %+v, want %+v", ts.policy, wantPolicy)
			}
			if c.Listen != ":1" || c.LogFormat != "text" || c.ListTTL != 2*time.Minute {
				t.Errorf("flat options: listen %q, log-format %q, list-ttl %v", c.Listen, c.LogFormat, c.ListTTL)
			}
			for name, want := range map[string]string{
				"hosts":    "config file " + path + ": hosts",
				"rules":    "config file " + path + ": rules",
				"listen":   "config file " + path + ": listen",
				"list-ttl": "env MODGATE_LIST_TTL",
			} {
				if got := c.Source(name); got != want {
					t.Errorf("Source(%s) = %q, want %q", name, got, want)
				}
			}
		})
	}

	// Absent or null: the defaults, which a table fills in per key.
	for _, content := range []string{"listen: \":1\"\n", "hosts:\nrules: ~\n"} {
		c, ts, err := loadWithSections([]string{"--config", writeFile(t, "m.yaml", content)}, env(nil))
		if err != nil || ts.hosts != nil || !reflect.DeepEqual(ts.policy, testPolicy{}) || c.Source("hosts") != "default hosts" {
			t.Errorf("%q: hosts %+v, policy %+v, source %q, err %v", content, ts.hosts, ts.policy, c.Source("hosts"), err)
		}
	}
	_, ts, err := loadWithSections([]string{"--config", writeFile(t, "m.yaml", "hosts: [{pattern: a.example}]\n")}, env(nil))
	if err != nil || len(ts.hosts) != 1 || ts.hosts[0].Timeout != 30*time.Second {
		t.Errorf("defaults in a table: %+v, %v", ts.hosts, err)
	}
}

// TestSectionErrors: every unknown key and bad value below a section is
// named by its full path and the file, all of them at once.
func TestSectionErrors(t *testing.T) {
	noGoEnv(t)
	for _, tc := range []struct {
		name, content string
		want          []string // the error's lines, after "config file PATH: "
	}{
		{"m.yaml", "hosts:\n  - pattern: a.example\n  - pattern: b.example\n    token_env: X\n",
			[]string{`unknown key "hosts[1].token_env" (did you mean "token-env"?)`}},
		{"m.toml", "[[hosts]]\npattern = \"a.example\"\ntimout = \"1m\"\n",
			[]string{`unknown key "hosts[0].timout" (did you mean "timeout"?)`}},
		{"m.yaml", "rules: {deyn: [x], retention: 1d}\n",
			[]string{`unknown key "rules.deyn" (did you mean "deny"?)`, `unknown key "rules.retention"`}},
		{"m.yaml", "hots: []\n", []string{`unknown key "hots" (did you mean "hosts"?)`}},
		{"m.yaml", "hosts: [{pattern: a.example, timeout: 5x}]\n",
			[]string{`hosts[0].timeout: invalid duration "5x" (want e.g. 30s, 5m, 1h30m)`}},
		{"m.toml", "[[hosts]]\npattern = \"a.example\"\ninsecure = \"maybe\"\n",
			[]string{`hosts[0].insecure: invalid boolean "maybe" (want true or false)`}},
		{"m.yaml", "hosts: [{pattern: {x: 1}}]\n", []string{"hosts[0].pattern: got a table, want a single value"}},
		// Wrong shapes.
		{"m.yaml", "hosts: corp.example.com\n", []string{"hosts: got a single value, want a list of tables"}},
		{"m.yaml", "hosts: {pattern: a}\n", []string{"hosts: got a table, want a list of tables"}},
		{"m.yaml", "hosts: [a.example, [b]]\n", []string{"hosts[0]: got a single value, want a table", "hosts[1]: got a list, want a table"}},
		{"m.yaml", "hosts: [{1: x}]\n", []string{"hosts[0]: keys must be names"}},
		{"m.toml", "rules = [\"x\"]\n", []string{"rules: got a list, want a table"}},
		{"m.toml", "rules = 1\n", []string{"rules: got a single value, want a table"}},
		// Every problem of the file, flat keys and sections, in file
		// order (a table's keys in sorted order).
		{"m.yaml", "listn: \":1\"\nhosts:\n  - {pattern: a.example, timeout: 5x, tokn-env: X}\n  - {pattern: b, bogus: 1}\nlist-ttl: 5x\n",
			[]string{
				`unknown key "listn" (did you mean "listen"?)`,
				`hosts[0].timeout: invalid duration "5x" (want e.g. 30s, 5m, 1h30m)`,
				`unknown key "hosts[0].tokn-env" (did you mean "token-env"?)`,
				`unknown key "hosts[1].bogus"`,
				`list-ttl: invalid duration "5x" (want e.g. 30s, 5m, 1h30m)`,
			}},
	} {
		path := writeFile(t, tc.name, tc.content)
		_, _, err := loadWithSections([]string{"--config", path}, env(nil))
		var want []string
		for _, w := range tc.want {
			want = append(want, "config file "+path+": "+w)
		}
		if err == nil || err.Error() != strings.Join(want, "\n") {
			t.Errorf("%s %q:\n got %v\nwant %s", tc.name, tc.content, err, strings.Join(want, "\n"))
		}
	}
}

// TestSectionValidation: the checks of a section's keys and tables run with
// the other options' after all sources are applied, and name the key.
func TestSectionValidation(t *testing.T) {
	noGoEnv(t)
	path := writeFile(t, "m.yaml", `
hosts:
  - pattern: "corp.example.com/["
  - token-env: X
    timeout: 0s
  - pattern: a.example
    insecure: true
    token-env: X
  - pattern: b.example
rules:
  min-age: -1h
`)
	_, _, err := loadWithSections([]string{"--config", path, "--list-ttl=0"}, env(nil))
	p := "config file " + path + ": "
	want := strings.Join([]string{
		"flag --list-ttl: must be greater than 0, got 0s",
		p + `hosts[0].pattern: invalid pattern "corp.example.com/[": syntax error in pattern`,
		p + "hosts[1].pattern: must not be empty",
		p + "hosts[1].timeout: must be greater than 0, got 0s",
		p + "hosts[2]: a token must not be sent over plain http: set insecure or token-env, not both",
		p + "rules.min-age: must not be negative, got -1h",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestSectionsOnlyInFiles: a section is no flag and no variable.
func TestSectionsOnlyInFiles(t *testing.T) {
	noGoEnv(t)
	_, _, err := loadWithSections([]string{"--hosts=a.example"}, env(nil))
	wantErr(t, err, "flag --hosts: unknown flag")
	// MODGATE_HOSTS through getenv is simply not read.
	_, ts, err := loadWithSections(nil, env(map[string]string{"MODGATE_HOSTS": "a.example"}))
	if err != nil || ts.hosts != nil {
		t.Errorf("MODGATE_HOSTS: %+v, %v", ts.hosts, err)
	}
}

func TestSectionUsage(t *testing.T) {
	var buf bytes.Buffer
	usage(&buf, (&testSections{}).table())
	got := buf.String()
	for _, s := range []string{
		"Config file sections (only in the file named by --config):\n",
		"  hosts: list of tables\n    \tper-host settings\n",
		"    hosts.pattern string\n      \tmodule path patterns served by the host\n",
		"    hosts.timeout duration\n      \tbound on one fetch from the host, default 30s\n",
		"  rules: table\n",
		"    rules.deny list\n",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("usage does not contain %q:\n%s", s, got)
		}
	}
	// The production sections are listed with their keys.
	buf.Reset()
	Usage(&buf)
	for _, s := range []string{"  git-hosts: list of tables\n", "    git-hosts.password string\n", "  git-repos: list of tables\n"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("usage does not contain %q:\n%s", s, buf.String())
		}
	}
}

// TestSectionTable: the production section table is consistent with the
// option table.
func TestSectionTable(t *testing.T) {
	c := new(Config)
	names := map[string]bool{}
	for _, o := range c.options() {
		names[o.name] = true
	}
	for _, s := range append(c.sections(), (&testSections{}).table()...) {
		if names[s.name] {
			t.Errorf("section %s has the name of an option", s.name)
		}
		names[s.name] = true
		if s.help == "" {
			t.Errorf("section %s has no help", s.name)
		}
		s.reset()
		if err := s.validate(); err != nil {
			// A table's defaults are its value when the file has none.
			t.Errorf("section %s: defaults do not validate: %v", s.name, err)
		}
		for _, o := range s.keys() {
			if o.help == "" {
				t.Errorf("key %s.%s has no help", s.name, o.name)
			}
		}
	}
}
