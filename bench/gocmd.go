package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// upstreamFromGoEnv returns the http(s) entries of `go env GOPROXY` in
// GOPROXY syntax: what modgate fetches from, and what the direct baseline
// downloads from. The host is never written into this program.
func upstreamFromGoEnv() (string, error) {
	out, err := exec.Command("go", "env", "GOPROXY").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOPROXY: %w", err)
	}
	var kept []string
	for _, entry := range strings.FieldsFunc(strings.TrimSpace(string(out)), func(r rune) bool { return r == ',' || r == '|' }) {
		entry = strings.TrimSpace(entry)
		if strings.HasPrefix(entry, "http://") || strings.HasPrefix(entry, "https://") {
			kept = append(kept, entry)
		}
	}
	if len(kept) == 0 {
		return "", fmt.Errorf("go env GOPROXY has no http(s) proxy entry")
	}
	return strings.Join(kept, ","), nil
}

// reachable reports whether the first upstream answers an HTTP request
// within a few seconds (any status will do).
func reachable(upstream string) error {
	first, _, _ := strings.Cut(upstream, ",")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(first, "/")+"/golang.org/x/mod/@v/list", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// goEnv is the environment of a go command that downloads through goproxy
// into a fresh module cache under gopath, touching nothing outside. With
// verify, it checks the go command's default checksum database, reached
// through goproxy as a client behind a firewall would; without, none.
func goEnv(gopath, goproxy string, verify bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOPROXY", "GOSUMDB", "GONOSUMDB", "GONOSUMCHECK", "GOPRIVATE", "GONOPROXY", "GOFLAGS",
			"GOPATH", "GOMODCACHE", "GOTOOLCHAIN", "GO111MODULE", "GOINSECURE", "GOENV", "GOWORK":
			continue
		}
		env = append(env, kv)
	}
	if !verify {
		env = append(env, "GOSUMDB=off")
	}
	return append(env,
		"GOPROXY="+goproxy,
		"GOFLAGS=-modcacherw",
		"GOPATH="+gopath,
		"GOMODCACHE="+filepath.Join(gopath, "pkg", "mod"),
		"GOTOOLCHAIN=local",
		"GOENV=off",
		"GOWORK=off",
		"GO111MODULE=on",
	)
}

// download is one timed `go mod download`.
type download struct {
	dir     string // holds the main module and the fresh GOPATH
	elapsed time.Duration
	cpu     time.Duration // the go command's user and system CPU time
	note    string        // what the proxy said about the run, if anything
}

// modCache returns the module cache of the run.
func (d *download) modCache() string { return filepath.Join(d.dir, "gopath", "pkg", "mod") }

// remove deletes the run's files (the module cache is writable: -modcacherw).
func (d *download) remove() { os.RemoveAll(d.dir) }

// mainModule is what a timed `go mod download` runs in and with: the main
// module's go.mod, its go.sum (nil for none) and the command's arguments.
type mainModule struct {
	gomod, gosum []byte
	args         []string
}

// goModDownload runs `go mod download` for the first n modules of the set
// through goproxy, with a fresh main module and a fresh module cache in a
// new directory under parent. Only the go command is timed.
func goModDownload(parent, goproxy string, n int, verify bool) (*download, error) {
	return downloadIn(parent, goproxy, mainModule{gomod: []byte(goModFor(n))}, verify)
}

// downloadIn runs `go mod download` in main through goproxy, in a new
// directory under parent holding main and a fresh module cache. Only the
// go command is timed.
func downloadIn(parent, goproxy string, main mainModule, verify bool) (*download, error) {
	dir, err := os.MkdirTemp(parent, "run-")
	if err != nil {
		return nil, err
	}
	d := &download{dir: dir}
	mainDir := filepath.Join(dir, "main")
	if err := os.MkdirAll(mainDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(mainDir, "go.mod"), main.gomod, 0o644); err != nil {
		return nil, err
	}
	if main.gosum != nil {
		if err := os.WriteFile(filepath.Join(mainDir, "go.sum"), main.gosum, 0o644); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"mod", "download"}, main.args...)...)
	cmd.Dir = mainDir
	cmd.Env = goEnv(filepath.Join(dir, "gopath"), goproxy, verify)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d.elapsed = time.Since(start)
	if ps := cmd.ProcessState; ps != nil {
		d.cpu = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after 10m")
		}
		return d, fmt.Errorf("go mod download (GOPROXY=%s): %v\n%s", redact(goproxy), err, out)
	}
	return d, nil
}

// redact hides the host of a remote proxy in messages (a local one is shown).
func redact(goproxy string) string {
	if strings.Contains(goproxy, "127.0.0.1") || strings.HasPrefix(goproxy, "file://") {
		return goproxy
	}
	return "<upstream>"
}
