package discover

import (
	"context"
	"errors"
	"regexp"
	"strings"
)

// knownHost is a hosting site whose repository roots follow from the path
// alone, without asking the site: the go command's own list, cut to the
// git hosts still in service.
type knownHost struct {
	prefix string         // the host, matched at an element boundary
	root   *regexp.Regexp // its first group is the repository root
}

var knownHosts = []knownHost{
	{"github.com", regexp.MustCompile(`^(github\.com/[\w.\-]+/[\w.\-]+)(?:/[\w.\-]+)*$`)},
	{"bitbucket.org", regexp.MustCompile(`^(bitbucket\.org/[\w.\-]+/[\w.\-]+)(?:/[\w.\-]+)*$`)},
}

// vcsNames are the version control systems the go command recognises
// by a path element's suffix. modgate serves git alone; the others are
// recognised so that they get a clear refusal instead of a meta-tag
// request.
var vcsNames = map[string]string{
	"git":    "git",
	"hg":     "Mercurial (hg)",
	"svn":    "Subversion (svn)",
	"bzr":    "Bazaar (bzr)",
	"fossil": "Fossil",
}

func lookupKnownHost(modPath string) (Repo, bool, error) {
	for _, h := range knownHosts {
		if !hasPathPrefix(modPath, h.prefix) {
			continue
		}
		m := h.root.FindStringSubmatch(modPath)
		if m == nil {
			return Repo{}, true, newError(modPath, true, nil, "not a repository path on %s (want %s/OWNER/REPO)", h.prefix, h.prefix)
		}
		root := m[1]
		// As the go command: on these sites a repository is named
		// without its suffix, so "owner/repo.git" is a mistake.
		for suffix := range vcsNames {
			if strings.HasSuffix(root, "."+suffix) {
				return Repo{}, true, newError(modPath, true, nil, "invalid version control suffix in %s path: drop the %q", h.prefix, "."+suffix)
			}
		}
		return Repo{Root: root, URL: "https://" + root}, true, nil
	}
	return Repo{}, false, nil
}

// suffixRule is the go command's rule for any other host: a path element
// (after the host) ending in ".git", ".hg", ... ends the repository root,
// e.g. "git.corp.example.com/team/repo.git/sub". With several such
// elements the expression, like the go command's, takes the last one
// ("h/a.git/b.git/c": root "h/a.git/b.git"). Group 1 is the root, group 2
// the root without its suffix, group 3 the suffix.
var suffixRule = regexp.MustCompile(`^(((?:[a-z0-9.\-]+\.)+[a-z0-9.\-]+(?::[0-9]+)?(?:/~?[\w.\-]+)+?)\.(bzr|fossil|git|hg|svn))(?:/~?[\w.\-]+)*$`)

// lookupSuffix applies the suffix rule. The URL is the root without its
// suffix, as the go command builds it (git servers, git http-backend
// included, find "repo.git" when asked for "repo"). Its scheme is the
// first of https, http (insecure paths only) and ssh that Config.Ping
// accepts; https when there is no Ping.
func (r *Resolver) lookupSuffix(ctx context.Context, modPath string) (Repo, bool, error) {
	m := suffixRule.FindStringSubmatch(modPath)
	if m == nil {
		return Repo{}, false, nil
	}
	root, repo, vcs := m[1], m[2], m[3]
	if vcs != "git" {
		return Repo{}, true, newError(modPath, true, nil, "%s names a %s repository; modgate serves git repositories only", root, vcsNames[vcs])
	}
	if r.cfg.Ping == nil {
		return Repo{Root: root, URL: "https://" + repo}, true, nil
	}
	schemes := []string{"https"}
	if r.insecure(modPath) {
		schemes = append(schemes, "http")
	}
	schemes = append(schemes, "ssh")
	var errs []error
	for _, scheme := range schemes {
		u := scheme + "://" + repo
		pctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		err := r.cfg.Ping(pctx, u)
		cancel()
		if err == nil {
			return Repo{Root: root, URL: u}, true, nil
		}
		errs = append(errs, errors.New(scheme+": "+err.Error()))
	}
	return Repo{}, true, newError(modPath, false, errors.Join(errs...), "no protocol reaches repository %s at %s (%v)", root, hostOf(modPath), strings.ReplaceAll(errors.Join(errs...).Error(), "\n", "; "))
}
