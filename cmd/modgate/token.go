package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modgate/modgate/internal/auth"
)

const tokenUsage = `Usage:
  modgate token add --tokens FILE --name NAME --allow PATTERNS [--admin]
  modgate token list --tokens FILE
  modgate token revoke --tokens FILE --name NAME

Manages the client tokens of "modgate serve --tokens FILE". FILE holds only
a SHA-256 hash of each token; "add" prints the new token as the last line
of its output, once: store it then (a GOAUTH token file, .netrc, a CI
secret). PATTERNS are module path patterns in GOPRIVATE syntax, separated
by commas ("*" for every module). A running server sees a change within a
second.
`

// tokenCmd runs "modgate token ...". The token of "add" goes alone to
// stdout, so that TOKEN=$(modgate token add ...) works; everything meant
// for people goes to stderr.
func tokenCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return errors.New("token: missing subcommand (add, list or revoke)")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("modgate token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tokenUsage) }
	file := fs.String("tokens", "", "the tokens `file`")
	var name, allow *string
	var admin *bool
	switch sub {
	case "add":
		name = fs.String("name", "", "the token's `name` (letters, digits, '.', '_', '-'; at most 64)")
		allow = fs.String("allow", "", "module path `patterns` the token may read, GOPRIVATE syntax, comma-separated; * for all")
		admin = fs.Bool("admin", false, "let the token use /metrics and /admin/")
	case "revoke":
		name = fs.String("name", "", "the `name` of the token to revoke")
	case "list":
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stderr, tokenUsage)
		return flag.ErrHelp
	default:
		fmt.Fprint(stderr, tokenUsage)
		return fmt.Errorf("token: unknown subcommand %q (add, list or revoke)", sub)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token %s: unexpected argument %q", sub, fs.Arg(0))
	}
	if *file == "" {
		return fmt.Errorf("token %s: --tokens FILE is required", sub)
	}
	switch sub {
	case "add":
		if *name == "" || *allow == "" {
			return errors.New(`token add: --name and --allow are required (--allow '*' for every module)`)
		}
		patterns, err := auth.ParsePatterns(*allow)
		if err != nil {
			return fmt.Errorf("token add: --allow: %v", err)
		}
		secret, err := auth.Add(*file, *name, patterns, *admin, time.Now())
		if err != nil {
			return fmt.Errorf("token add: %w", err)
		}
		kind := "token"
		if *admin {
			kind = "admin token"
		}
		fmt.Fprintf(stderr, "modgate: created %s %s for %s in %s; it is printed below, once: store it now\n", kind, *name, strings.Join(patterns, ","), *file)
		fmt.Fprintln(stdout, secret)
	case "revoke":
		if *name == "" {
			return errors.New("token revoke: --name is required")
		}
		if err := auth.Revoke(*file, *name); err != nil {
			return fmt.Errorf("token revoke: %w", err)
		}
		fmt.Fprintf(stderr, "modgate: revoked token %s; a running server refuses it within a second\n", *name)
	case "list":
		tokens, err := auth.List(*file)
		if err != nil {
			return fmt.Errorf("token list: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tALLOW\tADMIN\tCREATED")
		for _, t := range tokens {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", t.Name, t.AllowString(), t.Admin, t.Created.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return nil
}
