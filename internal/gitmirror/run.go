package gitmirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/modgate/modgate/internal/gitauth"
	"github.com/modgate/modgate/internal/redact"
)

const (
	// maxOutput bounds what a plumbing command may print when it is
	// collected in memory (for-each-ref of a repository with very many
	// tags stays far below).
	maxOutput = 64 << 20
	// maxStderr is how much of git's stderr is kept to explain a failure.
	maxStderr = 64 << 10
	// lowSpeedLimit is the transfer rate (bytes/s) under which a transfer
	// counts as stalled, for Config.LowSpeedTime.
	lowSpeedLimit = 1024
)

// lineOf makes text from git fit in an error: redacted, one line, cut.
func lineOf(s string) string { return redact.Line(s, 240) }

// gitEnv returns the environment of every git command modgate runs,
// derived from environ (the process's): the operator's own settings stay
// (HOME and so the global git configuration with its credential helpers
// and insteadOf rules, ~/.ssh/config, proxies, CA files), but variables
// that would change what git does behind modgate's back are dropped:
// GIT_DIR and friends, GIT_CONFIG_PARAMETERS/COUNT, GIT_ALLOW_PROTOCOL
// (it would override the protocol allow-list), GIT_ASKPASS/SSH_ASKPASS,
// GIT_SSH(_COMMAND), the GIT_HTTP_LOW_SPEED_* overrides and GIT_TRACE*/
// GIT_CURL_VERBOSE (which print request headers, credentials included).
func gitEnv(environ []string) []string {
	keep := map[string]bool{
		"GIT_CONFIG_GLOBAL": true, "GIT_CONFIG_SYSTEM": true, "GIT_CONFIG_NOSYSTEM": true,
		"GIT_EXEC_PATH": true, "GIT_HTTP_USER_AGENT": true, "GIT_HTTP_PROXY_AUTHMETHOD": true,
	}
	drop := map[string]bool{
		"SSH_ASKPASS": true, "SSH_ASKPASS_REQUIRE": true, "LC_ALL": true, "LANGUAGE": true,
	}
	var env []string
	httpProxy, hasLowerHTTPProxy := "", false
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		switch name {
		case "http_proxy":
			hasLowerHTTPProxy = true
		case "HTTP_PROXY":
			httpProxy = val
		}
		if strings.HasPrefix(name, "GIT_") && !keep[name] &&
			!strings.HasPrefix(name, "GIT_SSL_") && !strings.HasPrefix(name, "GIT_PROXY_SSL_") {
			continue
		}
		if drop[name] {
			continue
		}
		env = append(env, kv)
	}
	// libcurl reads only the lower-case http_proxy (the upper-case one is
	// ignored for fear of CGI's HTTP_PROXY request header); modgate
	// honours both, like the go command.
	if httpProxy != "" && !hasLowerHTTPProxy {
		env = append(env, "http_proxy="+httpProxy)
	}
	return append(env,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=", // set but empty: git then asks neither core.askPass nor SSH_ASKPASS
		"SSH_ASKPASS_REQUIRE=never",
		"GIT_NO_REPLACE_OBJECTS=1",
		"LC_ALL=C", // stable messages, for classify
	)
}

// configEnv passes config settings as GIT_CONFIG_COUNT/KEY/VALUE
// environment variables: they beat every configuration file, and unlike
// `-c` arguments they do not show in the process list.
func configEnv(pairs [][2]string) []string {
	env := make([]string, 0, 2*len(pairs)+1)
	env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(len(pairs)))
	for i, p := range pairs {
		n := strconv.Itoa(i)
		env = append(env, "GIT_CONFIG_KEY_"+n+"="+p[0], "GIT_CONFIG_VALUE_"+n+"="+p[1])
	}
	return env
}

