package realupstream

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/sumdb"
	"github.com/modgate/modgate/internal/testenv"
)

// realProject is a real project's go.mod, small on purpose: rsc.io/quote
// v1.5.2 and below it rsc.io/sampler and golang.org/x/text (go.mod files
// without a go directive: the go command walks the whole graph).
const realProject = `module example.com/hello

go 1.21

require rsc.io/quote v1.5.2
`

const realProjectCode = `package main

import (
	"fmt"

	"rsc.io/quote"
)

func main() { fmt.Println(quote.Hello()) }
`

// TestPrefetchRealProject: an operator prefetches a real project's go.mod
// from the real upstream, verified against the real checksum database;
// then, with the upstream gone and no outside access at all, the go
// command with its default GOSUMDB resolves, downloads, verifies and
// builds the project through modgate alone.
func TestPrefetchRealProject(t *testing.T) {
	if testing.Short() {
		t.Skip("talks to the real upstream proxy; skipped in -short mode")
	}
	upstream := testenv.RealUpstream(t)
	dataDir := t.TempDir()
	// Verified against the go command's default checksum database,
	// reached through the upstream.
	online := testenv.Start(t, "--upstream", upstream, "--data-dir", dataDir, "--sumdb", sumdb.DefaultName, "--prefetch=false")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the online modgate:\n%s", online.Logs())
		}
	})

	// POST the go.mod, as an operator would with curl -F gomod=@go.mod.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("gomod", "go.mod")
	io.WriteString(fw, realProject)
	mw.Close()
	resp, err := httpClient.Post(online.URL+"/admin/v1/prefetch", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	var started struct{ ID, State string }
	json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || started.ID == "" {
		t.Fatalf("POST /admin/v1/prefetch: %s, %+v", resp.Status, started)
	}
	var job struct {
		State                        string
		Total, Done, Skipped, Failed int
		Errors                       []string
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		code, text := get(t, online.URL+"/admin/v1/jobs/"+started.ID)
		if err := json.Unmarshal([]byte(text), &job); code != http.StatusOK || err != nil {
			t.Fatalf("GET the job: %d %q", code, text)
		}
		if job.State != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the prefetch job still runs after 2 minutes: %+v", job)
		}
	}
	t.Logf("prefetch job: %+v", job)
	if job.State != "done" || job.Failed != 0 || job.Done < 3 {
		t.Fatalf("prefetch job %+v, want done with the 3 modules of the graph fetched and none failed", job)
	}
	online.Stop(t)

	// The upstream gone, and every way out refused.
	refused := testenv.RefusedURL(t)
	offline := testenv.StartEnv(t, []string{"HTTPS_PROXY=" + refused, "HTTP_PROXY=" + refused, "https_proxy=" + refused, "http_proxy=" + refused},
		"--upstream", "off", "--data-dir", dataDir, "--sumdb", sumdb.DefaultName, "--prefetch=false")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the offline modgate:\n%s", offline.Logs())
		}
	})
	home := t.TempDir()
	work := filepath.Join(home, "hello")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"go.mod": realProject, "main.go": realProjectCode} {
		if err := os.WriteFile(filepath.Join(work, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The default GOSUMDB, reached through modgate's /sumdb/ (GoEnv
	// leaves GOSUMDB unset); nothing else.
	env := append(testenv.GoEnv(home, offline.URL), "GOWORK=off", "HTTPS_PROXY="+refused, "HTTP_PROXY="+refused)
	for _, args := range [][]string{{"mod", "tidy"}, {"mod", "download"}, {"mod", "verify"}, {"build", "-o", os.DevNull, "."}} {
		if out, errOut, err := testenv.GoRun(t, work, env, args...); err != nil {
			t.Fatalf("go %s with the upstream gone: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
	}
	sum, err := os.ReadFile(filepath.Join(work, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range []string{"rsc.io/quote v1.5.2 h1:", "rsc.io/sampler v1.3.0 h1:", "golang.org/x/text "} {
		if !strings.Contains(string(sum), mod) {
			t.Errorf("go.sum lacks %q:\n%s", mod, sum)
		}
	}
}
