package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
)

// IsCanonical reports whether version names exactly one immutable version
// of path (a tag or pseudo-version in canonical form), as opposed to a query
// such as a branch name or commit prefix.
func IsCanonical(path, version string) bool {
	return module.CanonicalVersion(version) == version && module.Check(path, version) == nil
}

// Info returns the .info of a canonical version, or resolves a query
// (branch, commit prefix, non-canonical semver) to one. Canonical answers
// are immutable objects; query answers are cached with the list TTL.
//
// The caller has checked that a canonical query suits the path
// (module.Check), as the HTTP layer does once per request.
func (m *Modules) Info(ctx context.Context, path, query string) (info []byte, immutable *Object, err error) {
	if module.CanonicalVersion(query) == query {
		obj, err := m.immutable(ctx, path, query, "info", func(fctx context.Context, key string) error {
			fctx, origin := source.WithOrigin(fctx)
			data, err := m.cfg.Source.Info(fctx, path, query)
			if err != nil {
				return err
			}
			if _, err := modcheck.ParseInfo(data, path, query); err != nil {
				return &InvalidError{Source: m.originName(origin), What: path + "@" + query + " .info", Err: err}
			}
			return m.cfg.Store.Put(fctx, key, bytes.NewReader(data))
		})
		return nil, obj, err
	}
	key, err := store.QueryKey(path, query)
	if err != nil {
		return nil, nil, err
	}
	// Query answers are kept in memory only: anyone can ask for any number
	// of branch names, and storage must not grow with them. After a restart
	// a query is asked again (no stale-if-error across restarts); the
	// canonical .info it resolved to is stored, like any module file.
	q := question{kind: "query", path: path, version: query, key: key, inMemory: true}
	body, result, err := m.fresh(ctx, q, func(fctx context.Context) ([]byte, error) {
		fctx, origin := source.WithOrigin(fctx)
		data, err := m.cfg.Source.Info(fctx, path, query)
		if err != nil {
			return nil, err
		}
		info, err := modcheck.ParseInfo(data, path, "")
		if err != nil {
			return nil, &InvalidError{Source: m.originName(origin), What: path + "@" + query + " .info", Err: err}
		}
		m.rememberInfo(fctx, path, info.Version, data)
		return data, nil
	})
	countResult("query", result)
	return body, nil, err
}

// originName names the origin that sent an answer: the chain entry that
// answered, else the whole source.
func (m *Modules) originName(o *source.Origin) string {
	if name := o.String(); name != "" {
		return name
	}
	return m.cfg.Source.String()
}

// rememberInfo stores the .info of a canonical version learned from a query,
// so that the follow-up canonical request needs no fetch.
func (m *Modules) rememberInfo(ctx context.Context, path, version string, data []byte) {
	key, err := store.VersionKey(path, version, "info")
	if err != nil {
		return
	}
	if _, err := m.cfg.Store.Stat(ctx, key); err == nil {
		return
	}
	if err := m.cfg.Store.Put(ctx, key, bytes.NewReader(data)); err != nil {
		m.log.Warn("cannot store .info", "module", path, "version", version, "err", err)
	}
}

// GoMod returns the go.mod of a canonical version.
func (m *Modules) GoMod(ctx context.Context, path, version string) (*Object, error) {
	return m.immutable(ctx, path, version, "mod", func(fctx context.Context, key string) error {
		fctx, origin := source.WithOrigin(fctx)
		data, err := m.cfg.Source.GoMod(fctx, path, version)
		if err != nil {
			return err
		}
		if err := modcheck.CheckGoMod(data, path, version); err != nil {
			return &InvalidError{Source: m.originName(origin), What: path + "@" + version + " .mod", Err: err}
		}
		if m.cfg.Verifier != nil {
			h1, err := modcheck.HashGoMod(data)
			if err != nil {
				return err
			}
			if err := m.cfg.Verifier.Verify(fctx, path, version, true, h1); err != nil {
				return fmt.Errorf("%w (go.mod from %s)", err, m.originName(origin))
			}
		}
		return m.cfg.Store.Put(fctx, key, bytes.NewReader(data))
	})
}