// baseConfig is set for every command: no hooks, the transport allow-list,
// synchronous housekeeping, no filesystem monitor.
func baseConfig(allowHTTP bool, lowSpeedTime time.Duration) [][2]string {
	secs := int64((lowSpeedTime + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	c := [][2]string{
		{"core.hooksPath", "/dev/null"},
		{"core.fsmonitor", "false"},
		{"protocol.allow", "never"},
		{"protocol.https.allow", "always"},
		{"protocol.ssh.allow", "always"},
		{"http.lowSpeedLimit", strconv.Itoa(lowSpeedLimit)},
		{"http.lowSpeedTime", strconv.FormatInt(secs, 10)},
		{"gc.autoDetach", "false"},
		{"maintenance.autoDetach", "false"},
	}
	if allowHTTP {
		c = append(c, [2]string{"protocol.http.allow", "always"})
	}
	return c
}

// credentialHelper answers git's "get" with the user name and password
// from the environment of the git process that runs it; printf %s keeps
// the values from ever being read as shell.
const credentialHelper = `!f() { test "$1" = get || exit 0; printf 'username=%s\npassword=%s\n' "$MODGATE_GIT_USERNAME" "$MODGATE_GIT_PASSWORD"; }; f`

// credentialConfig returns the settings and environment that present
// creds to rem's host and to no other: the credential helper and the extra
// header are scoped to "<scheme>://<host>" (git matches host and port
// exactly), and with a header redirects are not followed at all, since an
// extra header would follow one to any host. The secrets are in the
// environment of that one git process only, never in argv or a file.
func credentialConfig(rem remote, creds gitauth.Credentials, lowSpeedTime time.Duration) (config [][2]string, env []string, err error) {
	bad := func(s string) bool { return strings.ContainsAny(s, "\x00\r\n") }
	if bad(creds.Username) || bad(creds.Password) || bad(creds.Header) || bad(creds.SSHKeyFile) || bad(creds.KnownHostsFile) {
		return nil, nil, &Error{Host: rem.host, Kind: KindRefused, Detail: "the credentials configured for this host contain a line break"}
	}
	if rem.scheme == "ssh" {
		return nil, []string{"GIT_SSH_COMMAND=" + sshCommand(creds, lowSpeedTime)}, nil
	}
	scope := rem.scheme + "://" + rem.host
	if creds.Username != "" || creds.Password != "" {
		// The empty value first drops the helpers of the configuration
		// files for this host: modgate's credentials win, and an operator's
		// helper is never asked to store or erase them.
		config = append(config,
			[2]string{"credential." + scope + ".helper", ""},
			[2]string{"credential." + scope + ".helper", credentialHelper},
		)
		env = append(env, "MODGATE_GIT_USERNAME="+creds.Username, "MODGATE_GIT_PASSWORD="+creds.Password)
	}
	if creds.Header != "" {
		name, _, ok := strings.Cut(creds.Header, ":")
		if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t") {
			return nil, nil, &Error{Host: rem.host, Kind: KindRefused, Detail: `the header configured for this host is not "Name: value"`}
		}
		config = append(config,
			[2]string{"http." + scope + "/.extraHeader", ""},
			[2]string{"http." + scope + "/.extraHeader", creds.Header},
			[2]string{"http.followRedirects", "false"},
		)
	}
	return config, env, nil
}

// sshCommand is GIT_SSH_COMMAND for every ssh remote: never interactive
// (BatchMode), and with a configured key only that key, checked against
// only that known_hosts file (never trust on first use). Other ssh
// settings come from the operator's ~/.ssh/config.
func sshCommand(creds gitauth.Credentials, lowSpeedTime time.Duration) string {
	secs := int64((lowSpeedTime + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	cmd := "ssh -o BatchMode=yes -o ConnectTimeout=" + strconv.FormatInt(secs, 10)
	if creds.SSHKeyFile != "" {
		cmd += " -i " + shellQuote(creds.SSHKeyFile) + " -o IdentitiesOnly=yes"
	}
	if creds.KnownHostsFile != "" {
		cmd += " -o UserKnownHostsFile=" + shellQuote(creds.KnownHostsFile) + " -o StrictHostKeyChecking=yes"
	}
	return cmd
}

// shellQuote quotes s for sh: in single quotes, each ' written as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// gitRun is one git command in a mirror.
type gitRun struct {
	args   []string
	config [][2]string // beyond baseConfig
	env    []string    // beyond the mirror's environment
	stdin  io.Reader
	stdout io.Writer // nil: collected, at most maxOutput bytes
	// allowHTTP adds plain http to the transport allow-list.
	allowHTTP bool
}

// runError is a git command that failed, with the start of its stderr.
type runError struct {
	sub    string // "cat-file", "fetch", ...
	err    error
	stderr string
}

func (e *runError) Error() string {
	msg := "git " + e.sub + ": " + e.err.Error()
	if s := gitMessage(e.stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *runError) Unwrap() error { return e.err }

// exitCode is the exit status of the failed command, -1 if it did not
// exit normally.
func (e *runError) exitCode() int {
	var ee *exec.ExitError
	if errors.As(e.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// run runs git in the mirror, bounded by Config.Timeout and ctx, killing
// its whole process group when either ends.
func (r *Repo) run(ctx context.Context, g gitRun) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.m.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.m.gitPath, g.args...)
	cmd.Dir = r.dir
	env := append([]string(nil), r.m.env...)
	env = append(env, "GIT_DIR="+r.dir)
	env = append(env, configEnv(append(baseConfig(g.allowHTTP, r.m.cfg.LowSpeedTime), g.config...))...)
	cmd.Env = append(env, g.env...)
	cmd.Stdin = g.stdin
	var stdout *limitedBuffer
	if g.stdout != nil {
		cmd.Stdout = g.stdout
	} else {
		stdout = &limitedBuffer{max: maxOutput}
		cmd.Stdout = stdout
	}
	stderr := &limitedBuffer{max: maxStderr, truncate: true}
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	isolate(cmd)
	err := cmd.Run()
	sub := ""
	if len(g.args) > 0 {
		sub = g.args[0]
	}
	if err == nil && stdout != nil && stdout.over {
		err = fmt.Errorf("output larger than %d bytes", maxOutput)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, &runError{sub: sub, err: err, stderr: stderr.String()}
	}
	if stdout == nil {
		return nil, nil
	}
	return stdout.Bytes(), nil
}

// limitedBuffer keeps at most max bytes. Beyond that it either fails the
// write (stdout: the command's output is incomplete) or drops the rest
// (stderr: the start says what went wrong).
type limitedBuffer struct {
	bytes.Buffer
	max      int
	truncate bool
	over     bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		if !b.truncate {
			return 0, errors.New("output too large")
		}
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
