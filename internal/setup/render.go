package setup

import (
	"bytes"
	"net/url"
	"strings"

	"github.com/modgate/modgate/internal/clientenv"
)

// snippet is one block of text to copy, in one syntax.
type snippet struct {
	Title, Text string
}

// pageData is what the HTML templates show.
type pageData struct {
	Info
	OK        bool   // the client settings could be computed
	Problem   string // else why not
	Notes     []string
	GoEnv     string
	OneLiner  string
	Shells    []snippet
	CI        []snippet
	GoAuth    string
	NetrcLine string
}

func env(in Info) (clientenv.Env, string) {
	if in.URLError != "" {
		return clientenv.Env{}, in.URLError
	}
	e, err := clientenv.For(clientenv.Settings{URL: in.URL, Private: in.Private, Tokens: in.Tokens, SumDB: in.SumDB})
	if err != nil {
		return clientenv.Env{}, err.Error()
	}
	return e, ""
}

func page(in Info) pageData {
	d := pageData{Info: in}
	e, problem := env(in)
	if problem != "" {
		d.Problem = problem
		return d
	}
	d.OK = true
	d.Notes = e.Notes
	d.GoEnv = vars(e, clientenv.GoEnv)
	d.OneLiner = "curl -fsSL " + clientenv.QuoteSh(in.URL+"/setup.sh") + " | sh"
	d.Shells = []snippet{
		{"sh, bash, zsh", vars(e, clientenv.Sh)},
		{"fish", vars(e, clientenv.Fish)},
		{"PowerShell", vars(e, clientenv.PowerShell)},
		{"cmd.exe", vars(e, clientenv.Cmd)},
	}
	d.CI = []snippet{
		{"Dockerfile", vars(e, clientenv.Dockerfile)},
		{"GitHub Actions (workflow or job)", clientenv.Render(clientenv.Env{Vars: e.Vars}, clientenv.GitHubActions)},
		{"GitLab CI (.gitlab-ci.yml)", clientenv.Render(clientenv.Env{Vars: e.Vars}, clientenv.GitLabCI)},
	}
	if in.Tokens {
		d.GoAuth = clientenv.Line(clientenv.GoEnv, clientenv.Var{Name: "GOAUTH", Value: clientenv.GoAuthCommand(in.URL, clientenv.DefaultTokenFile)})
		if u, err := url.Parse(in.URL); err == nil {
			// The go command matches a .netrc machine against the host
			// with its port; modgate reads the password as the token.
			d.NetrcLine = "machine " + u.Host + " login any password YOUR_TOKEN"
		}
	}
	return d
}

// vars renders the settings alone, without the notes (the page shows
// them once, as text).
func vars(e clientenv.Env, f clientenv.Format) string {
	return clientenv.Render(clientenv.Env{Vars: e.Vars}, f)
}

// script is the body of /setup.sh: POSIX sh that checks for the go command
// and runs `go env -w` for each setting. Everything is in a function
// called on the last line, so that a download cut short runs nothing.
func script(in Info) []byte {
	var b bytes.Buffer
	b.WriteString("#!/bin/sh\n")
	e, problem := env(in)
	if problem != "" {
		b.WriteString("echo " + clientenv.QuoteSh("modgate setup: "+problem) + " >&2\nexit 1\n")
		return b.Bytes()
	}
	b.WriteString("# Sets the go command up for the modgate at " + in.URL + " (modgate " + comment(in.Version) + ").\n")
	b.WriteString("# Usage: curl -fsSL " + clientenv.QuoteSh(in.URL+"/setup.sh") + " | sh\n")
	b.WriteString("set -eu\n\nmodgate_setup() {\n")
	b.WriteString("\tif ! command -v go >/dev/null 2>&1; then\n")
	b.WriteString("\t\techo 'modgate setup: the go command is not on PATH; install Go first' >&2\n\t\texit 1\n\tfi\n")
	for _, v := range e.Vars {
		b.WriteString("\t" + clientenv.Line(clientenv.GoEnv, v) + "\n")
	}
	for _, n := range e.Notes {
		b.WriteString("\techo " + clientenv.QuoteSh("modgate setup: "+n) + " >&2\n")
	}
	names := make([]string, len(e.Vars))
	for i, v := range e.Vars {
		names[i] = v.Name
	}
	b.WriteString("\techo " + clientenv.QuoteSh("modgate setup: done; check with: go env "+strings.Join(names, " ")) + " >&2\n")
	b.WriteString("}\n\nmodgate_setup\n")
	return b.Bytes()
}

// comment keeps text on its comment line.
func comment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
