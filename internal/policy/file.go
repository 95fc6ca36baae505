package policy

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/semver"
	"gopkg.in/yaml.v3"
)

// parse reads a policy file. Every error names the file, the line, and the
// key, as "policy file p.yaml:7: deny[1].versions: invalid range ...".
func parse(name string, data []byte) (*policy, error) {
	p := &policy{data: data}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return p, nil // an empty file: everything allowed
	}
	ps := &parser{file: name}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return p, nil
	}
	if err := ps.mapping(root, "", topKeys, func(key string, v *yaml.Node) error {
		switch key {
		case "deny":
			return ps.list(v, "deny", func(at string, n *yaml.Node) error {
				var r denyRule
				if err := ps.mapping(n, at, []string{"module", "versions", "reason"}, func(k string, v *yaml.Node) error {
					var err error
					switch k {
					case "module":
						r.module, err = ps.pattern(v, at+".module")
					case "versions":
						var s string
						if s, err = ps.str(v, at+".versions"); err == nil {
							if r.versions, err = parseRange(s); err != nil {
								err = ps.errorf(v, at+".versions", "%v", err)
							}
						}
					case "reason":
						r.reason, err = ps.str(v, at+".reason")
						r.reason = strings.Join(strings.Fields(r.reason), " ")
					}
					return err
				}); err != nil {
					return err
				}
				if r.module == "" {
					return ps.errorf(n, at, "no module: say which modules the rule denies (\"*\" for all)")
				}
				p.deny.add(r.module, len(p.denyRules))
				p.denyRules = append(p.denyRules, r)
				return nil
			})
		case "allow":
			return ps.list(v, "allow", func(at string, n *yaml.Node) error {
				var pat string
				var err error
				if n.Kind == yaml.MappingNode {
					err = ps.mapping(n, at, []string{"module", "reason"}, func(k string, v *yaml.Node) error {
						var err error
						if k == "module" {
							pat, err = ps.pattern(v, at+".module")
						} else {
							_, err = ps.str(v, at+"."+k)
						}
						return err
					})
					if err == nil && pat == "" {
						err = ps.errorf(n, at, "no module")
					}
				} else {
					pat, err = ps.pattern(n, at)
				}
				if err != nil {
					return err
				}
				p.allow.add(pat, p.allowN)
				p.allowN++
				return nil
			})
		case "min-age":
			return ps.list(v, "min-age", func(at string, n *yaml.Node) error {
				var r ageRule
				seenAge := false
				if err := ps.mapping(n, at, []string{"module", "age"}, func(k string, v *yaml.Node) error {
					var err error
					switch k {
					case "module":
						r.module, err = ps.pattern(v, at+".module")
					case "age":
						seenAge = true
						var s string
						if s, err = ps.str(v, at+".age"); err == nil {
							if r.age, err = parseAge(s); err != nil {
								err = ps.errorf(v, at+".age", "%v", err)
							}
							r.text = s
						}
					}
					return err
				}); err != nil {
					return err
				}
				if r.module == "" || !seenAge {
					return ps.errorf(n, at, "want both module and age")
				}
				p.minAge.add(r.module, len(p.ageRules))
				p.ageRules = append(p.ageRules, r)
				return nil
			})
		case "vulndb":
			s, err := ps.str(v, "vulndb")
			p.vulndb = s
			return err
		case "waive":
			return ps.list(v, "waive", func(at string, n *yaml.Node) error {
				var w waiver
				if err := ps.mapping(n, at, []string{"id", "module", "reason"}, func(k string, v *yaml.Node) error {
					var err error
					switch k {
					case "id":
						w.id, err = ps.str(v, at+".id")
					case "module":
						w.module, err = ps.pattern(v, at+".module")
					case "reason":
						_, err = ps.str(v, at+".reason")
					}
					return err
				}); err != nil {
					return err
				}
				if w.id == "" {
					return ps.errorf(n, at, "no id: say which advisory is waived (GO-YYYY-NNNN)")
				}
				if p.waivers == nil {
					p.waivers = map[string][]string{}
				}
				p.waivers[w.id] = append(p.waivers[w.id], w.module)
				return nil
			})
		case "block-retracted":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				return ps.errorf(v, "block-retracted", "want true or false")
			}
			p.blockRetracted, _ = strconv.ParseBool(v.Value)
			return nil
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return p, nil
}

var topKeys = []string{"deny", "allow", "min-age", "vulndb", "waive", "block-retracted"}

type parser struct{ file string }

func (ps *parser) errorf(n *yaml.Node, at, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if at != "" {
		msg = at + ": " + msg
	}
	return fmt.Errorf("policy file %s:%d: %s", ps.file, n.Line, msg)
}

// mapping calls f for each key of n, a mapping whose keys must be among
// known, each at most once.
func (ps *parser) mapping(n *yaml.Node, at string, known []string, f func(key string, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		what := at
		if what == "" {
			what = "the file"
		}
		return ps.errorf(n, "", "%s: want a mapping of keys (%s)", what, strings.Join(known, ", "))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		full := name
		if at != "" {
			full = at + "." + name
		}
		if k.Kind != yaml.ScalarNode {
			return ps.errorf(k, at, "want a key name")
		}
		if !contains(known, name) {
			msg := fmt.Sprintf("unknown key %q", name)
			if s := suggest(name, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (known: " + strings.Join(known, ", ") + ")"
			}
			return ps.errorf(k, at, "%s", msg)
		}
		if seen[name] {
			return ps.errorf(k, full, "given twice")
		}
		seen[name] = true
		if err := f(name, v); err != nil {
			return err
		}
	}
	return nil
}

// list calls f for each element of n, a sequence (or null: empty).
func (ps *parser) list(n *yaml.Node, at string, f func(at string, n *yaml.Node) error) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return ps.errorf(n, at, "want a list")
	}
	for i, e := range n.Content {
		if err := f(fmt.Sprintf("%s[%d]", at, i), e); err != nil {
			return err
		}
	}
	return nil
}

