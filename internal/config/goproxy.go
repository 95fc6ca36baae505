package config

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/modgate/modgate/internal/proxylist"
	"github.com/modgate/modgate/internal/redact"
)

// goEnvTimeout bounds one run of `go env`.
const goEnvTimeout = 10 * time.Second

// DefaultUpstream returns the upstream proxy list to use when --upstream is
// not set: the GOPROXY environment variable read through getenv or, if that
// is empty, goEnv("GOPROXY") (normally GoEnv, which also sees `go env -w`
// settings). Only the http(s) proxies of the list are kept, with the
// separators after them: "direct" entries and entries that are not http(s)
// URLs are dropped, and "off" ends the list, since the go command never
// goes past it. It is an error if no proxy is left.
func DefaultUpstream(getenv func(string) string, goEnv func(key string) (string, error)) (string, error) {
	list, from := getenv("GOPROXY"), "env GOPROXY"
	if list == "" {
		v, err := goEnv("GOPROXY")
		if err != nil {
			return "", fmt.Errorf("no upstream configured and GOPROXY is not set: %v; pass --upstream", err)
		}
		list, from = v, "go env GOPROXY"
	}
	up := proxylist.Format(proxylist.Proxies(list))
	if up == "" {
		return "", fmt.Errorf("no upstream configured and %s (%q) lists no http(s) proxy; pass --upstream", from, redact.Text(list))
	}
	return up, nil
}

// GoEnv returns the value of the go command's environment variable key, as
// printed by `go env key`, using the go binary found in PATH. It gives up
// after 10 seconds.
func GoEnv(key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), goEnvTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "env", key)
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("go env %s: timed out after %v", key, goEnvTimeout)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return "", fmt.Errorf("go env %s: %v: %s", key, err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("go env %s: %v", key, err)
	}
	return strings.TrimSpace(string(out)), nil
}
