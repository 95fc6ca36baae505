// Package explain turns the go command's error output into causes and
// fixes. It reads the output as it comes, groups it into errors (a line
// and the indented lines under it), and matches each error against an
// ordered catalog of rules; the first rule that matches explains it.
// Explanations are de-duplicated by rule and subject (a module, a host),
// in order of first appearance.
package explain

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/modgate/modgate/internal/redact"
)

// Rule recognises one kind of error.
type Rule struct {
	// ID names the cause; explanations with the same ID and subject are
	// shown once.
	ID string
	// Title is a few words for a heading ("Connection refused").
	Title string
	// Match is tried on the whole error, its lines joined by "\n". Its named
	// groups (module, version, host, and any others) become placeholders of
	// Cause and Fix: {module}, {version}, {host}, {name}. Module, version
	// and host not captured are taken from the error's text (see fields).
	Match *regexp.Regexp
	// Subject lists the placeholders that tell two occurrences apart:
	// "module", "version", "host". Empty: one explanation for the rule.
	Subject []string
	// Cause and Fix are templates; besides the named groups, {modver} is
	// "module@version" (or what is known of it) and {root} the module path's
	// first element, for GOPRIVATE-style patterns.
	Cause, Fix string
}

// Explanation is one recognised error.
type Explanation struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Subject is what the explanation is about, as the rule tells
	// occurrences apart: "module@version", a module, a host, or "".
	Subject string `json:"subject,omitempty"`
	Module  string `json:"module,omitempty"`
	Version string `json:"version,omitempty"`
	Host    string `json:"host,omitempty"`
	// Line is the first line of the error, credentials redacted.
	Line  string `json:"line"`
	Cause string `json:"cause"`
	Fix   string `json:"fix"`
}

// Limits that keep memory bounded whatever the input.
const (
	maxLineBytes     = 16 << 10 // a longer line is cut
	maxBlockLines    = 40       // lines kept of one error
	maxExplanations  = 200      // distinct explanations kept
	maxShownLineByte = 300      // bytes of Explanation.Line
)

// Collector gathers explanations from one or more output streams (a
// command's stdout and stderr). It is safe for concurrent use by its
// streams.
type Collector struct {
	rules []Rule

	mu   sync.Mutex
	seen map[string]bool
	out  []Explanation
}

// NewCollector returns a Collector matching against rules, in order.
func NewCollector(rules []Rule) *Collector {
	return &Collector{rules: rules, seen: map[string]bool{}}
}

// Stream returns a writer for one output stream. Close it when the stream
// ends, so that its last error is matched too.
func (c *Collector) Stream() io.WriteCloser { return &stream{c: c} }

// Explanations returns what was recognised so far, in order of first
// appearance.
func (c *Collector) Explanations() []Explanation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Explanation(nil), c.out...)
}

// Explain reads r to its end and explains it with the Default catalog.
func Explain(r io.Reader) ([]Explanation, error) {
	c := NewCollector(Default())
	s := c.Stream()
	_, err := io.Copy(s, r)
	s.Close()
	return c.Explanations(), err
}

// stream splits its input into lines and the lines into errors.
type stream struct {
	c       *Collector
	partial []byte // an unfinished line (at most maxLineBytes)
	cut     bool   // the unfinished line was cut: drop the rest of it
	block   []string
}

func (s *stream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.add(p)
			break
		}
		s.add(p[:i])
		s.line(string(s.partial))
		s.partial, s.cut = s.partial[:0], false
		p = p[i+1:]
	}
	return n, nil
}

func (s *stream) add(p []byte) {
	if s.cut {
		return
	}
	if room := maxLineBytes - len(s.partial); len(p) > room {
		p, s.cut = p[:room], true
	}
	s.partial = append(s.partial, p...)
}

func (s *stream) Close() error {
	if len(s.partial) > 0 {
		s.line(string(s.partial))
		s.partial = nil
	}
	s.flush()
	return nil
}

// line adds one line: an indented line continues the current error, an
// empty line ends it, any other line starts a new one.
func (s *stream) line(l string) {
	l = strings.TrimRight(l, "\r")
	switch {
	case strings.TrimSpace(l) == "":
		s.flush()
	case l[0] == ' ' || l[0] == '\t':
		if len(s.block) < maxBlockLines {
			s.block = append(s.block, l)
		}
	default:
		s.flush()
		s.block = append(s.block, l)
	}
}

func (s *stream) flush() {
	if len(s.block) == 0 {
		return
	}
	text := strings.Join(s.block, "\n")
	s.block = s.block[:0]
	s.c.match(text)
}

