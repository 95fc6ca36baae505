package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/explain"
	"github.com/modgate/modgate/internal/testenv"
)

// TestExplainRunsCommand: the binary runs the real go command, passes its
// output through, explains it after, and exits with its status.
func TestExplainRunsCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/go.mod", []byte("module example.com/main\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Binary(t), "explain", "--", "go", "mod", "download", "example.com/a@v1.0.0")
	cmd.Dir = dir
	cmd.Env = testenv.GoEnv(dir, "off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want the go command's status 1\n%s", err, stderr.String())
	}
	goLine := "go: example.com/a@v1.0.0: module lookup disabled by GOPROXY=off\n"
	if !strings.HasPrefix(stderr.String(), goLine) {
		t.Errorf("stderr does not start with the go command's line:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "1. GOPROXY=off") || !strings.Contains(stderr.String(), "go env -w GOPROXY=") {
		t.Errorf("no explanation:\n%s", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q", stdout.String())
	}
}

// TestExplainPassThrough: the command's stdout is passed unchanged and kept
// apart from the explanations; its exit status is modgate's.
func TestExplainPassThrough(t *testing.T) {
	script := `printf 'line one\nno newline'; echo "go: go.mod requires go >= 1.99 (running go 1.21.0; GOTOOLCHAIN=local)" >&2; exit 3`
	var stdout, stderr bytes.Buffer
	code := explainCmd([]string{"--json", "--", "sh", "-c", script}, strings.NewReader(""), &stdout, &stderr)
	if code != 3 {
		t.Errorf("status %d, want 3", code)
	}
	if stdout.String() != "line one\nno newline" {
		t.Errorf("stdout %q", stdout.String())
	}
	_, js, ok := strings.Cut(stderr.String(), "GOTOOLCHAIN=local)\n")
	if !ok {
		t.Fatalf("stderr: %s", stderr.String())
	}
	var doc struct{ Explanations []explain.Explanation }
	if err := json.Unmarshal([]byte(js), &doc); err != nil || len(doc.Explanations) != 1 || doc.Explanations[0].ID != "toolchain-required" {
		t.Errorf("explanations %s (%v)", js, err)
	}

	if code := explainCmd([]string{"--", "/nonexistent/command"}, strings.NewReader(""), &stdout, &stderr); code != 127 {
		t.Errorf("missing command: status %d, want 127", code)
	}
}

// TestExplainStdin: reading standard input, nothing recognised is one line.
func TestExplainStdin(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := explainCmd(nil, strings.NewReader("go: downloading example.com/a v1.0.0\n"), &stdout, &stderr); code != 0 {
		t.Fatalf("status %d: %s", code, stderr.String())
	}
	if stdout.String() != explain.NothingRecognised+"\n" {
		t.Errorf("stdout %q", stdout.String())
	}
	if code := explainCmd([]string{"--bogus"}, strings.NewReader(""), &stdout, &stderr); code != 2 {
		t.Errorf("bad flag: status %d, want 2", code)
	}
}
