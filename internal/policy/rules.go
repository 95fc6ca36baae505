package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/modgate/modgate/internal/vulndb"
)

// Verdict is the policy's answer for one module version.
type Verdict struct {
	Allowed bool
	// Rule is the kind of rule that blocked it: "allow" (not in the allow
	// list), "deny", "vuln", "min-age", "retracted"; "" when allowed.
	Rule   string
	Reason string
}

var allowed = Verdict{Allowed: true}

// policy is one parsed policy file, immutable once loaded.
type policy struct {
	allow     index // rule numbers are positions in the allow list
	allowN    int
	deny      index
	denyRules []denyRule
	minAge    index
	ageRules  []ageRule
	vulndb    string              // as written in the file
	waivers   map[string][]string // advisory ID -> module patterns ("" for all)
	db        *vulndb.DB          // opened from vulndb; nil without
	// blockRetracted refuses versions their author retracted (see
	// retract.go; the wrapper checks it, as it needs the module's go.mod).
	blockRetracted bool
	// data is the file it was parsed from, shown as written by the
	// policy view (view.go).
	data []byte
}

type denyRule struct {
	module   string
	versions versionRange
	reason   string
}

type ageRule struct {
	module string
	age    time.Duration
	text   string // the age as the file wrote it
}

type waiver struct{ id, module string }

// decide applies p to a version of a module published at t (zero:
// unknown), at the time now.
func (p *policy) decide(mod, version string, t, now time.Time) Verdict {
	if p.allowN > 0 && !p.allow.any(mod) {
		return Verdict{Rule: "allow", Reason: "not in the allow list"}
	}
	if len(p.denyRules) > 0 {
		var buf [8]int
		for _, i := range p.deny.matches(mod, buf[:0]) {
			if r := &p.denyRules[i]; r.versions.contains(version) {
				reason := r.reason
				if reason == "" {
					reason = "denied by policy"
				}
				return Verdict{Rule: "deny", Reason: reason}
			}
		}
	}
	if p.db != nil {
		for _, a := range p.db.Affecting(mod, version) {
			if p.waived(a.ID, mod) {
				continue
			}
			fixed := "no fixed version"
			if a.Fixed != "" {
				fixed = "fixed in " + a.Fixed
			}
			return Verdict{Rule: "vuln", Reason: fmt.Sprintf("%s (%s)", a.ID, fixed)}
		}
	}
	if r := p.ageRule(mod); r != nil && !t.IsZero() && now.Sub(t) < r.age {
		return Verdict{Rule: "min-age", Reason: fmt.Sprintf("published %s, younger than %s", t.UTC().Format(time.RFC3339), r.text)}
	}
	return allowed
}

// ageRule returns the first min-age rule for mod, or nil.
func (p *policy) ageRule(mod string) *ageRule {
	if len(p.ageRules) == 0 {
		return nil
	}
	var buf [8]int
	if m := p.minAge.matches(mod, buf[:0]); len(m) > 0 && p.ageRules[m[0]].age > 0 {
		return &p.ageRules[m[0]]
	}
	return nil
}

func (p *policy) waived(id, mod string) bool {
	for _, pat := range p.waivers[id] {
		if pat == "" || module.MatchPrefixPatterns(pat, mod) {
			return true
		}
	}
	return false
}

// index finds the rules whose module patterns match a path. Patterns
// without glob characters (the common case: one module or a path prefix)
// are found by looking up each prefix of the path in a map; only globs are
// tried one by one. This keeps a policy of a thousand rules as cheap as
// one of ten.
type index struct {
	exact map[string][]int // pattern -> rule numbers, ascending
	globs []glob           // ascending rule numbers
}

// glob is one glob pattern. Matching it is what MatchPrefixPatterns does
// (path.Match against the path's first elems elements), with a quick
// rejection first: most paths lack the pattern's longest literal part.
type glob struct {
	pattern string
	rule    int
	elems   int
	literal string
}

func newGlob(pattern string, rule int) glob {
	g := glob{pattern: pattern, rule: rule, elems: strings.Count(pattern, "/") + 1}
	for _, part := range strings.FieldsFunc(pattern, func(r rune) bool { return strings.ContainsRune(`*?[]\`, r) }) {
		if len(part) > len(g.literal) && !strings.ContainsAny(pattern, `[\`) {
			g.literal = part
		}
	}
	return g
}

func (g *glob) match(mod string) bool {
	if g.pattern == "*" {
		return true
	}
	prefix, n := mod, 0
	for i := 0; i < len(mod); i++ {
		if mod[i] == '/' {
			if n++; n == g.elems {
				prefix = mod[:i]
				break
			}
		}
	}
	if n < g.elems-1 {
		return false // fewer elements than the pattern
	}
	if g.literal != "" && !strings.Contains(prefix, g.literal) {
		return false
	}
	ok, _ := path.Match(g.pattern, prefix)
	return ok
}

// add indexes rule under each element of the comma-separated patterns.
func (x *index) add(patterns string, rule int) {
	for _, p := range strings.Split(patterns, ",") {
		if p == "*" || strings.ContainsAny(p, `*?[\`) {
			x.globs = append(x.globs, newGlob(p, rule))
			continue
		}
		p = strings.TrimSuffix(p, "/")
		if x.exact == nil {
			x.exact = map[string][]int{}
		}
		if rs := x.exact[p]; len(rs) == 0 || rs[len(rs)-1] != rule {
			x.exact[p] = append(rs, rule)
		}
	}
}

// matches appends to buf the rules matching mod, ascending, each once.
func (x *index) matches(mod string, buf []int) []int {
	for p := mod; ; {
		buf = append(buf, x.exact[p]...)
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	for i := range x.globs {
		if g := &x.globs[i]; g.match(mod) {
			buf = append(buf, g.rule)
		}
	}
	if len(buf) > 1 {
		slices.Sort(buf)
		buf = slices.Compact(buf)
	}
	return buf
}

// any reports whether some rule matches mod, without collecting them.
func (x *index) any(mod string) bool {
	for p := mod; ; {
		if len(x.exact[p]) > 0 {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	for i := range x.globs {
		if x.globs[i].match(mod) {
			return true
		}
	}
	return false
}

// versionRange is a conjunction of comparisons; empty holds every version.
type versionRange []constraint

type constraint struct {
	op      byte
	version string
}

const (
	opLT byte = iota
	opLE
	opGT
	opGE
	opEQ
)

func (r versionRange) contains(v string) bool {
	for _, c := range r {
		d := semver.Compare(v, c.version)
		var ok bool
		switch c.op {
		case opLT:
			ok = d < 0
		case opLE:
			ok = d <= 0
		case opGT:
			ok = d > 0
		case opGE:
			ok = d >= 0
		case opEQ:
			ok = d == 0
		}
		if !ok {
			return false
		}
	}
	return true
}
