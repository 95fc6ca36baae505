package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/modgate/modgate/internal/gitauth"
	"github.com/modgate/modgate/internal/redact"
)

// GoEnvKeys are the go command settings doctor reads.
var GoEnvKeys = []string{"GOPROXY", "GOSUMDB", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOINSECURE", "GOFLAGS", "GOAUTH", "GOTOOLCHAIN"}

// LoadEnv describes the real machine: the process environment, `go env
// -json` from the go command on PATH, the home directory and git's
// insteadOf rules (when git is installed).
func LoadEnv(ctx context.Context) Env {
	env := Env{Getenv: os.Getenv, Now: time.Now}
	env.Home, _ = os.UserHomeDir()
	env.Go, env.GoErr = readGoEnv(ctx)
	if _, err := exec.LookPath("git"); err == nil {
		env.HasGit = true
		env.GitInsteadOf = readInsteadOf(ctx)
	}
	return env
}

func readGoEnv(ctx context.Context) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"env", "-json"}, GoEnvKeys...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env -json: %v: %s", err, redact.Line(stderr.String(), 300))
	}
	m := map[string]string{}
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("go env -json printed something that is not a JSON object: %v", err)
	}
	return m, nil
}

func readInsteadOf(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "config", "--get-regexp", `url\..*\.insteadof`)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	out, _ := cmd.Output() // exit status 1 means "no such keys"
	var lines []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}

// settings are the go command's effective settings, defaults applied the
// way the go command applies them.
type settings struct {
	proxies   []string // GOPROXY entries, --proxy applied
	proxyFlag string
	sumdb     string // GOSUMDB as set
	sumdbName string // its name ("" when off)
	private   string
	noProxy   string
	noSumDB   string
	insecure  string
	goflags   string
	goauth    string
	toolchain string
}

func resolveSettings(env Env, opts Options) settings {
	g := func(k string) string { return strings.TrimSpace(env.Go[k]) }
	s := settings{
		sumdb: g("GOSUMDB"), private: g("GOPRIVATE"), noProxy: g("GONOPROXY"), noSumDB: g("GONOSUMDB"),
		insecure: g("GOINSECURE"), goflags: g("GOFLAGS"), goauth: g("GOAUTH"), toolchain: g("GOTOOLCHAIN"),
		proxyFlag: opts.Proxy,
	}
	// As in the go command: GONOPROXY and GONOSUMDB default to GOPRIVATE,
	// GOAUTH to netrc.
	if s.noProxy == "" {
		s.noProxy = s.private
	}
	if s.noSumDB == "" {
		s.noSumDB = s.private
	}
	if s.goauth == "" {
		s.goauth = "netrc"
	}
	if s.sumdb != "off" && s.sumdb != "" {
		name, _, _ := strings.Cut(strings.Fields(s.sumdb)[0], "+")
		s.sumdbName = name
	}
	for e := range strings.FieldsFuncSeq(g("GOPROXY"), func(r rune) bool { return r == ',' || r == '|' }) {
		if e = strings.TrimSpace(e); e != "" {
			s.proxies = append(s.proxies, e)
		}
	}
	if opts.Proxy != "" {
		if len(s.proxies) == 0 {
			s.proxies = []string{opts.Proxy}
		} else {
			s.proxies[0] = opts.Proxy
		}
	}
	return s
}

// fixProxy is the GOPROXY command to suggest, with the URL given by
// --proxy when there is one.
func (s settings) fixProxy() string {
	u := "https://modgate.example.internal"
	if s.proxyFlag != "" {
		u = redact.URL(s.proxyFlag)
	}
	return "go env -w GOPROXY=" + u
}