// Zip returns the module zip of a canonical version. A zip is downloaded to
// a scratch file, checked and hashed there, and only then stored:
// storage never holds a zip that failed the checks, and memory use does not
// depend on the zip's size.
func (m *Modules) Zip(ctx context.Context, path, version string) (*Object, error) {
	return m.immutable(ctx, path, version, "zip", func(fctx context.Context, key string) error {
		what := path + "@" + version + " .zip"
		fctx, origin := source.WithOrigin(fctx)
		body, err := m.cfg.Source.Zip(fctx, path, version)
		if err != nil {
			return err
		}
		defer body.Close()
		fp, canMove := m.cfg.Store.(store.FilePutter)
		var tmp *os.File
		if canMove {
			// The checked file then becomes the object with one rename.
			// The store's staging file is locked against its cleanup of
			// interrupted writes while open: it stays open (deferred
			// Close) until PutFile has moved it, and goes if we die.
			tmp, err = fp.CreateTemp("fetch-*.zip")
		} else {
			tmp, err = os.CreateTemp(m.cfg.ScratchDir, "fetch-*.zip")
		}
		if err != nil {
			return fmt.Errorf("scratch space: %w", err)
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if _, err := io.Copy(tmp, body); err != nil {
			return err
		}
		h1, err := modcheck.CheckZip(tmp.Name(), path, version)
		if err != nil {
			return &InvalidError{Source: m.originName(origin), What: what, Err: err}
		}
		if m.cfg.Verifier != nil {
			if err := m.cfg.Verifier.Verify(fctx, path, version, false, h1); err != nil {
				return fmt.Errorf("%w (zip from %s)", err, m.originName(origin))
			}
		}
		hashKey, err := store.VersionKey(path, version, "ziphash")
		if err != nil {
			return err
		}
		// The hash goes first: a zip is visible only once it is complete, and
		// by then its hash is already beside it.
		if err := m.cfg.Store.Put(fctx, hashKey, strings.NewReader(h1+"\n")); err != nil {
			return err
		}
		if canMove {
			return fp.PutFile(fctx, key, tmp.Name())
		}
		f, err := os.Open(tmp.Name())
		if err != nil {
			return fmt.Errorf("scratch space: %w", err)
		}
		defer f.Close()
		return m.cfg.Store.Put(fctx, key, f)
	})
}

// immutable serves a canonical version's file from storage, fetching it
// with fetch (which must check and store it under key) on a miss.
func (m *Modules) immutable(ctx context.Context, path, version, ext string, fetch func(ctx context.Context, key string) error) (*Object, error) {
	key, err := store.VersionKey(path, version, ext)
	if err != nil {
		return nil, err
	}
	if obj, err := m.open(ctx, key); err == nil || !errors.Is(err, store.ErrNotExist) {
		if err == nil {
			countResult(ext, resultHit)
		}
		return obj, err
	}
	mk := newMemKey(key)
	if live, err := m.neg.get(mk, m.now()); live {
		countResult(ext, resultNegative)
		return nil, err
	}
	g, err := m.limit.allow(ctx)
	if err != nil {
		countResult(ext, resultRateLimited)
		return nil, err
	}
	countResult(ext, resultMiss)
	_, err = m.waitFlight(ctx, key, func(fctx context.Context) ([]byte, error) {
		// Another flight may have stored it between our miss and this flight.
		if _, err := m.cfg.Store.Stat(fctx, key); err == nil {
			return nil, nil
		}
		if p, ok := m.cfg.Verifier.(prefetcher); ok {
			p.Prefetch(path, version)
		}
		start := time.Now()
		err := fetch(fctx, key)
		observeFetch(ext, start, err)
		m.logFetch(path, version, ext, start, err)
		return nil, err
	})
	g.done(err == nil)
	if err != nil {
		if errors.Is(err, source.ErrNotFound) && m.cfg.NegativeTTL > 0 {
			m.neg.put(mk, err, m.now().Add(m.cfg.NegativeTTL))
		}
		return nil, err
	}
	return m.open(ctx, key)
}

func (m *Modules) open(ctx context.Context, key string) (*Object, error) {
	rc, info, err := m.cfg.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return &Object{Content: rc, Info: info}, nil
}

// Answer is modgate's answer to a mutable question (@v/list, @latest).
type Answer struct {
	// Body is served as is: the versions one per line, or @latest's .info.
	Body []byte
	// Degraded reports an answer made from stored module files alone,
	// because the source failed and had never answered this question (or
	// its answer was not usable): it may lack versions published upstream,
	// so clients must not keep it.
	Degraded bool
}

// List returns the canonical release and pre-release versions of path, one
// per line: the source's list merged with every version already stored, so
// that it still answers when the source is down. Pseudo-versions are left
// out, as the go command ignores them in lists.
func (m *Modules) List(ctx context.Context, path string) (Answer, error) {
	tagged, _, degraded, err := m.versions(ctx, path)
	if err != nil {
		return Answer{}, err
	}
	var b strings.Builder
	for _, v := range tagged {
		b.WriteString(v)
		b.WriteByte('\n')
	}
	return Answer{Body: []byte(b.String()), Degraded: degraded}, nil
}

// versions returns the tagged versions (for @v/list) and the pseudo-versions
// known for path, each sorted ascending, from the source's list merged with
// the stored versions. degraded reports that the source failed and the
// versions are the stored ones alone.
func (m *Modules) versions(ctx context.Context, path string) (tagged, pseudo []string, degraded bool, err error) {
	key, err := store.MetaKey(path, "list")
	if err != nil {
		return nil, nil, false, err
	}
	q := question{kind: "list", path: path, key: key}
	body, result, srcErr := m.fresh(ctx, q, func(fctx context.Context) ([]byte, error) {
		versions, err := m.cfg.Source.List(fctx, path)
		if err != nil {
			return nil, err
		}
		return []byte(strings.Join(versions, "\n")), nil
	})
	if isRateLimited(srcErr) {
		// Not asked, not failed: the client is told to come back later
		// rather than given a list that may be incomplete.
		countResult("list", result)
		return nil, nil, false, srcErr
	}
	stored, err := m.storedVersions(ctx, path)
	if err != nil {
		countResult("list", result)
		return nil, nil, false, err
	}
	if srcErr != nil {
		if len(stored) == 0 {
			countResult("list", result)
			return nil, nil, false, srcErr
		}
		if !errors.Is(srcErr, source.ErrNotFound) {
			m.log.Warn("upstream list failed; answering with the stored versions alone", "module", path, "err", srcErr)
			degraded, result = true, resultDegraded
		}
	}
	countResult("list", result)
	seen := map[string]bool{}
	var all []string
	for _, v := range append(strings.Fields(string(body)), stored...) {
		if !seen[v] && IsCanonical(path, v) {
			seen[v] = true
			all = append(all, v)
		}
	}
	tagged, pseudo = splitPseudo(all)
	return tagged, pseudo, degraded, nil
}

// storedVersions lists the canonical versions with any file in storage.
func (m *Modules) storedVersions(ctx context.Context, path string) ([]string, error) {
	prefix, err := store.VersionPrefix(path)
	if err != nil {
		return nil, err
	}
	var versions []string
	seen := map[string]bool{}
	err = m.cfg.Store.List(ctx, prefix, func(key string) error {
		p, v, _, err := store.ParseVersionKey(key)
		if err != nil || p != path || seen[v] {
			return nil // a key of a longer path sharing the prefix, or junk
		}
		seen[v] = true
		versions = append(versions, v)
		return nil
	})
	return versions, err
}

// Latest answers @latest: the source's answer while it has one (cached with
// the list TTL); when the source has none (some proxies answer 404 for
// @latest) or is down, the version the go command would pick from the list:
// the highest release, else the highest pre-release, else (a module without
// tags) the newest pseudo-version known.
//
// The answer is degraded when it could not be computed from anything the
// source said: the list was degraded, or the version it names had to be
// replaced with the newest one whose .info is stored.
func (m *Modules) Latest(ctx context.Context, path string) (Answer, error) {
	key, err := store.MetaKey(path, "latest")
	if err != nil {
		return Answer{}, err
	}
	q := question{kind: "latest", path: path, key: key}
	body, result, latestErr := m.fresh(ctx, q, func(fctx context.Context) ([]byte, error) {
		fctx, origin := source.WithOrigin(fctx)
		data, err := m.cfg.Source.Latest(fctx, path)
		if err != nil {
			return nil, err
		}
		if _, err := modcheck.ParseInfo(data, path, ""); err != nil {
			return nil, &InvalidError{Source: m.originName(origin), What: path + "@latest", Err: err}
		}
		return data, nil
	})
	if latestErr == nil || isRateLimited(latestErr) {
		countResult("latest", result)
		return Answer{Body: body}, latestErr
	}
	ans, err := m.latestFromList(ctx, path, latestErr)
	switch {
	case err != nil:
	case ans.Degraded:
		result = resultDegraded
	case errors.Is(latestErr, source.ErrNotFound):
		// The source has no @latest for a module whose versions it lists
		// (some proxies never serve @latest). Keep the answer computed
		// from its list as if the source had given it: it is served after
		// a restart without asking again, while the source is down too,
		// and it is bounded by real modules. When it goes stale, the
		// refresh asks the source's @latest again.
		m.saveAnswer(ctx, q, &entry{Fetched: m.now(), Body: ans.Body})
	}
	countResult("latest", result)
	return ans, err
}

// latestFromList answers @latest the way the go command would from the
// list, when the source's own @latest failed with latestErr.
func (m *Modules) latestFromList(ctx context.Context, path string, latestErr error) (Answer, error) {
	tagged, pseudo, degraded, err := m.versions(ctx, path)
	if err != nil || len(tagged)+len(pseudo) == 0 {
		if errors.Is(latestErr, source.ErrNotFound) && err != nil && !errors.Is(err, source.ErrNotFound) {
			return Answer{}, err // the list failed for a reason worth reporting
		}
		return Answer{}, latestErr
	}
	best := pickLatest(tagged, pseudo)
	_, obj, err := m.Info(ctx, path, best)
	if err != nil && !isRateLimited(err) {
		// The source is down and that version's .info was never fetched:
		// answer with the best version whose .info is stored instead.
		if stored := m.storedInfos(ctx, path); len(stored) > 0 {
			m.log.Warn("@latest: answering with the newest stored version", "module", path, "wanted", best, "err", err)
			_, obj, err = m.Info(ctx, path, pickLatest(splitPseudo(stored)))
			degraded = true
		}
	}
	if err != nil {
		return Answer{}, err
	}
	defer obj.Content.Close()
	data, err := io.ReadAll(io.LimitReader(obj.Content, 1<<20))
	if err != nil {
		return Answer{}, err
	}
	return Answer{Body: data, Degraded: degraded}, nil
}

// storedInfos returns the versions of path whose .info is stored.
func (m *Modules) storedInfos(ctx context.Context, path string) []string {
	prefix, err := store.VersionPrefix(path)
	if err != nil {
		return nil
	}
	var versions []string
	m.cfg.Store.List(ctx, prefix, func(key string) error {
		if p, v, ext, err := store.ParseVersionKey(key); err == nil && p == path && ext == "info" && IsCanonical(path, v) {
			versions = append(versions, v)
		}
		return nil
	})
	return versions
}

// splitPseudo sorts versions into tagged and pseudo-versions, each ascending.
func splitPseudo(versions []string) (tagged, pseudo []string) {
	for _, v := range versions {
		if module.IsPseudoVersion(v) {
			pseudo = append(pseudo, v)
		} else {
			tagged = append(tagged, v)
		}
	}
	semver.Sort(tagged)
	semver.Sort(pseudo)
	return tagged, pseudo
}

// pickLatest returns the highest release in tagged, else the highest
// pre-release, else the newest pseudo-version. Both lists are sorted
// ascending and not both empty.
func pickLatest(tagged, pseudo []string) string {
	for i := len(tagged) - 1; i >= 0; i-- {
		if semver.Prerelease(tagged[i]) == "" {
			return tagged[i]
		}
	}
	if len(tagged) > 0 {
		return tagged[len(tagged)-1]
	}
	return pseudo[len(pseudo)-1]
}
