// Package doctor diagnoses a Go developer's machine or CI runner as a
// client of a module proxy: it reads the go command's settings, the
// environment, .netrc and git's URL rewrites, then walks each GOPROXY entry
// step by step (DNS, TCP, TLS, HTTP, checksum database, private patterns)
// and says, for every problem, the command that fixes it.
//
// Everything it reads of the machine comes in through Env, so that tests
// (and other front ends) decide what the machine looks like; LoadEnv fills
// one from the real machine. Network steps each have a short timeout, so a
// run ends in seconds even when every host drops packets.
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Status is the outcome of one check.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn" // works, but something is risky or will bite later
	Fail Status = "fail" // the go command will fail because of this
	Skip Status = "skip" // not applicable, or an earlier step failed
)

// Check is one diagnosis. Detail and Fix never hold a credential.
type Check struct {
	// Target is the GOPROXY entry the check is about (credentials
	// redacted), "" for checks of the machine as a whole.
	Target string `json:"target,omitempty"`
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	// Fix is the exact command (or action) that fixes a warning or failure.
	Fix string `json:"fix,omitempty"`
}

// Summary counts the checks by status.
type Summary struct {
	OK   int `json:"ok"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
	Skip int `json:"skip"`
}

// Report is the result of one run.
type Report struct {
	Checks  []Check `json:"checks"`
	Summary Summary `json:"summary"`
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool { return r.Summary.Fail > 0 }

func (r *Report) add(c Check) {
	r.Checks = append(r.Checks, c)
	switch c.Status {
	case OK:
		r.Summary.OK++
	case Warn:
		r.Summary.Warn++
	case Fail:
		r.Summary.Fail++
	case Skip:
		r.Summary.Skip++
	}
}

// Env is everything doctor reads of the machine besides the network.
type Env struct {
	// Getenv reads the process environment (HTTPS_PROXY, NO_PROXY,
	// SSL_CERT_FILE, SSL_CERT_DIR, NETRC).
	Getenv func(string) string
	// Go holds the go command's settings, as `go env -json` prints them.
	// GoErr, when not nil, says why they could not be read.
	Go    map[string]string
	GoErr error
	// Home is the user's home directory ("" when unknown).
	Home string
	// GitInsteadOf holds the lines of `git config --get-regexp
	// 'url\..*\.insteadof'`; HasGit is false when git is not installed.
	GitInsteadOf []string
	HasGit       bool
	// Now is the local clock.
	Now func() time.Time
}

// Options are the command-line choices of a run.
type Options struct {
	// Proxy, when set, replaces the first entry of GOPROXY.
	Proxy string
	// Timeout bounds each network step; 0 means DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout bounds one network step.
const DefaultTimeout = 5 * time.Second

// Run diagnoses the machine described by env and returns the report.
func Run(ctx context.Context, env Env, opts Options) *Report {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	r := &Report{}
	s := resolveSettings(env, opts)
	checkSettings(r, env, s)
	trust := loadTrust(env.Getenv)
	r.add(trust.check)
	netrc := checkNetrc(r, env, s)
	checkGit(r, env)
	for _, e := range s.proxies {
		p := &prober{env: env, settings: s, trust: trust, netrc: netrc, timeout: opts.Timeout, report: r}
		p.run(ctx, e)
	}
	return r
}

// WriteText writes the report for a person: one line per check with its
// status, the fix indented below warnings and failures, and a summary.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, c := range r.Checks {
		name := c.Name
		if c.Target != "" {
			name = c.Target + " " + c.Name
		}
		fmt.Fprintf(&b, "%-6s %s: %s\n", mark(c.Status), name, c.Detail)
		if c.Fix != "" && (c.Status == Fail || c.Status == Warn) {
			for line := range strings.SplitSeq(c.Fix, "\n") {
				fmt.Fprintf(&b, "         fix: %s\n", line)
			}
		}
	}
	fmt.Fprintf(&b, "\n%d ok, %d warnings, %d failed, %d skipped\n", r.Summary.OK, r.Summary.Warn, r.Summary.Fail, r.Summary.Skip)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func mark(s Status) string {
	switch s {
	case OK:
		return "[ok]"
	case Warn:
		return "[warn]"
	case Fail:
		return "[FAIL]"
	}
	return "[skip]"
}
