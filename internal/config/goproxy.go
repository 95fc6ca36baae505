package config

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
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
	up, _ := filterProxyList(list, false)
	if up == "" {
		return "", fmt.Errorf("no upstream configured and %s (%q) lists no http(s) proxy; pass --upstream", from, list)
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

// proxyEntry is one element of a GOPROXY list and the separator after it
// (',' or '|', or 0 for the last).
type proxyEntry struct {
	value string
	sep   byte
}

func splitProxyList(list string) []proxyEntry {
	var entries []proxyEntry
	for list != "" {
		i := strings.IndexAny(list, ",|")
		if i < 0 {
			entries = append(entries, proxyEntry{strings.TrimSpace(list), 0})
			break
		}
		entries = append(entries, proxyEntry{strings.TrimSpace(list[:i]), list[i]})
		list = list[i+1:]
	}
	return entries
}

// filterProxyList rewrites a GOPROXY list. Like the go command it skips
// empty entries and prefixes "https://" to entries that look like a host
// without a scheme.
//
// In strict mode (an explicitly configured upstream) "direct" and "off" are
// kept, since package source understands them, and any other entry that is
// not an http(s) URL is an error.
//
// Otherwise (a list derived from GOPROXY) only http(s) proxies are kept:
// "direct" and other entries are dropped, and "off" ends the list because
// the go command never goes past it. An entry is joined to the previous kept
// one by the separator that followed that one, so "A|direct,B" becomes "A|B".
func filterProxyList(list string, strict bool) (string, error) {
	var b strings.Builder
	var sep byte
	add := func(entry string, after byte) {
		if b.Len() > 0 {
			b.WriteByte(sep)
		}
		b.WriteString(entry)
		sep = after
	}
	for _, e := range splitProxyList(list) {
		switch e.value {
		case "":
			continue
		case "off", "direct":
			if strict {
				add(e.value, e.sep)
			} else if e.value == "off" {
				return b.String(), nil
			}
			continue
		}
		u, ok := proxyURL(e.value)
		if !ok {
			if strict {
				return "", fmt.Errorf("upstream entry %q: want an http(s) URL, \"direct\" or \"off\"", e.value)
			}
			continue
		}
		add(u, e.sep)
	}
	if strict && b.Len() == 0 {
		return "", errors.New("upstream list has no entries")
	}
	return b.String(), nil
}

// proxyURL normalizes a GOPROXY entry the way the go command does and
// reports whether it is an http(s) URL with a host.
func proxyURL(s string) (string, bool) {
	// Single words are reserved for keywords; anything containing ":/" or
	// that is an absolute path must be a complete URL; otherwise https://
	// is implied.
	if strings.ContainsAny(s, ".:/") && !strings.Contains(s, ":/") && !filepath.IsAbs(s) && !path.IsAbs(s) {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	return s, true
}