// match explains one error by the first rule that matches it.
func (c *Collector) match(text string) {
	for i := range c.rules {
		r := &c.rules[i]
		m := r.Match.FindStringSubmatchIndex(text)
		if m == nil {
			continue
		}
		vars := fields(text)
		for j, name := range r.Match.SubexpNames() {
			if name != "" && m[2*j] >= 0 {
				vars[name] = text[m[2*j]:m[2*j+1]]
			}
		}
		c.add(r, vars, text, m[0])
		return
	}
}

func (c *Collector) add(r *Rule, vars map[string]string, text string, at int) {
	key := r.ID
	var subject string
	for _, s := range r.Subject {
		key += "\x00" + vars[s]
		switch {
		case vars[s] == "":
		case subject == "":
			subject = vars[s]
		case s == "version":
			subject += "@" + vars[s]
		default:
			subject += " " + vars[s]
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// An error that names no subject (the go command's "SECURITY ERROR"
	// paragraph after its "checksum mismatch" line) adds nothing to an
	// explanation of the same cause already given.
	if c.seen[key] || (subject == "" && c.seen[r.ID]) || len(c.out) >= maxExplanations {
		return
	}
	c.seen[key] = true
	c.seen[r.ID] = true
	// Show the line the rule matched on.
	start := strings.LastIndexByte(text[:at], '\n') + 1
	line, _, _ := strings.Cut(text[start:], "\n")
	c.out = append(c.out, Explanation{
		ID:      r.ID,
		Title:   r.Title,
		Subject: redact.Line(subject, 200),
		Module:  vars["module"],
		Version: vars["version"],
		Host:    vars["host"],
		Line:    redact.Line(strings.TrimSpace(line), maxShownLineByte),
		Cause:   expand(r.Cause, vars),
		Fix:     expand(r.Fix, vars),
	})
}

// A module path as the go command prints one: a first element with a dot
// (a host name), then path elements. Ports and URL schemes do not match.
const modPathRE = `[A-Za-z0-9][-A-Za-z0-9_~]*(?:\.[-A-Za-z0-9_~]+)+(?:/[-A-Za-z0-9_.~+]+)*`

var (
	// "example.com/x@v1.2.3:" — not "example.com/x/@v/list" in a URL.
	modVerRE = regexp.MustCompile(`(?:^|[\s:"(])(` + modPathRE + `)@([A-Za-z0-9][-A-Za-z0-9_.+]*)(?:[:\s,)"/]|$)`)
	// "module example.com/x:" anywhere.
	modWordRE = regexp.MustCompile(`\bmodule (` + modPathRE + `)(?:[:\s]|$)`)
	// "go: example.com/x: ..." or an indented "example.com/x: ..." at a
	// line start.
	modLeadRE = regexp.MustCompile(`(?m)^(?:go: |\s+)(` + modPathRE + `):`)
	// The host of the first URL, or of a dial or DNS lookup.
	hostRE = regexp.MustCompile(`(?:https?://(?:[^/\s"@]*@)?|dial tcp |lookup )([-A-Za-z0-9_.]+(?::\d+)?|\[[0-9A-Fa-f:.]+\](?::\d+)?)`)
)

// fields finds the module, version and host an error is about.
func fields(text string) map[string]string {
	vars := map[string]string{}
	if m := modVerRE.FindStringSubmatch(text); m != nil {
		vars["module"], vars["version"] = m[1], m[2]
	} else if m := modWordRE.FindStringSubmatch(text); m != nil {
		vars["module"] = m[1]
	} else if m := modLeadRE.FindStringSubmatch(text); m != nil {
		vars["module"] = m[1]
	}
	if m := hostRE.FindStringSubmatch(text); m != nil {
		vars["host"] = m[1]
	}
	return vars
}

var placeholderRE = regexp.MustCompile(`\{[a-z]+\}`)

// expand fills a template. Unknown subjects read as a generic noun, so that
// every template stays a sentence.
func expand(tmpl string, vars map[string]string) string {
	get := func(name, dflt string) string {
		if v := vars[name]; v != "" {
			return redact.Line(v, 200)
		}
		return dflt
	}
	return placeholderRE.ReplaceAllStringFunc(tmpl, func(p string) string {
		name := p[1 : len(p)-1]
		switch name {
		case "module":
			return get("module", "the module")
		case "version":
			return get("version", "the version")
		case "host":
			return get("host", "the server")
		case "modver":
			if vars["module"] == "" {
				return "the module"
			}
			if vars["version"] == "" {
				return get("module", "")
			}
			return get("module", "") + "@" + get("version", "")
		case "root":
			root, _, _ := strings.Cut(vars["module"], "/")
			if root == "" {
				return "corp.example.com"
			}
			return redact.Line(root, 200)
		}
		return get(name, "")
	})
}