func (ps *parser) str(n *yaml.Node, at string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", ps.errorf(n, at, "want a string")
	}
	return n.Value, nil
}

// pattern reads a module pattern list: GOPRIVATE's syntax, globs of path
// prefixes separated by commas; "*" matches every module.
func (ps *parser) pattern(n *yaml.Node, at string) (string, error) {
	s, err := ps.str(n, at)
	if err != nil {
		return "", err
	}
	var elems []string
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if _, err := path.Match(e, ""); err != nil || strings.ContainsAny(e, " \t") {
			return "", ps.errorf(n, at, "invalid module pattern %q (GOPRIVATE syntax: globs of path prefixes separated by commas)", e)
		}
		elems = append(elems, e)
	}
	if len(elems) == 0 {
		return "", ps.errorf(n, at, "empty module pattern (\"*\" matches every module)")
	}
	return strings.Join(elems, ","), nil
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError rewrites a YAML syntax error in the file:line form.
func yamlError(name string, err error) error {
	msg := err.Error()
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("policy file %s:%s: %s", name, m[1], m[2])
	}
	return fmt.Errorf("policy file %s: %s", name, strings.TrimPrefix(msg, "yaml: "))
}

// parseAge reads a duration as time.ParseDuration does, or a whole number
// of days ("7d").
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 3650 {
			return 0, fmt.Errorf("invalid age %q (want a duration like 72h or a number of days like 7d)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 0 {
			return 0, fmt.Errorf("invalid age %q (want a duration like 72h or a number of days like 7d)", s)
		}
	}
	return d, nil
}

// parseRange reads a version range: comparisons (<, <=, >, >=, =) with
// semantic versions, separated by spaces, all of which must hold; a bare
// version means =; "" means every version.
func parseRange(s string) (versionRange, error) {
	fields := strings.Fields(s)
	var r versionRange
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if strings.TrimLeft(f, "<>=") == "" && i+1 < len(fields) { // "<= v1.2.3"
			i++
			f += fields[i]
		}
		op := f[:len(f)-len(strings.TrimLeft(f, "<>="))]
		v := f[len(op):]
		var c constraint
		switch op {
		case "<":
			c.op = opLT
		case "<=":
			c.op = opLE
		case ">":
			c.op = opGT
		case ">=":
			c.op = opGE
		case "=", "":
			c.op = opEQ
		default:
			return nil, fmt.Errorf("invalid range %q (unknown comparison %q; use <, <=, >, >=, =)", s, op)
		}
		if !semver.IsValid(v) {
			return nil, fmt.Errorf("invalid range %q (%q is not a semantic version like v1.2.3)", s, v)
		}
		c.version = v
		r = append(r, c)
	}
	return r, nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// suggest returns the known key closest to key, if it is close enough to
// be a typo.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
