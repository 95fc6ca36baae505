package policy

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
)

// TestParseEveryKey: a file using every key decides as it says.
func TestParseEveryKey(t *testing.T) {
	p, err := parse("p.yaml", []byte(`
deny:
  - module: github.com/pkg/errors
    versions: "<v0.9.0"
    reason: "v0.8 is not approved;
      use v0.9.1"
  - module: example.com/bad/*
  - module: example.com/range
    versions: ">= v1.2.0 <v1.3.0"
allow:
  - github.com/pkg
  - module: "example.com"
    reason: ours
  - "golang.org/x/*,gopkg.in"
min-age:
  - module: example.com/fresh
    age: 0s
  - module: "*"
    age: 3d
waive:
  - id: GO-2022-1059
    module: golang.org/x/text
  - id: GO-2099-0001
    reason: accepted risk
block-retracted: false
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)
	old := now.Add(-100 * time.Hour)
	young := now.Add(-71 * time.Hour)
	for _, tt := range []struct {
		mod, version string
		t            time.Time
		want         Verdict
	}{
		{"github.com/pkg/errors", "v0.8.1", old, Verdict{Rule: "deny", Reason: "v0.8 is not approved; use v0.9.1"}},
		{"github.com/pkg/errors", "v0.9.0", old, allowed},
		{"github.com/pkg/errors/v2", "v2.0.0", old, allowed}, // the rule matches (a path prefix), its range does not
		{"example.com/bad/x", "v1.0.0", old, Verdict{Rule: "deny", Reason: "denied by policy"}},
		{"example.com/bad/x/y", "v1.0.0", old, Verdict{Rule: "deny", Reason: "denied by policy"}},
		{"example.com/bad", "v1.0.0", old, allowed},
		{"example.com/range", "v1.1.9", old, allowed},
		{"example.com/range", "v1.2.0", old, Verdict{Rule: "deny", Reason: "denied by policy"}},
		{"example.com/range", "v1.2.9-pre", old, Verdict{Rule: "deny", Reason: "denied by policy"}},
		{"example.com/range", "v1.3.0", old, allowed},
		{"github.com/other/x", "v1.0.0", old, Verdict{Rule: "allow", Reason: "not in the allow list"}},
		{"golang.org/x/text", "v0.3.0", old, allowed},
		{"golang.org/y", "v0.3.0", old, Verdict{Rule: "allow", Reason: "not in the allow list"}},
		{"gopkg.in/yaml.v3", "v3.0.0", young, Verdict{Rule: "min-age", Reason: "published 2025-01-07T01:00:00Z, younger than 3d"}},
		{"gopkg.in/yaml.v3", "v3.0.0", time.Time{}, allowed}, // unknown time
		{"example.com/fresh", "v1.0.0", now, allowed},        // age 0: exempt, first rule wins
	} {
		if got := p.decide(tt.mod, tt.version, tt.t, now); got != tt.want {
			t.Errorf("decide(%s@%s) = %+v, want %+v", tt.mod, tt.version, got, tt.want)
		}
	}
	if !p.waived("GO-2022-1059", "golang.org/x/text") || p.waived("GO-2022-1059", "golang.org/x/net") || !p.waived("GO-2099-0001", "any.com/m") || p.waived("GO-1", "golang.org/x/text") {
		t.Error("waivers do not match as written")
	}
}

func TestParseEmpty(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "---\n", "allow: []\ndeny:\n"} {
		p, err := parse("p.yaml", []byte(src))
		if err != nil {
			t.Errorf("parse(%q) = %v", src, err)
			continue
		}
		if v := p.decide("example.com/m", "v1.0.0", time.Now(), time.Now()); !v.Allowed {
			t.Errorf("parse(%q) blocks: %+v", src, v)
		}
	}
}

// TestParseErrors: every error names the file, the line and the key.
func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{"deny:\n  - module: a\n  - module: b\n    versions: \"<=v1.x\"\n", `policy file p.yaml:4: deny[1].versions: invalid range "<=v1.x"`},
		{"deny:\n  - module: a\n    versions: \"~v1.0.0\"\n", `p.yaml:3: deny[0].versions: invalid range "~v1.0.0"`},
		{"deny:\n  - module: a\n    versions: \"<1.0.0\"\n", `p.yaml:3: deny[0].versions: invalid range "<1.0.0" ("1.0.0" is not a semantic version`},
		{"deny:\n  - versions: <v1.0.0\n", `p.yaml:2: deny[0]: no module`},
		{"deny:\n  - module: \"a[\"\n", `p.yaml:2: deny[0].module: invalid module pattern "a["`},
		{"deny:\n  - module: \" , \"\n", `p.yaml:2: deny[0].module: empty module pattern`},
		{"deny:\n  - module: a\n    reasn: x\n", `p.yaml:3: deny[0]: unknown key "reasn" (did you mean "reason"?)`},
		{"deny:\n  - module: a\n    module: b\n", `p.yaml:3: deny[0].module: given twice`},
		{"deny: x\n", `p.yaml:1: deny: want a list`},
		{"deny:\n  - x\n", `p.yaml:2: deny[0]: want a mapping`},
		{"deny:\n  - module: [a]\n", `p.yaml:2: deny[0].module: want a string`},
		{"min_age: []\n", `p.yaml:1: unknown key "min_age" (did you mean "min-age"?)`},
		{"colour: red\n", `p.yaml:1: unknown key "colour" (known: deny, allow`},
		{"min-age:\n  - module: a\n    age: 3 days\n", `p.yaml:3: min-age[0].age: invalid age "3 days"`},
		{"min-age:\n  - module: a\n    age: -1h\n", `p.yaml:3: min-age[0].age: invalid age "-1h"`},
		{"min-age:\n  - module: a\n", `p.yaml:2: min-age[0]: want both module and age`},
		{"allow:\n  - module: a\n  - {reason: x}\n", `p.yaml:3: allow[1]: no module`},
		{"allow:\n  - a\n  - [b]\n", `p.yaml:3: allow[1]: want a string`},
		{"waive:\n  - module: a\n", `p.yaml:2: waive[0]: no id`},
		{"vulndb: [a]\n", `p.yaml:1: vulndb: want a string`},
		{"block-retracted: maybe\n", `p.yaml:1: block-retracted: want true or false`},
		{"deny:\n  - module: a\n  bad indent\n", `policy file p.yaml:3: `},
		{"- a\n", `p.yaml:1: the file: want a mapping`},
	} {
		_, err := parse("p.yaml", []byte(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parse(%q) = %v, want an error containing %q", tt.src, err, tt.want)
		}
	}
}

func TestRange(t *testing.T) {
	for _, tt := range []struct {
		r   string
		in  []string
		out []string
	}{
		{"", []string{"v0.0.1", "v9.9.9", "v0.0.0-20200101000000-abcdefabcdef"}, nil},
		{"<v1.0.0", []string{"v0.9.9", "v1.0.0-rc.1", "v0.0.0-20200101000000-abcdefabcdef"}, []string{"v1.0.0", "v1.0.1"}},
		{"<=v1.0.0", []string{"v1.0.0"}, []string{"v1.0.1"}},
		{">v1.0.0", []string{"v1.0.1", "v2.0.0+incompatible"}, []string{"v1.0.0"}},
		{">=v1.0.0 <v2.0.0", []string{"v1.0.0", "v1.9.9"}, []string{"v0.9.0", "v2.0.0"}},
		{"> = v1.0.0", nil, nil}, // "> =" is not an operator: rejected below
		{"=v1.2.3", []string{"v1.2.3"}, []string{"v1.2.4"}},
		{"v1.2.3", []string{"v1.2.3"}, []string{"v1.2.4"}},
		{"<= v1.2", []string{"v1.2.0"}, []string{"v1.2.1"}},
	} {
		r, err := parseRange(tt.r)
		if tt.r == "> = v1.0.0" {
			if err == nil {
				t.Errorf("parseRange(%q) accepted", tt.r)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseRange(%q) = %v", tt.r, err)
			continue
		}
		for _, v := range tt.in {
			if !r.contains(v) {
				t.Errorf("%q does not contain %s", tt.r, v)
			}
		}
		for _, v := range tt.out {
			if r.contains(v) {
				t.Errorf("%q contains %s", tt.r, v)
			}
		}
	}
	for _, bad := range []string{"<", "<=v1.x", "==v1.0.0", "<>v1.0.0", "1.0.0", "latest"} {
		if _, err := parseRange(bad); err == nil {
			t.Errorf("parseRange(%q) accepted", bad)
		}
	}
}

// TestIndex: exact prefixes and globs match as module.MatchPrefixPatterns
// does, and the first matching rule is found whichever way it is indexed.
func TestIndex(t *testing.T) {
	var x index
	x.add("example.com/a", 0)
	x.add("*.corp.example.com", 1)
	x.add("example.com/a/b,example.com/c/", 2)
	x.add("*", 3)
	x.add("example.com/a", 4)
	for mod, want := range map[string][]int{
		"example.com/a":          {0, 3, 4},
		"example.com/a/b":        {0, 2, 3, 4},
		"example.com/ab":         {3},
		"example.com/c/d":        {2, 3},
		"git.corp.example.com/x": {1, 3},
		"corp.example.com/x":     {3},
	} {
		got := x.matches(mod, nil)
		if len(got) != len(want) {
			t.Errorf("matches(%s) = %v, want %v", mod, got, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("matches(%s) = %v, want %v", mod, got, want)
				break
			}
		}
	}
	var y index
	y.add("example.com/a", 0)
	if y.any("example.com/b") || !y.any("example.com/a/v2") {
		t.Error("any does not match as matches does")
	}
}

// TestGlobMatchesLikeGOPRIVATE: the indexed glob agrees with
// module.MatchPrefixPatterns, the go command's own matcher.
func TestGlobMatchesLikeGOPRIVATE(t *testing.T) {
	patterns := []string{"*", "*.corp.example.com", "*.corp.example.com/*", "example.com/*/x", "example.com/a?c",
		"example.com/[ab]*", `example.com/\*`, "*/*/*", "example.com/a", "golang.org/x/*"}
	paths := []string{"example.com", "example.com/a", "example.com/abc", "example.com/b/x", "example.com/b/x/y", "example.com/*",
		"git.corp.example.com", "git.corp.example.com/team/repo", "corp.example.com/x", "golang.org/x/text", "golang.org/x", "a/b/c", "a/b"}
	for _, p := range patterns {
		g := newGlob(p, 0)
		for _, m := range paths {
			if got, want := g.match(m), module.MatchPrefixPatterns(p, m); got != want {
				t.Errorf("glob %q matches %q: %v, MatchPrefixPatterns says %v", p, m, got, want)
			}
		}
	}
}
