package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/discover"
	"github.com/modgate/modgate/internal/gitauth"
	"github.com/modgate/modgate/internal/gitmirror"
	"github.com/modgate/modgate/internal/gitsource"
	"github.com/modgate/modgate/internal/proxylist"
	"github.com/modgate/modgate/internal/webhook"
)

// gitParts are the pieces of fetching modules from version control: the
// source (for --private's route and for "direct" upstream entries) and the
// mirrors it reads, which Close releases.
type gitParts struct {
	source  *gitsource.Source
	mirrors *gitmirror.Mirrors
	// hosts are the git hosts' credentials (names shown by the health
	// report, never the credentials).
	hosts *gitauth.Hosts
}

// needsGit reports whether the configuration fetches anything from
// version control: private patterns, or a "direct" upstream entry.
func needsGit(cfg *config.Config) bool {
	if cfg.Private != "" {
		return true
	}
	entries, err := proxylist.Parse(cfg.Upstream)
	if err != nil {
		return false // config validated it; New reports it again
	}
	for _, e := range entries {
		if e.Keyword == proxylist.Direct {
			return true
		}
	}
	return false
}

// newGit builds the git source from cfg: credentials by host (the netrc,
// then the git-hosts section), repository discovery (the git-repos section
// first), and bare mirrors under <data-dir>/git.
func newGit(cfg *config.Config, scratch string, log *slog.Logger) (*gitParts, error) {
	configured := make(map[string]gitauth.Credentials, len(cfg.GitHosts))
	for _, h := range cfg.GitHosts {
		configured[h.Host] = gitauth.Credentials{
			Username: h.Username, Password: h.Password, Header: h.Header,
			SSHKeyFile: h.SSHKey, KnownHostsFile: h.KnownHosts,
		}
	}
	hosts, err := gitauth.Load(cfg.Netrc, configured)
	if err != nil {
		return nil, fmt.Errorf("git credentials: %w", err)
	}
	for _, w := range hosts.Warnings() {
		log.Warn("git credentials: " + w)
	}

	static := make([]discover.Repo, 0, len(cfg.GitRepos))
	for _, r := range cfg.GitRepos {
		static = append(static, discover.Repo{Root: r.Module, URL: r.URL, Subdir: r.Subdir})
	}
	if err := discover.CheckStatic(static, cfg.Insecure); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Source("git-repos"), err)
	}

	mirrors, err := gitmirror.New(gitmirror.Config{
		Dir:         filepath.Join(cfg.DataDir, "git"),
		Credentials: hosts.For,
		AllowHTTP:   func(remote string) bool { return insecureURL(cfg.Insecure, remote) },
		Timeout:     cfg.GitTimeout,
		// A git server that sends nothing for as long as an upstream may
		// stay silent is given up on.
		LowSpeedTime: cfg.UpstreamIdleTimeout,
		MaxRepoSize:  int64(cfg.GitMaxRepoSize),
		Logger:       log,
	})
	if err != nil {
		return nil, err
	}
	src, err := gitsource.New(gitsource.Config{
		Lookup: discover.New(discover.Config{
			Insecure:    cfg.Insecure,
			Static:      static,
			Credentials: hosts.For,
			Logger:      log,
		}),
		Mirrors:    mirrors,
		ScratchDir: scratch,
		Logger:     log,
	})
	if err != nil {
		mirrors.Close()
		return nil, err
	}
	return &gitParts{source: src, mirrors: mirrors, hosts: hosts}, nil
}

// insecureURL reports whether a repository URL may be reached over plain
// http: its host and path match --insecure, as a module path would.
func insecureURL(patterns, remote string) bool {
	u, err := url.Parse(remote)
	if err != nil || patterns == "" {
		return false
	}
	return module.MatchPrefixPatterns(patterns, strings.TrimSuffix(u.Host+u.Path, "/"))
}

// webhookHandler serves POST /webhooks/git: an event fetches the mirror of
// the repository it names, then invalidates the cached lists, @latest and
// queries of every module served from it, in that order, so that the next
// request sees the push whatever --list-ttl says.
func (s *Server) webhookHandler() http.Handler {
	return webhook.Handler(s.cfg.WebhookSecret, func(ctx context.Context, ev webhook.Event) error {
		var errs []error
		seen := map[string]bool{}
		fetched := map[string]bool{}
		for _, u := range ev.RepoURLs {
			// A payload names one repository several ways (clone URLs,
			// web page): fetch its mirror once.
			if k := gitmirror.RepoKey(u); fetched[k] {
				continue
			} else {
				fetched[k] = true
			}
			mods, err := s.git.source.Refresh(ctx, u)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, m := range mods {
				if !seen[m] {
					seen[m] = true
					s.cache.Invalidate(m)
				}
			}
		}
		s.log.Info("git webhook", "forge", ev.Forge, "event", ev.Kind, "ref", ev.Ref, "modules_invalidated", len(seen))
		if len(seen) == 0 && len(errs) > 0 {
			return errors.Join(errs...)
		}
		return nil
	}, s.log)
}
