package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/modgate/modgate/internal/explain"
)

const explainUsage = `Usage:
  go mod tidy 2>&1 | modgate explain [--json]
  modgate explain [--json] -- go mod tidy

Explains the errors of the go command (and of modgate behind it): for every
error it recognises, the cause and the fix. Unrecognised lines are not
mentioned.

Reading standard input, the explanations go to standard output. Running a
command after "--", its output passes through unchanged, the explanations
follow on standard error (standard output stays the command's own), and
modgate exits with the command's status.
`

// explainCmd runs "modgate explain" and returns the exit status.
func explainCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, explainUsage) }
	asJSON := fs.Bool("json", false, "write the explanations as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	write := explain.WriteText
	if *asJSON {
		write = explain.WriteJSON
	}
	if fs.NArg() == 0 {
		exps, err := explain.Explain(stdin)
		if err != nil {
			fmt.Fprintln(stderr, "modgate explain: reading standard input:", err)
			return 1
		}
		if err := write(stdout, exps); err != nil {
			return 1
		}
		return 0
	}
	// flag stops at "--" and drops it; a command given without "--" is
	// accepted too.
	exps, status := runExplained(fs.Args(), stdin, stdout, stderr)
	write(stderr, exps)
	return status
}

// runExplained runs the command with its output passed through and
// collected, and returns the explanations and the command's exit status.
func runExplained(argv []string, stdin io.Reader, stdout, stderr io.Writer) ([]explain.Explanation, int) {
	c := explain.NewCollector(explain.Default())
	outS, errS := c.Stream(), c.Stream()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = stdin
	cmd.Stdout = io.MultiWriter(stdout, outS)
	cmd.Stderr = io.MultiWriter(stderr, errS)

	// An interrupt or termination is passed on to the command, and modgate
	// stays to explain what it printed until then.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	err := cmd.Start()
	if err == nil {
		done := make(chan struct{})
		go func() {
			for {
				select {
				case s := <-sigs:
					cmd.Process.Signal(s)
				case <-done:
					return
				}
			}
		}()
		err = cmd.Wait()
		close(done)
	}
	outS.Close()
	errS.Close()
	exps := c.Explanations()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return exps, 0
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return exps, 128 + int(ws.Signal())
		}
		return exps, exit.ExitCode()
	default:
		fmt.Fprintln(stderr, "modgate explain:", err)
		return exps, 127
	}
}