func checkSettings(r *Report, env Env, s settings) {
	if env.GoErr != nil {
		r.add(Check{Name: "go env", Status: Fail, Detail: redact.Text(env.GoErr.Error()),
			Fix: "install Go and put its bin directory on PATH (see https://go.dev/doc/install)"})
	} else {
		r.add(Check{Name: "go env", Status: OK, Detail: "read the go command's settings"})
	}

	shown := make([]string, len(s.proxies))
	for i, p := range s.proxies {
		shown[i] = redact.URL(p)
	}
	switch {
	case len(s.proxies) == 0:
		r.add(Check{Name: "GOPROXY", Status: Fail, Detail: "GOPROXY is empty: the go command has nowhere to download modules from", Fix: s.fixProxy()})
	case s.proxies[0] == "off":
		r.add(Check{Name: "GOPROXY", Status: Fail, Detail: "GOPROXY=off: the go command may not download any module", Fix: s.fixProxy()})
	case s.proxies[0] == "direct":
		r.add(Check{Name: "GOPROXY", Status: Warn, Detail: "GOPROXY starts with direct: every module comes straight from its git server, which behind a firewall means git, credentials and the internet on this machine", Fix: s.fixProxy()})
	default:
		r.add(Check{Name: "GOPROXY", Status: OK, Detail: strings.Join(shown, ",")})
	}

	switch s.sumdb {
	case "off":
		// A warning, not a failure: downloads work, and a modgate with
		// --sumdb on still verifies what it fetches; but this machine then
		// trusts whatever the proxy (or a cache on the way) hands it.
		r.add(Check{Name: "GOSUMDB", Status: Warn, Detail: "GOSUMDB=off: the go command does not check downloaded modules against the checksum database, so a tampered module goes unnoticed; modgate serves the database, so it can stay on", Fix: "go env -u GOSUMDB"})
	case "":
		r.add(Check{Name: "GOSUMDB", Status: OK, Detail: "default checksum database"})
	default:
		r.add(Check{Name: "GOSUMDB", Status: OK, Detail: redact.Text(s.sumdb)})
	}

	r.add(Check{Name: "GOPRIVATE", Status: OK, Detail: fmt.Sprintf("GOPRIVATE=%q GONOPROXY=%q GONOSUMDB=%q", s.private, s.noProxy, s.noSumDB)})
	if s.insecure != "" {
		r.add(Check{Name: "GOINSECURE", Status: Warn, Detail: fmt.Sprintf("modules matching %q may be fetched over plain http or with unchecked certificates", s.insecure), Fix: "go env -u GOINSECURE"})
	}
	if strings.Contains(s.goflags, "-insecure") {
		r.add(Check{Name: "GOFLAGS", Status: Fail, Detail: "GOFLAGS holds -insecure, which the go command no longer accepts", Fix: "go env -u GOFLAGS (or go env -w GOFLAGS=... without -insecure)"})
	} else if s.goflags != "" {
		r.add(Check{Name: "GOFLAGS", Status: OK, Detail: redact.Text(s.goflags)})
	}
	r.add(Check{Name: "GOAUTH", Status: OK, Detail: describeGoAuth(s.goauth)})
	switch tc := s.toolchain; {
	case tc == "local":
		r.add(Check{Name: "GOTOOLCHAIN", Status: OK, Detail: "local: the installed Go is always used"})
	case tc == "" || strings.HasSuffix(tc, "auto") || strings.HasSuffix(tc, "path"):
		r.add(Check{Name: "GOTOOLCHAIN", Status: OK, Detail: fmt.Sprintf("%s: a go.mod asking for a newer Go makes the go command download golang.org/toolchain through GOPROXY", orDefault(tc, "auto"))})
	default:
		r.add(Check{Name: "GOTOOLCHAIN", Status: OK, Detail: tc})
	}

	var egress []string
	for _, k := range []string{"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"} {
		v := env.Getenv(k)
		if v == "" {
			v = env.Getenv(strings.ToLower(k))
		}
		if v != "" {
			egress = append(egress, k+"="+redact.Text(v))
		}
	}
	if len(egress) == 0 {
		r.add(Check{Name: "egress proxy", Status: OK, Detail: "none (HTTPS_PROXY, HTTP_PROXY, NO_PROXY unset): connections go straight to the proxy"})
	} else {
		r.add(Check{Name: "egress proxy", Status: OK, Detail: strings.Join(egress, " ")})
	}
}

