package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
)

// runModgate runs the built binary and returns its stdout, stderr and
// exit code.
func runModgate(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

var tokenLine = regexp.MustCompile(`^mgt_[A-Za-z0-9_-]{43}$`)

// TestTokenCommands: modgate token add, list and revoke as an operator
// runs them, several adds at once in separate processes included.
func TestTokenCommands(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.json")
	const n = 6
	var wg sync.WaitGroup
	outs := make([]string, n)
	errs := make([]string, n)
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			outs[i], errs[i], codes[i] = runModgate(t, os.Environ(), "token", "add", "--tokens", file,
				"--name", fmt.Sprintf("ci-%d", i), "--allow", "corp.example.com/*,golang.org/x/*")
		})
	}
	wg.Wait()
	for i := range n {
		lines := strings.Split(strings.TrimSuffix(outs[i], "\n"), "\n")
		if codes[i] != 0 || !tokenLine.MatchString(lines[len(lines)-1]) {
			t.Fatalf("token add ci-%d: exit %d, stdout %q, stderr %q", i, codes[i], outs[i], errs[i])
		}
		if !strings.Contains(errs[i], "created token ci-") || strings.Contains(errs[i], "mgt_") {
			t.Errorf("token add stderr = %q, want a line naming the token and not the token", errs[i])
		}
	}
	out, stderr, code := runModgate(t, os.Environ(), "token", "add", "--tokens", file, "--name", "ops", "--allow", "*", "--admin")
	if code != 0 || !tokenLine.MatchString(strings.TrimSpace(out)) || !strings.Contains(stderr, "admin token ops") {
		t.Fatalf("token add --admin: %d %q %q", code, out, stderr)
	}
	admin := strings.TrimSpace(out)

	out, _, code = runModgate(t, os.Environ(), "token", "list", "--tokens", file)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != n+2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME ALLOW ADMIN CREATED" {
		t.Fatalf("token list = %d\n%s", code, out)
	}
	if f := strings.Fields(lines[n+1]); len(f) != 4 || f[0] != "ops" || f[1] != "*" || f[2] != "true" {
		t.Errorf("token list row of ops = %q", lines[n+1])
	}
	if strings.Contains(out, "sha256") || strings.Contains(out, admin) {
		t.Errorf("token list shows a hash or a token:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"revoke", "--tokens", file, "--name", "nobody"}, `modgate: token revoke: no such token named "nobody" in ` + file + "\n"},
		{[]string{"add", "--tokens", file, "--name", "ops", "--allow", "*"}, `modgate: token add: a token named "ops" exists already`},
		{[]string{"add", "--tokens", file, "--name", "x", "--allow", "[bad"}, `modgate: token add: --allow: pattern "[bad" is not a valid glob`},
		{[]string{"add", "--tokens", file, "--name", "x"}, "--name and --allow are required"},
		{[]string{"list"}, "--tokens FILE is required"},
		{[]string{"list", "--tokens", file + ".missing"}, "no such file"},
		{[]string{"frobnicate"}, `unknown subcommand "frobnicate"`},
	} {
		out, stderr, code := runModgate(t, os.Environ(), append([]string{"token"}, tc.args...)...)
		if code != 1 || out != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("modgate token %q = exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.args, code, out, stderr, tc.want)
		}
	}

	if _, stderr, code := runModgate(t, os.Environ(), "token", "revoke", "--tokens", file, "--name", "ci-3"); code != 0 || !strings.Contains(stderr, "revoked token ci-3") {
		t.Fatalf("token revoke: %d %q", code, stderr)
	}
	out, _, _ = runModgate(t, os.Environ(), "token", "list", "--tokens", file)
	if strings.Contains(out, "ci-3") || strings.Count(out, "\n") != n+1 {
		t.Errorf("token list after revoking ci-3:\n%s", out)
	}
}
