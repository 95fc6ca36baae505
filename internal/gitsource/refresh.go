package gitsource

import (
	"context"

	"github.com/modgate/modgate/internal/gitmirror"
)

// Refresh fetches the mirror of repoURL now, whatever FetchInterval says
// (a push event arrived), and returns the module paths this source has
// answered for from that repository, so that the caller can drop what it
// cached about them. repoURL is matched loosely (gitmirror.RepoKey:
// scheme, user information, port, host case and a trailing ".git" or "/"
// do not matter) against the mirrors this process has opened and, after
// a restart, those kept on disk; no mirror is created. An unknown
// repository is not an error: (nil, nil).
func (s *Source) Refresh(ctx context.Context, repoURL string) ([]string, error) {
	key := gitmirror.RepoKey(repoURL)
	if key == "" {
		return nil, nil
	}
	s.mu.Lock()
	m := s.mirrors[key]
	s.mu.Unlock()
	if m == nil {
		remote, err := s.keptRemote(ctx, key)
		if err != nil || remote == "" {
			return nil, err
		}
		if m, err = s.mirror(ctx, remote); err != nil {
			return nil, err
		}
	}
	if err := m.open(ctx); err != nil {
		return nil, err
	}
	m.fetchMu.Lock()
	err := m.fetchLocked(ctx, "refresh")
	m.fetchMu.Unlock()
	if err != nil {
		return nil, err
	}
	return m.modules(), nil
}

// keptRemote returns the remote URL of a mirror on disk whose key is key,
// or "".
func (s *Source) keptRemote(ctx context.Context, key string) (string, error) {
	remotes, err := s.cfg.Mirrors.Remotes(ctx)
	if err != nil {
		return "", err
	}
	for _, u := range remotes {
		if gitmirror.RepoKey(u) == key {
			return u, nil
		}
	}
	return "", nil
}
