package gitserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// GoTimeout bounds one run of the go command.
const GoTimeout = 3 * time.Minute

// Go is the real go command set up to fetch modules straight from a
// Server, as a developer with GOPRIVATE and a .netrc does: GOPROXY=direct,
// the server's host private and insecure (plain http), its credentials in
// $HOME/.netrc, every request sent through the server as HTTP proxy (so
// the host resolves without DNS), nothing of the machine's own Go, git or
// proxy configuration. Its answers are what modgate's git source must
// reproduce.
//
// Each Go has its own module cache: a fresh one is a cold `go mod
// download`. Runs of one Go share it, as runs of the go command on one
// machine do.
type Go struct {
	t        testing.TB
	dir      string // working directory, no go.mod
	ModCache string // GOMODCACHE
	env      []string
}

// GoDirect returns a go command with a fresh module cache and home
// directory that reaches srv directly.
func GoDirect(t testing.TB, srv *Server) *Go {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("gitserver: the go command is needed: %v", err)
	}
	root := t.TempDir()
	g := &Go{t: t, dir: filepath.Join(root, "work"), ModCache: filepath.Join(root, "gopath", "pkg", "mod")}
	home := filepath.Join(root, "home")
	for _, d := range []string{g.dir, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if srv.opts.User != "" {
		// git (through curl) and the go command's own meta tag requests
		// both read $HOME/.netrc; the go command wants it private.
		netrc := fmt.Sprintf("machine %s\nlogin %s\npassword %s\n", hostOnly(srv.Host), srv.opts.User, srv.opts.Password)
		if err := os.WriteFile(filepath.Join(home, ".netrc"), []byte(netrc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gitconfig := filepath.Join(root, "gitconfig")
	if err := os.WriteFile(gitconfig, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	host := hostOnly(srv.Host)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GO") || strings.HasPrefix(k, "GIT_") || strings.HasPrefix(k, "CGO_") ||
			strings.HasSuffix(strings.ToLower(k), "_proxy") || k == "HOME" || k == "NETRC" || k == "XDG_CONFIG_HOME" || k == "XDG_CACHE_HOME" {
			continue
		}
		g.env = append(g.env, kv)
	}
	g.env = append(g.env,
		"HOME="+home,
		"GOPROXY=direct",
		"GOPRIVATE="+host,
		"GONOSUMDB="+host,
		"GOINSECURE="+host,
		"GOFLAGS=-modcacherw",
		"GOPATH="+filepath.Join(root, "gopath"),
		"GOMODCACHE="+g.ModCache,
		"GOCACHE="+filepath.Join(root, "gocache"),
		"GOENV=off",
		"GO111MODULE=on",
		"GOTOOLCHAIN=local",
		"GOTELEMETRY=off",
		"GIT_CONFIG_GLOBAL="+gitconfig,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
	)
	g.env = append(g.env, srv.ProxyEnv()...)
	return g
}

// hostOnly strips a port: .netrc and GOPRIVATE patterns name hosts.
func hostOnly(hostport string) string {
	if u, err := url.Parse("//" + hostport); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return hostport
}

// Env is the environment the go command runs with.
func (g *Go) Env() []string { return append([]string(nil), g.env...) }

// Run runs the go command with args and returns its standard output; err
// carries its standard error. Safe to call from any goroutine.
func (g *Go) Run(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), GoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = g.dir
	cmd.Env = g.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// Origin is where the go command says a version came from.
type Origin struct {
	VCS       string `json:",omitempty"`
	URL       string `json:",omitempty"`
	Subdir    string `json:",omitempty"`
	Hash      string `json:",omitempty"`
	TagPrefix string `json:",omitempty"`
	TagSum    string `json:",omitempty"`
	Ref       string `json:",omitempty"`
	RepoSum   string `json:",omitempty"`
}

// Download is one module of `go mod download -json`: the files it wrote
// into the module cache (Info, GoMod, Zip), or Error.
type Download struct {
	Path     string
	Version  string
	Query    string
	Error    string
	Info     string
	GoMod    string
	Zip      string
	Dir      string
	Sum      string
	GoModSum string
	Origin   *Origin
}

// Download runs `go mod download -json` for queries ("mod@v1.2.3",
// "mod@main") in one go command and returns one Download per query, in
// the go command's order. A query the go command could not resolve has
// its Error set; a failure of the go command itself fails the test.
func (g *Go) Download(queries ...string) []Download {
	g.t.Helper()
	ds, err := g.TryDownload(queries...)
	if err != nil {
		g.t.Fatal(err)
	}
	return ds
}

// TryDownload is Download returning the go command's failure instead of
// failing the test; it may run in any goroutine.
func (g *Go) TryDownload(queries ...string) ([]Download, error) {
	out, err := g.Run(append([]string{"mod", "download", "-json"}, queries...)...)
	var ds []Download
	if derr := decodeAll(out, func(d *json.Decoder) error {
		var x Download
		if err := d.Decode(&x); err != nil {
			return err
		}
		ds = append(ds, x)
		return nil
	}); derr != nil || len(ds) != len(queries) {
		return nil, fmt.Errorf("gitserver: go mod download answered %d of %d queries: %v (decoding: %v)\n%s", len(ds), len(queries), err, derr, out)
	}
	return ds, nil
}

// Module is one module of `go list -m -json`.
type Module struct {
	Path     string
	Version  string
	Query    string
	Versions []string
	Time     *time.Time
	Origin   *Origin
	Error    *struct{ Err string }
}

// Versions runs `go list -m -versions -retracted -json -e` for mods: every
// version the go command finds for each, retracted ones included (a
// proxy lists them too). A module the go command cannot list has its
// Error set; a failure of the go command itself fails the test.
func (g *Go) Versions(mods ...string) []Module {
	g.t.Helper()
	return g.List(append([]string{"-versions", "-retracted"}, mods...)...)
}

// TryVersions is Versions for any goroutine, returning the failure.
func (g *Go) TryVersions(mods ...string) ([]Module, error) {
	return g.TryList(append([]string{"-versions", "-retracted"}, mods...)...)
}

// Latest runs `go list -m -json -e mod@latest` for mods.
func (g *Go) Latest(mods ...string) []Module {
	g.t.Helper()
	return g.List(latestArgs(mods)...)
}

// TryLatest is Latest for any goroutine, returning the failure.
func (g *Go) TryLatest(mods ...string) ([]Module, error) {
	return g.TryList(latestArgs(mods)...)
}

func latestArgs(mods []string) []string {
	args := make([]string, len(mods))
	for i, m := range mods {
		args[i] = m + "@latest"
	}
	return args
}

// List runs `go list -m -json -e` with args and returns its modules, in
// the go command's order. A failure of one module is in its Error; a
// failure of the go command itself fails the test.
func (g *Go) List(args ...string) []Module {
	g.t.Helper()
	ms, err := g.TryList(args...)
	if err != nil {
		g.t.Fatal(err)
	}
	return ms
}

// TryList is List for any goroutine, returning the failure.
func (g *Go) TryList(args ...string) ([]Module, error) {
	out, err := g.Run(append([]string{"list", "-m", "-json", "-e"}, args...)...)
	var ms []Module
	if derr := decodeAll(out, func(d *json.Decoder) error {
		var m Module
		if err := d.Decode(&m); err != nil {
			return err
		}
		ms = append(ms, m)
		return nil
	}); derr != nil || len(ms) == 0 {
		return nil, fmt.Errorf("gitserver: go list: %v (decoding: %v)\n%s", err, derr, out)
	}
	return ms, nil
}

// decodeAll calls one for each JSON value in data.
func decodeAll(data []byte, one func(*json.Decoder) error) error {
	d := json.NewDecoder(bytes.NewReader(data))
	for {
		err := one(d)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
