package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/modgate/modgate/internal/policy"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/scan"
)

const scanUsage = `Usage: modgate scan [DIR] [--server URL | --policy FILE] [--sbom FILE] [--json]

Checks the build list of the module in DIR (default ".") against a
download policy and prints every violation: denied, not allowed, vulnerable
(advisory and fixed version), too young, retracted. For CI gates.

The build list is what "go list -m all" gives in DIR, with this
environment (GOPROXY, GOFLAGS, ...); the zips are not downloaded.

  --server URL      ask the modgate at URL (POST URL/policy/check); a token
                    from --token-file or MODGATE_TOKEN is sent as a bearer
                    token when given
  --policy FILE     apply a policy file here instead (as modgate serve
                    --policy reads it, with its vulndb)
  --sbom FILE       write a CycloneDX JSON SBOM of the build list, with the
                    go.sum hashes, to FILE
  --json            print the results as JSON

Exit status: 0 no violation, 1 violations, 2 the scan could not run
(usage, go command, network).
`

// scanTimeout bounds the whole scan: the go command and the server.
const scanTimeout = 10 * time.Minute

// scanCmd runs "modgate scan" and returns the exit status.
func scanCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("modgate scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, scanUsage) }
	server := fs.String("server", "", "modgate's base `URL`")
	policyFile := fs.String("policy", "", "a policy `file` to apply locally")
	sbom := fs.String("sbom", "", "write a CycloneDX JSON SBOM to `file`")
	asJSON := fs.Bool("json", false, "print JSON")
	tokenFile := fs.String("token-file", "", "the `file` holding the token (default: $MODGATE_TOKEN)")
	// DIR may come before or after the flags.
	dir := "."
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		dir = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "modgate scan: unexpected arguments %q\n", fs.Args())
			return 2
		}
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "modgate scan:", redact.Text(err.Error()))
		return 2
	}
	if *server != "" && *policyFile != "" {
		return fail(errors.New("give --server or --policy, not both"))
	}
	if *server == "" && *policyFile == "" && *sbom == "" {
		return fail(errors.New("nothing to do: give --server URL or --policy FILE, and/or --sbom FILE"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), scanTimeout)
	defer cancel()
	var checker scan.Checker
	opts := scan.Options{}
	switch {
	case *policyFile != "":
		e, err := policy.New(policy.Config{File: *policyFile})
		if err != nil {
			return fail(err)
		}
		defer e.Close()
		checker = scan.Local{Engine: e}
		opts.Retracted = e.BlocksRetracted()
	case *server != "":
		var token string
		if *tokenFile != "" || getenv("MODGATE_TOKEN") != "" {
			t, err := readToken(*tokenFile, getenv)
			if err != nil {
				return fail(err)
			}
			token = t
		}
		if _, err := scan.CheckURL(*server, token != ""); err != nil {
			return fail(err)
		}
		checker = scan.Remote{URL: *server, Token: token, Client: &http.Client{Timeout: scanTimeout}}
	}

	bl, err := scan.Load(ctx, dir, opts)
	if err != nil {
		return fail(err)
	}
	if *sbom != "" {
		if err := writeSBOM(*sbom, bl); err != nil {
			return fail(err)
		}
	}
	if checker == nil {
		return 0
	}
	results, err := checker.Check(ctx, bl.Modules)
	if err != nil {
		return fail(err)
	}
	var violations int
	if *asJSON {
		for _, r := range results {
			if !r.Allowed {
				violations++
			}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Module     string               `json:"module"`
			Violations int                  `json:"violations"`
			Local      []string             `json:"local,omitempty"`
			Results    []policy.CheckResult `json:"results"`
		}{bl.Main, violations, bl.Local, results})
	} else {
		violations = scan.Report(stdout, results)
		for _, l := range bl.Local {
			fmt.Fprintf(stdout, "%s: note: replaced by a directory, not checked\n", l)
		}
		fmt.Fprintf(stdout, "%s: %d modules checked, %d violations\n", bl.Main, len(results), violations)
	}
	if violations > 0 {
		return 1
	}
	return 0
}

// writeSBOM writes the SBOM to a temporary file beside name and renames
// it, so that a failed scan leaves no half SBOM for a later CI step.
func writeSBOM(name string, bl *scan.BuildList) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".sbom-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := scan.WriteSBOM(f, bl, "modgate", modgateVersion(), time.Now()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
