package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/modgate/modgate/internal/doctor"
)

const doctorUsage = `Usage: modgate doctor [--proxy URL] [--json]

Checks this machine as a client of a Go module proxy: the go command's
settings (go env), HTTPS_PROXY/NO_PROXY, SSL_CERT_FILE/SSL_CERT_DIR, .netrc
and git's insteadOf rules, then each GOPROXY entry step by step (DNS, TCP,
TLS, HTTP, the checksum database through the proxy, and, for a modgate,
whether its private patterns agree with GONOSUMDB/GONOPROXY here). Every
failure comes with the command that fixes it. Each network step gives up
after 5 seconds.

  --proxy URL  check URL in place of GOPROXY's first entry
  --json       print the checks as one JSON object

Exit status: 0 when nothing failed (warnings allowed), 1 otherwise.
`

// errDoctorFailed makes "modgate doctor" exit 1 after its report.
var errDoctorFailed = errors.New("doctor: some checks failed (see above)")

// runDoctor runs "modgate doctor" on this machine.
func runDoctor(args []string) error {
	return doctorCmd(context.Background(), args, os.Stdout, os.Stderr, doctor.LoadEnv)
}

// doctorCmd runs "modgate doctor"; loadEnv describes the machine, once the
// flags are known to be fine.
func doctorCmd(ctx context.Context, args []string, stdout, stderr io.Writer, loadEnv func(context.Context) doctor.Env) error {
	fs := flag.NewFlagSet("modgate doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, doctorUsage) }
	proxy := fs.String("proxy", "", "check `URL` in place of GOPROXY's first entry")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("doctor takes no arguments, got %q", fs.Arg(0))
	}
	if *proxy != "" {
		if u, err := url.Parse(*proxy); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("--proxy must be an http:// or https:// URL")
		}
	}
	report := doctor.Run(ctx, loadEnv(ctx), doctor.Options{Proxy: *proxy})
	var err error
	if *asJSON {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if report.Failed() {
		return errDoctorFailed
	}
	return nil
}
