package main

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/doctor"
	"github.com/modgate/modgate/internal/testenv"
)

// runDoctorBinary runs the built "modgate doctor" as a client of goproxy
// with a clean go environment and home, and returns its stdout and exit
// status.
func runDoctorBinary(t *testing.T, goproxy string, args ...string) (string, int) {
	t.Helper()
	home := t.TempDir()
	env := append(testenv.GoEnv(t.TempDir(), goproxy), "HOME="+home, "GOSUMDB=sum.golang.org", "NETRC="+filepath.Join(home, ".netrc"))
	cmd := exec.Command(testenv.Binary(t), append([]string{"doctor"}, args...)...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("modgate doctor %v: exit %d\n%s%s", args, code, out, stderr.String())
	return string(out), code
}

func TestDoctorBinary(t *testing.T) {
	dir := t.TempDir()
	testenv.BuildTree(t, dir, nil)
	up := testenv.NewUpstream(t, dir)
	p := testenv.Start(t, "--upstream", up.URL(), "--sumdb", "sum.golang.org", "--data-dir", t.TempDir())

	out, code := runDoctorBinary(t, p.URL, "--json")
	if code != 0 {
		t.Fatalf("healthy set-up: exit %d", code)
	}
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json output is not a report: %v", err)
	}
	if r.Summary.Fail != 0 || r.Summary.OK == 0 {
		t.Errorf("summary = %+v", r.Summary)
	}

	// --proxy replaces GOPROXY's first entry: a refused one fails.
	out, code = runDoctorBinary(t, p.URL, "--proxy", testenv.RefusedURL(t))
	if code != 1 || !strings.Contains(out, "[FAIL]") || !strings.Contains(out, "refused") {
		t.Errorf("refused --proxy: exit %d, want 1 and a FAIL line", code)
	}
}

func TestDoctorFlags(t *testing.T) {
	for _, args := range [][]string{{"--proxy", "ftp://x"}, {"extra"}} {
		var stdout, stderr strings.Builder
		err := doctorCmd(t.Context(), args, &stdout, &stderr, func(context.Context) doctor.Env {
			t.Errorf("doctor %v read the machine despite bad arguments", args)
			return doctor.Env{}
		})
		if err == nil || stdout.Len() != 0 {
			t.Errorf("doctor %v: err %v, stdout %q; want an error and no report", args, err, stdout.String())
		}
	}
}
