package discover

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/redact"
)

// staticEntry is one entry of Config.Static, checked once.
type staticEntry struct {
	repo Repo
	err  error // why the entry cannot be used
}

// buildStatic returns the mapping longest prefix first, so that the
// first match is the longest.
func buildStatic(repos []Repo, insecure string) []staticEntry {
	entries := make([]staticEntry, 0, len(repos))
	for _, r := range repos {
		entries = append(entries, staticEntry{repo: r, err: checkStaticEntry(r, insecure)})
	}
	slices.SortFunc(entries, func(a, b staticEntry) int {
		return cmp.Or(cmp.Compare(len(b.repo.Root), len(a.repo.Root)), strings.Compare(a.repo.Root, b.repo.Root))
	})
	return entries
}

// CheckStatic reports the entries of a static mapping (as in
// Config.Static) that cannot be used, for the configuration to refuse at
// start-up; insecure is Config.Insecure.
func CheckStatic(repos []Repo, insecure string) error {
	var errs []error
	for _, e := range buildStatic(repos, insecure) {
		if e.err != nil {
			errs = append(errs, e.err)
		}
	}
	return errors.Join(errs...)
}

func checkStaticEntry(r Repo, insecure string) error {
	if err := module.CheckImportPath(r.Root); err != nil {
		return fmt.Errorf("static mapping %q: the prefix is not a module path prefix: %v", r.Root, err)
	}
	allowHTTP := insecure != "" && module.MatchPrefixPatterns(insecure, r.Root)
	if err := checkRepoURL(r.URL, allowHTTP); err != nil {
		return fmt.Errorf("static mapping %q: %v", r.Root, err)
	}
	if r.Subdir != "" {
		if err := checkSubdir(r.Subdir); err != nil {
			return fmt.Errorf("static mapping %q: subdirectory: %v", r.Root, err)
		}
	}
	return nil
}

func (r *Resolver) lookupStatic(modPath string) (Repo, bool, error) {
	for _, e := range r.static {
		if !hasPathPrefix(modPath, e.repo.Root) {
			continue
		}
		if e.err != nil {
			return Repo{}, true, newError(modPath, false, nil, "%v", e.err)
		}
		return e.repo, true, nil
	}
	return Repo{}, false, nil
}

// checkRepoURL checks a repository URL named by the configuration or by a
// server: an absolute URL whose scheme git may use from modgate (https,
// ssh, git+ssh; http only when allowHTTP), naming a host, without
// credentials. Its errors show the URL redacted.
func checkRepoURL(raw string, allowHTTP bool) error {
	shown := redact.URL(raw)
	if raw == "" || strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("repository URL %q is empty or contains spaces or control characters", shown)
	}
	if !strings.Contains(raw, "://") {
		if strings.Contains(raw, ":") && !strings.Contains(strings.SplitN(raw, ":", 2)[0], "/") {
			return fmt.Errorf("repository URL %q has the scp-like form; write it as ssh://user@host/path", shown)
		}
		return fmt.Errorf("repository URL %q has no scheme", shown)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("repository URL %q does not parse", shown)
	}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "https", "ssh", "git+ssh":
	case "http":
		if !allowHTTP {
			return fmt.Errorf("repository URL %q uses plain http, which only paths marked insecure (--insecure) may", shown)
		}
	default:
		return fmt.Errorf("repository URL %q: scheme %q not allowed (https and ssh; http for insecure paths)", shown, u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("repository URL %q names no host", shown)
	}
	// A host or user starting with "-" would read as an option to ssh.
	if strings.HasPrefix(u.Hostname(), "-") {
		return fmt.Errorf("repository URL %q: host name starts with a dash", shown)
	}
	if u.User != nil {
		if scheme == "http" || scheme == "https" {
			return fmt.Errorf("repository URL %q carries user information; credentials belong in the netrc file or the credentials configuration", shown)
		}
		if _, hasPassword := u.User.Password(); hasPassword {
			return fmt.Errorf("repository URL %q carries a password; use an ssh key", shown)
		}
		if strings.HasPrefix(u.User.Username(), "-") {
			return fmt.Errorf("repository URL %q: user name starts with a dash", shown)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Errorf("repository URL %q has a query or fragment", shown)
	}
	return nil
}
