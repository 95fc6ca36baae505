package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/modgate/modgate/internal/clientenv"
	"github.com/modgate/modgate/internal/redact"
)

const envUsage = `Usage: modgate env --proxy URL [--private PATTERNS] [--tokens] [--shell FORMAT]

Prints the go command's settings for a client of the modgate at URL:
GOPROXY (that server alone), GONOSUMDB (its private patterns) and, when it
requires tokens, GOAUTH. Without --private, the patterns and whether tokens
are on are asked of the server (GET URL/setup.json).

FORMAT is go-env (go env -w lines, the default), sh, fish, powershell, cmd,
dockerfile, github-actions or gitlab-ci. For the current shell:

  eval "$(modgate env --proxy URL --shell sh)"
`

// setupTimeout bounds the request for the server's settings: it is one
// small answer, and the command is useful without it.
const setupTimeout = 5 * time.Second

// maxSetupJSON bounds the answer read.
const maxSetupJSON = 64 << 10

func envCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("modgate env", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, envUsage) }
	proxy := fs.String("proxy", "", "modgate's base `URL`")
	private := fs.String("private", "", "private module path `patterns` (default: the server's)")
	tokens := fs.Bool("tokens", false, "the server requires tokens (default: the server's setting when --private is not given)")
	shell := fs.String("shell", string(clientenv.GoEnv), "output `format`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("env: unexpected arguments %q", fs.Args())
	}
	format, err := clientenv.ParseFormat(*shell)
	if err != nil {
		return fmt.Errorf("env: --shell: %v", err)
	}
	base, err := clientenv.ProxyURL(*proxy)
	if err != nil {
		return fmt.Errorf("env: --proxy: %v", err)
	}
	s := clientenv.Settings{URL: base, Private: *private, Tokens: *tokens}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["private"] {
		info, err := fetchSetup(base)
		if err != nil {
			fmt.Fprintf(stderr, "modgate env: cannot ask %s for its settings (%v); printing no private patterns\n", base, err)
		} else {
			s.Private, s.SumDB = info.Private, info.SumDB
			s.Tokens = s.Tokens || info.Tokens
		}
	}
	e, err := clientenv.For(s)
	if err != nil {
		return fmt.Errorf("env: %v", err)
	}
	_, err = io.WriteString(stdout, clientenv.Render(e, format))
	return err
}

// serverSetup is the part of GET /setup.json the client settings need.
type serverSetup struct {
	Modgate bool   `json:"modgate"`
	Private string `json:"private"`
	SumDB   string `json:"sumdb"`
	Tokens  bool   `json:"tokens"`
}

func fetchSetup(base string) (serverSetup, error) {
	client := &http.Client{Timeout: setupTimeout}
	res, err := client.Get(base + "/setup.json")
	if err != nil {
		return serverSetup{}, errors.New(redact.Text(err.Error()))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return serverSetup{}, fmt.Errorf("GET /setup.json: %s", res.Status)
	}
	var s serverSetup
	if err := json.NewDecoder(io.LimitReader(res.Body, maxSetupJSON)).Decode(&s); err != nil {
		return serverSetup{}, fmt.Errorf("GET /setup.json: %v", err)
	}
	if !s.Modgate {
		return serverSetup{}, errors.New("GET /setup.json: not a modgate answer")
	}
	return s, nil
}
