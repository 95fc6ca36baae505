package clientenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Format is a syntax the settings are written in.
type Format string

// The formats. GoEnv is `go env -w` lines, with values quoted for a POSIX
// shell only where needed, so that ordinary values paste into any shell.
// Cmd is for the interactive cmd.exe prompt (a .bat file would need each
// % doubled instead).
const (
	GoEnv         Format = "go-env"
	Sh            Format = "sh"
	Fish          Format = "fish"
	PowerShell    Format = "powershell"
	Cmd           Format = "cmd"
	Dockerfile    Format = "dockerfile"
	GitHubActions Format = "github-actions"
	GitLabCI      Format = "gitlab-ci"
)

// Formats lists every format, shells first.
var Formats = []Format{GoEnv, Sh, Fish, PowerShell, Cmd, Dockerfile, GitHubActions, GitLabCI}

// ParseFormat returns the format named s.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown format %q (one of %s)", s, strings.Join(names, ", "))
}

// Render writes e in format f: the notes as comments, then one setting a
// line (for the YAML formats, a mapping under its key).
func Render(e Env, f Format) string {
	var b strings.Builder
	comment := "# "
	if f == Cmd {
		comment = "REM "
	}
	for _, n := range e.Notes {
		b.WriteString(comment + oneLine(n) + "\n")
	}
	switch f {
	case GitHubActions:
		b.WriteString("env:\n")
	case GitLabCI:
		b.WriteString("variables:\n")
	}
	for _, v := range e.Vars {
		b.WriteString(Line(f, v) + "\n")
	}
	return b.String()
}

// Line is the one line that makes setting v in format f.
func Line(f Format, v Var) string {
	switch f {
	case Sh:
		return "export " + v.Name + "=" + QuoteSh(v.Value)
	case Fish:
		return "set -gx " + v.Name + " " + QuoteFish(v.Value)
	case PowerShell:
		return "$env:" + v.Name + " = " + QuotePowerShell(v.Value)
	case Cmd:
		return "set " + v.Name + "=" + QuoteCmd(v.Value)
	case Dockerfile:
		return "ENV " + v.Name + "=" + QuoteDockerfile(v.Value)
	case GitHubActions:
		return "  " + v.Name + ": " + quoteYAML(strings.ReplaceAll(v.Value, "${{", "${{ '${{' }}"))
	case GitLabCI:
		// GitLab expands $NAME in variables; $$ is a literal $.
		return "  " + v.Name + ": " + quoteYAML(strings.ReplaceAll(v.Value, "$", "$$"))
	default:
		return "go env -w " + QuoteSh(v.Name+"="+v.Value)
	}
}

// shSafe reports whether s means itself, unquoted, to a POSIX shell and
// to fish, PowerShell and cmd (no comma: PowerShell makes a list of it).
func shSafe(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case strings.ContainsRune("+=:./_-", r):
		default:
			return false
		}
	}
	return true
}

// QuoteSh quotes s for a POSIX shell: as is when nothing in it is special,
// else in single quotes, inside which only ' itself needs care ('\”).
func QuoteSh(s string) string {
	if shSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// QuoteFish quotes s for fish: in its single quotes, \ and ' are escaped
// with a backslash and nothing else is special.
func QuoteFish(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// QuotePowerShell quotes s for PowerShell: a verbatim single-quoted
// string, in which a quote is doubled. PowerShell takes the typographic
// single quotes as quotes too, so they are doubled as well.
func QuotePowerShell(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

// QuoteCmd escapes s for `set NAME=s` at the interactive cmd.exe prompt.
// The characters that control the line are escaped with ^; a % is
// followed by ^, so that %x% names the undefined variable ^x% and stays
// as written until the ^ is dropped, the prompt's only way to keep a %.
func QuoteCmd(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '^', '&', '|', '<', '>', '(', ')', '"', '!':
			b.WriteByte('^')
			b.WriteRune(r)
		case '%':
			b.WriteString("%^")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// QuoteDockerfile quotes s for an ENV instruction: double quotes, in which
// Docker treats \, " and $ (variable substitution) specially.
func QuoteDockerfile(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`).Replace(s) + `"`
}

// quoteYAML writes s as a YAML double-quoted scalar; a JSON string is one.
func quoteYAML(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// oneLine keeps a note on its comment line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