// describeGoAuth names GOAUTH's methods; a command line may carry a token
// in its arguments, so only its program name is shown.
func describeGoAuth(v string) string {
	var parts []string
	for c := range strings.SplitSeq(v, ";") {
		words := strings.Fields(c)
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "off", "netrc", "git":
			parts = append(parts, words[0])
		default:
			parts = append(parts, "command "+filepath.Base(words[0]))
		}
	}
	return strings.Join(parts, "; ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// netrcInfo is what the network checks need of .netrc: which machines
// have credentials (the passwords stay inside the HTTP request).
type netrcInfo struct {
	path    string
	entries []gitauth.NetrcEntry
}

func (n netrcInfo) lookup(hostport string) (gitauth.NetrcEntry, bool) {
	for _, e := range n.entries {
		if e.Machine == hostport {
			return e, true
		}
	}
	return gitauth.NetrcEntry{}, false
}

// maxNetrc bounds what is read of a .netrc file.
const maxNetrc = 1 << 20

func checkNetrc(r *Report, env Env, s settings) netrcInfo {
	path := env.Getenv("NETRC")
	if path == "" {
		if env.Home == "" {
			r.add(Check{Name: "netrc", Status: Skip, Detail: "no home directory and NETRC unset"})
			return netrcInfo{}
		}
		path = filepath.Join(env.Home, ".netrc")
	}
	info := netrcInfo{path: path}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		r.add(Check{Name: "netrc", Status: OK, Detail: fmt.Sprintf("no %s (needed only when the proxy asks for credentials and GOAUTH uses netrc)", path)})
		return info
	}
	if err != nil {
		r.add(Check{Name: "netrc", Status: Warn, Detail: fmt.Sprintf("cannot read %s: %v", path, err), Fix: "chmod 600 " + path})
		return info
	}
	defer f.Close()
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file")
	}
	var data []byte
	if err == nil {
		data, err = io.ReadAll(io.LimitReader(f, maxNetrc))
	}
	if err != nil {
		r.add(Check{Name: "netrc", Status: Warn, Detail: fmt.Sprintf("cannot read %s: %v", path, err)})
		return info
	}
	info.entries = gitauth.ParseNetrc(string(data))
	if w := gitauth.NetrcPermissionWarning(path, st); w != "" {
		r.add(Check{Name: "netrc", Status: Warn, Detail: w, Fix: "chmod 600 " + path})
	} else {
		r.add(Check{Name: "netrc", Status: OK, Detail: fmt.Sprintf("%s: %d complete machine entries, not readable by others", path, len(info.entries))})
	}
	if !strings.Contains(";"+strings.ReplaceAll(s.goauth, " ", "")+";", ";netrc;") && len(info.entries) > 0 {
		r.add(Check{Name: "netrc", Status: Warn, Detail: "GOAUTH does not include netrc, so the go command ignores " + path, Fix: "go env -w GOAUTH=netrc"})
	}
	return info
}

func checkGit(r *Report, env Env) {
	if !env.HasGit {
		r.add(Check{Name: "git", Status: OK, Detail: "git not installed: fine while every module comes through the proxy (GONOPROXY/GOPRIVATE modules need it)"})
		return
	}
	if len(env.GitInsteadOf) == 0 {
		r.add(Check{Name: "git insteadOf", Status: OK, Detail: "no URL rewrites"})
		return
	}
	shown := make([]string, len(env.GitInsteadOf))
	for i, l := range env.GitInsteadOf {
		// url.<base>.insteadof <prefix>: both may hold a token.
		shown[i] = redact.Text(l)
	}
	r.add(Check{Name: "git insteadOf", Status: OK, Detail: "git rewrites URLs (used only for modules fetched direct): " + strings.Join(shown, "; ")})
}
