package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/modgate/modgate/internal/redact"
)

const goauthUsage = `Usage: modgate goauth --url URL[,URL...] [--token-file FILE]

A GOAUTH command (see "go help goauth") that gives the go command a modgate
token for modgate's URLs:

  go env -w GOAUTH='modgate goauth --url https://modgate.corp.example.com --token-file ~/.config/modgate/token'

The token is read from FILE (a leading ~/ is the home directory), else from
the environment variable MODGATE_TOKEN. The go command sends it as
"Authorization: Bearer <token>" to the given URLs and the paths below them,
over https only. It splits GOAUTH at ';' and then at spaces, with single or
double quotes around a word that has spaces and no escapes: quote such a
path, and do not use a path with ';'.
`

// maxGoauthStdin bounds what is read of the HTTP response the go command
// writes to stdin on a retry: a status line and headers.
const maxGoauthStdin = 1 << 20

// urlList is a flag taking URLs, repeated or comma-separated.
type urlList []string

func (l *urlList) String() string { return strings.Join(*l, ",") }

func (l *urlList) Set(v string) error {
	for u := range strings.SplitSeq(v, ",") {
		if u = strings.TrimSpace(u); u != "" {
			*l = append(*l, u)
		}
	}
	return nil
}

// goauthCmd runs "modgate goauth". The go command runs it with no
// argument before its first https request, and again with the request's
// URL as an argument and the 4xx response on stdin after a refusal. The
// answer is the same both times: a credential set for modgate's URLs.
// On any error, nothing goes to stdout, so that the go command does not
// take half an answer.
func goauthCmd(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("modgate goauth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, goauthUsage) }
	var urls urlList
	fs.Var(&urls, "url", "modgate's base `URL` (https), repeated or comma-separated")
	tokenFile := fs.String("token-file", "", "the `file` holding the token (default: $MODGATE_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch fs.NArg() {
	case 0:
	case 1:
		// A retry: the go command writes the refused response to stdin.
		// Read it, so that the go command's write does not fail; the
		// answer does not depend on it.
		io.Copy(io.Discard, io.LimitReader(stdin, maxGoauthStdin))
	default:
		return fmt.Errorf("goauth: unexpected arguments %q (the go command passes at most a URL)", fs.Args())
	}
	if len(urls) == 0 {
		return errors.New("goauth: --url is required (modgate's https URL)")
	}
	var prefixes []string
	for _, raw := range urls {
		p, err := credentialURL(raw)
		if err != nil {
			return fmt.Errorf("goauth: --url %s: %v", redact.URL(raw), err)
		}
		prefixes = append(prefixes, p)
	}
	token, err := readToken(*tokenFile, getenv)
	if err != nil {
		return fmt.Errorf("goauth: %v", err)
	}
	var b strings.Builder
	for _, p := range prefixes {
		b.WriteString(p + "\n")
	}
	b.WriteString("\nAuthorization: Bearer " + token + "\n\n")
	_, err = io.WriteString(stdout, b.String())
	return err
}

// credentialURL checks a modgate URL and returns it as a GOAUTH URL line:
// https, a host, no user, query or fragment, no trailing slash (the go
// command matches credentials by host and path prefix).
func credentialURL(raw string) (string, error) {
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return "", errors.New("not a URL")
	}
	switch {
	case u.Scheme != "https":
		return "", errors.New("not an https URL (the go command sends credentials over https only)")
	case u.Host == "":
		return "", errors.New("no host")
	case u.User != nil:
		return "", errors.New("a URL with a user name or password; give the token with --token-file or MODGATE_TOKEN")
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("a URL with a query or fragment")
	}
	return "https://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/"), nil
}

// readToken returns the token from file (a leading ~/ is the home
// directory: the go command runs GOAUTH without a shell) or, without a
// file, from $MODGATE_TOKEN. Errors never quote the token.
func readToken(file string, getenv func(string) string) (string, error) {
	var token, from string
	if file != "" {
		if rest, ok := strings.CutPrefix(file, "~/"); ok {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("--token-file %s: %v", file, err)
			}
			file = filepath.Join(home, rest)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading the token: %v", err)
		}
		token, from = string(data), "token file "+file
	} else {
		token, from = getenv("MODGATE_TOKEN"), "MODGATE_TOKEN"
		if token == "" {
			return "", errors.New("no token: give --token-file FILE or set MODGATE_TOKEN")
		}
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", fmt.Errorf("%s is empty", from)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return "", fmt.Errorf("%s holds more than one token-like word or a control character; it should hold just the token", from)
		}
	}
	return token, nil
}
