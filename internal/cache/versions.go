package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
)

// Info returns the .info of a canonical version, or resolves a query
// (branch, commit prefix, non-canonical semver) to one. Canonical answers
// are immutable objects; query answers are cached with the list TTL.
//
// The caller has checked that a canonical query suits the path
// (module.Check), as the HTTP layer does once per request.
func (m *Modules) Info(ctx context.Context, path, query string) (*protocol.File, error) {
	if module.CanonicalVersion(query) == query {
		return m.immutable(ctx, path, query, "info", (*Modules).fetchInfo)
	}
	key, err := store.QueryKey(path, query)
	if err != nil {
		return nil, err
	}
	// Query answers are kept in memory only: anyone can ask for any number
	// of branch names, and storage must not grow with them. After a restart
	// a query is asked again (no stale-if-error across restarts); the
	// canonical .info it resolved to is stored, like any module file.
	q := question{kind: "query", path: path, version: query, key: key, inMemory: true}
	e, result, err := m.fresh(ctx, q, func(fctx context.Context) (*entry, error) {
		fctx, origin := source.WithOrigin(fctx)
		data, err := m.cfg.Source.Info(fctx, path, query)
		if err != nil {
			return nil, err
		}
		name := m.originName(origin)
		info, err := modcheck.ParseInfo(data, path, "")
		if err != nil {
			return nil, &protocol.InvalidError{Source: name, What: path + "@" + query + " .info", Err: err}
		}
		m.rememberInfo(fctx, path, info.Version, data)
		return &entry{Body: data, Version: info.Version, Origin: name}, nil
	})
	countResult("query", result)
	if err != nil {
		return nil, err
	}
	return answerFile(path, e, result), nil
}

// answerFile serves a kept or just fetched answer to @latest or a query.
func answerFile(path string, e *entry, result string) *protocol.File {
	version := e.Version
	if version == "" {
		// Kept by a modgate that did not keep versions beside answers.
		if info, err := modcheck.ParseInfo(e.Body, path, ""); err == nil {
			version = info.Version
		}
	}
	f := protocol.BytesFile(e.Body)
	f.Version, f.Mutable = version, true
	f.Provenance = protocol.Provenance{Stored: result != resultMiss, Origin: e.Origin, Fetched: e.Fetched}
	return f
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
	if err := m.put(ctx, key, data); err != nil {
		m.log.Warn("cannot store .info", "module", path, "version", version, "err", err)
	}
}

// put stores data under key with its size given (store.PutSized), so that
// an object store sends it in one request of known length.
func (m *Modules) put(ctx context.Context, key string, data []byte) error {
	return store.PutSized(ctx, m.cfg.Store, key, bytes.NewReader(data), int64(len(data)))
}

// fetchInfo fetches the .info of a canonical version, checks it and stores
// it under key.
func (m *Modules) fetchInfo(ctx context.Context, path, version, key string) (fetched, error) {
	ctx, origin := source.WithOrigin(ctx)
	data, err := m.cfg.Source.Info(ctx, path, version)
	if err != nil {
		return fetched{}, err
	}
	name := m.originName(origin)
	if _, err := modcheck.ParseInfo(data, path, version); err != nil {
		return fetched{}, &protocol.InvalidError{Source: name, What: path + "@" + version + " .info", Err: err}
	}
	return fetched{origin: name}, m.put(ctx, key, data)
}

// GoMod returns the go.mod of a canonical version.
func (m *Modules) GoMod(ctx context.Context, path, version string) (*protocol.File, error) {
	return m.immutable(ctx, path, version, "mod", (*Modules).fetchGoMod)
}

// fetchGoMod fetches a go.mod, checks and verifies it, and stores it under
// key.
func (m *Modules) fetchGoMod(ctx context.Context, path, version, key string) (fetched, error) {
	ctx, origin := source.WithOrigin(ctx)
	data, err := m.cfg.Source.GoMod(ctx, path, version)
	if err != nil {
		return fetched{}, err
	}
	f := fetched{origin: m.originName(origin)}
	if err := modcheck.CheckGoMod(data, path, version); err != nil {
		return fetched{}, &protocol.InvalidError{Source: f.origin, What: path + "@" + version + " .mod", Err: err}
	}
	if m.cfg.Verifier != nil {
		if f.h1, err = modcheck.HashGoMod(data); err != nil {
			return fetched{}, err
		}
		if err := m.cfg.Verifier.Verify(ctx, path, version, true, f.h1); err != nil {
			return fetched{}, fmt.Errorf("%w (go.mod from %s)", err, f.origin)
		}
	}
	return f, m.put(ctx, key, data)
}

// Zip returns the module zip of a canonical version.
func (m *Modules) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
	return m.immutable(ctx, path, version, "zip", (*Modules).fetchZip)
}

// fetchZip fetches a zip, checks and verifies it, and stores it under key.
// The zip is downloaded to a scratch file, checked there, and only then
// stored: storage never holds a zip that failed the checks, and memory use
// does not depend on the zip's size.
//
// When a verifier checks the zip, it is hashed before it is stored, and
// its .ziphash stored first, so nothing unverified is ever served. When
// nothing does, only its central directory is checked before it is served
// (modcheck.CheckZipNoHash), and it is hashed in the background
// (hasher.go).
func (m *Modules) fetchZip(ctx context.Context, path, version, key string) (fetched, error) {
	what := path + "@" + version + " .zip"
	ctx, origin := source.WithOrigin(ctx)
	body, err := m.cfg.Source.Zip(ctx, path, version)
	if err != nil {
		return fetched{}, err
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
		return fetched{}, fmt.Errorf("scratch space: %w", err)
	}
	defer os.Remove(tmp.Name())
	handedOff := false // to the hasher, which closes it
	defer func() {
		if !handedOff {
			tmp.Close()
		}
	}()
	n, err := io.Copy(tmp, body)
	if err != nil {
		return fetched{}, err
	}
	f := fetched{origin: m.originName(origin)}
	if !m.verifies(path) {
		if err := modcheck.CheckZipNoHash(tmp.Name(), path, version); err != nil {
			return fetched{}, zipCheckError(f.origin, what, err)
		}
		if m.cfg.Verifier != nil {
			// It skips path whatever the hash: called for its accounting.
			if err := m.cfg.Verifier.Verify(ctx, path, version, false, ""); err != nil {
				return fetched{}, fmt.Errorf("%w (zip from %s)", err, f.origin)
			}
		}
		if err := store.PutFile(ctx, m.cfg.Store, key, tmp.Name()); err != nil {
			return fetched{}, err
		}
		// The file stays readable through tmp, moved or removed.
		handedOff = m.hasher.add(hashJob{path: path, version: version, f: tmp, size: n})
		return f, nil
	}
	f.h1, err = modcheck.CheckZip(tmp.Name(), path, version)
	if err != nil {
		return fetched{}, zipCheckError(f.origin, what, err)
	}
	if err := m.cfg.Verifier.Verify(ctx, path, version, false, f.h1); err != nil {
		return fetched{}, fmt.Errorf("%w (zip from %s)", err, f.origin)
	}
	hashKey, err := store.VersionKey(path, version, "ziphash")
	if err != nil {
		return fetched{}, err
	}
	// The hash goes first: a zip is visible only once it is complete, and
	// by then its hash is already beside it.
	if err := m.put(ctx, hashKey, []byte(f.h1+"\n")); err != nil {
		return fetched{}, err
	}
	// A store that takes files moves the staging file into place; any
	// other reads the scratch file with its size given (store.PutSized),
	// which an object store needs to upload it without buffering.
	return f, store.PutFile(ctx, m.cfg.Store, key, tmp.Name())
}

// zipCheckError is the error of a downloaded zip that failed the checks:
// an InvalidError, which clients are shown, blaming the origin, unless the
// scratch file could not be read (too many open files, an I/O error). That
// is modgate's own failure, whose error names a file of the server: it is
// returned as is, for the log, and clients get an internal error.
func zipCheckError(origin, what string, err error) error {
	if errors.As(err, new(*fs.PathError)) {
		return err
	}
	return &protocol.InvalidError{Source: origin, What: what, Err: err}
}

// verifies reports whether the verifier checks the files of path against
// their hashes: not without a verifier, nor for a path it skips.
func (m *Modules) verifies(path string) bool {
	if m.cfg.Verifier == nil {
		return false
	}
	s, ok := m.cfg.Verifier.(skipper)
	return !ok || !s.Skips(path)
}

// fetched is what a fetch of a module file learned besides the file: who
// sent it and its h1: hash, when computed. stored reports that no fetch was
// needed after all (another flight had stored the file).
type fetched struct {
	origin, h1 string
	stored     bool
}

// fetchFunc fetches the file of path@version, checks it and stores it under
// key. The fetchers are methods, passed as method expressions: a closure
// would cost an allocation on every request, hits included.
type fetchFunc func(m *Modules, ctx context.Context, path, version, key string) (fetched, error)

// immutable serves a canonical version's file from storage, fetching it
// with fetch on a miss.
func (m *Modules) immutable(ctx context.Context, path, version, ext string, fetch fetchFunc) (*protocol.File, error) {
	key, err := store.VersionKey(path, version, ext)
	if err != nil {
		return nil, err
	}
	if f, err := m.open(ctx, key, path, version, ext, fetched{stored: true}); err == nil || !errors.Is(err, store.ErrNotExist) {
		if err == nil {
			countResult(ext, resultHit)
		}
		return f, err
	}
	mk := newMemKey(key)
	if live, err := m.neg.get(ctx, mk, m.now(), m.invalid.since(ctx, path)); live {
		countResult(ext, resultNegative)
		return nil, err
	}
	g, err := m.limit.allow(ctx)
	if err != nil {
		countResult(ext, resultRateLimited)
		return nil, err
	}
	countResult(ext, resultMiss)
	asked := m.now() // a not-found answer is as old as the question
	how, err := flight(ctx, m, key, func(fctx context.Context) (fetched, error) {
		// Another flight may have stored it between our miss and this flight.
		if _, err := m.cfg.Store.Stat(fctx, key); err == nil {
			return fetched{stored: true}, nil
		}
		if p, ok := m.cfg.Verifier.(prefetcher); ok {
			p.Prefetch(path, version)
		}
		start := time.Now()
		how, err := fetch(m, fctx, path, version, key)
		observeFetch(ext, start, err)
		m.logFetch(path, version, ext, start, err)
		return how, err
	})
	g.done(err == nil)
	if err != nil {
		if errors.Is(err, source.ErrNotFound) && m.cfg.NegativeTTL > 0 {
			m.neg.put(ctx, mk, err, asked, m.now().Add(m.cfg.NegativeTTL))
		}
		return nil, err
	}
	return m.open(ctx, key, path, version, ext, how)
}

// open opens the stored file of path@version under key, with the
// provenance how.
func (m *Modules) open(ctx context.Context, key, path, version, ext string, how fetched) (*protocol.File, error) {
	rc, info, err := m.cfg.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	f := &protocol.File{
		Content: rc,
		Size:    info.Size,
		ModTime: info.ModTime,
		ETag:    info.ETag,
		Version: version,
		Provenance: protocol.Provenance{
			Stored:  how.stored,
			Origin:  how.origin,
			Fetched: info.ModTime, // when it was stored
		},
	}
	if ext == "mod" || ext == "zip" {
		f.H1 = m.h1Func(path, version, ext, how.h1)
	}
	return f, nil
}

// h1Func returns a File.H1 for a stored go.mod or zip: h1 when the fetch
// computed it, else what storage says when asked (the zip's .ziphash, or
// the zip hashed then if it has none yet; the hash of the stored go.mod),
// so that serving a stored file reads nothing more unless someone wants
// its hash.
func (m *Modules) h1Func(path, version, ext, h1 string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if h1 != "" {
			return h1, nil
		}
		if ext == "zip" {
			data, err := m.readSmall(ctx, path, version, "ziphash", 1<<10)
			if h1 := strings.TrimSpace(string(data)); h1 != "" || err != nil {
				return h1, err
			}
			// Not hashed yet (hasher.go), or the process died before.
			return m.zipH1(ctx, path, version)
		}
		data, err := m.readSmall(ctx, path, version, "mod", 16<<20)
		if err != nil || data == nil {
			return "", err
		}
		return modcheck.HashGoMod(data)
	}
}

// readSmall reads a small stored file of path@version, at most limit
// bytes; nil when it is not stored.
func (m *Modules) readSmall(ctx context.Context, path, version, ext string, limit int64) ([]byte, error) {
	key, err := store.VersionKey(path, version, ext)
	if err != nil {
		return nil, err
	}
	rc, _, err := m.cfg.Store.Open(ctx, key)
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// List returns the canonical release and pre-release versions of path
// (Tagged) and its known pseudo-versions: the source's list merged with
// every version already stored, so that it still answers when the source
// is down. Pseudo-versions are apart, as the go command ignores them in
// lists.
//
// The answer is degraded when the source failed and the versions are the
// stored ones alone.
func (m *Modules) List(ctx context.Context, path string) (*protocol.Versions, error) {
	key, err := store.MetaKey(path, "list")
	if err != nil {
		return nil, err
	}
	q := question{kind: "list", path: path, key: key}
	e, result, srcErr := m.fresh(ctx, q, func(fctx context.Context) (*entry, error) {
		fctx, origin := source.WithOrigin(fctx)
		lines, err := m.cfg.Source.List(fctx, path)
		if err != nil {
			return nil, err
		}
		return &entry{Body: keptList(lines), Origin: m.originName(origin)}, nil
	})
	if isRateLimited(srcErr) {
		// Not asked, not failed: the client is told to come back later
		// rather than given a list that may be incomplete.
		countResult("list", result)
		return nil, srcErr
	}
	stored, err := m.storedVersions(ctx, path)
	if err != nil {
		countResult("list", result)
		return nil, err
	}
	// Without an answer from the source, the list is made of stored files.
	vs := &protocol.Versions{Provenance: protocol.Provenance{Stored: true}}
	if srcErr != nil {
		if len(stored) == 0 {
			countResult("list", result)
			return nil, srcErr
		}
		if !errors.Is(srcErr, source.ErrNotFound) {
			m.log.Warn("upstream list failed; answering with the stored versions alone", "module", path, "err", srcErr)
			vs.Degraded, result = true, resultDegraded
		}
	}
	countResult("list", result)
	seen := map[string]bool{}
	var all []protocol.Version
	add := func(v protocol.Version) {
		if !seen[v.Version] && protocol.IsCanonical(path, v.Version) {
			seen[v.Version] = true
			all = append(all, v)
		}
	}
	if e != nil {
		vs.Provenance = protocol.Provenance{Stored: result != resultMiss, Origin: e.Origin, Fetched: e.Fetched}
		for line := range strings.SplitSeq(string(e.Body), "\n") {
			if v, ok := parseListLine(line); ok {
				add(v)
			}
		}
	}
	for _, v := range stored {
		add(protocol.Version{Version: v})
	}
	vs.Tagged, vs.Pseudo = splitPseudo(all)
	return vs, nil
}

// keptList is the body of a kept list answer: the source's list lines,
// "version" or "version time", one per line. A time that is not RFC 3339
// (what the go command reads there) is dropped. Versions are not checked
// here but each time the list is read, against the rules of the path.
func keptList(lines []string) []byte {
	var b []byte
	for _, line := range lines {
		v, ok := parseListLine(line)
		if !ok {
			continue
		}
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, v.Version...)
		if _, t, ok := strings.Cut(strings.TrimSpace(line), " "); ok && !v.Time.IsZero() {
			b = append(b, ' ')
			b = append(b, strings.TrimSpace(t)...) // as the origin wrote it
		}
	}
	return b
}

// parseListLine parses one list line, "version" or "version time".
func parseListLine(line string) (protocol.Version, bool) {
	line = strings.TrimSpace(line)
	if line == "" {
		return protocol.Version{}, false
	}
	v, t, ok := strings.Cut(line, " ")
	if !ok {
		return protocol.Version{Version: v}, true
	}
	when, err := time.Parse(time.RFC3339, strings.TrimSpace(t))
	if err != nil {
		when = time.Time{}
	}
	return protocol.Version{Version: v, Time: when}, true
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
// @latest) or is down, the version the go command would pick from the list
// (protocol.PickLatest), answered with its .info. Such a computed answer
// has the list's provenance, and is Stored only when the list and the
// .info both were.
//
// The answer is degraded when it could not be computed from anything the
// source said: the list was degraded, or the version it names had to be
// replaced with the newest one whose .info is stored.
func (m *Modules) Latest(ctx context.Context, path string) (*protocol.File, error) {
	key, err := store.MetaKey(path, "latest")
	if err != nil {
		return nil, err
	}
	q := question{kind: "latest", path: path, key: key}
	e, result, latestErr := m.fresh(ctx, q, func(fctx context.Context) (*entry, error) {
		fctx, origin := source.WithOrigin(fctx)
		data, err := m.cfg.Source.Latest(fctx, path)
		if err != nil {
			return nil, err
		}
		name := m.originName(origin)
		info, err := modcheck.ParseInfo(data, path, "")
		if err != nil {
			return nil, &protocol.InvalidError{Source: name, What: path + "@latest", Err: err}
		}
		return &entry{Body: data, Version: info.Version, Origin: name}, nil
	})
	if latestErr == nil || isRateLimited(latestErr) {
		countResult("latest", result)
		if latestErr != nil {
			return nil, latestErr
		}
		return answerFile(path, e, result), nil
	}
	f, body, err := m.latestFromList(ctx, path, latestErr)
	switch {
	case err != nil:
	case f.Degraded:
		result = resultDegraded
	case errors.Is(latestErr, source.ErrNotFound):
		// The source has no @latest for a module whose versions it lists
		// (some proxies never serve @latest). Keep the answer computed
		// from its list as if the source had given it: it is served after
		// a restart without asking again, while the source is down too,
		// and it is bounded by real modules. When it goes stale, the
		// refresh asks the source's @latest again.
		m.saveAnswer(ctx, q, &entry{Fetched: m.now(), Body: body, Version: f.Version, Origin: f.Origin})
	}
	countResult("latest", result)
	return f, err
}

// latestFromList answers @latest the way the go command would from the
// list, when the source's own @latest failed with latestErr. It returns
// the answer and its body.
func (m *Modules) latestFromList(ctx context.Context, path string, latestErr error) (*protocol.File, []byte, error) {
	vs, err := m.List(ctx, path)
	if err != nil || len(vs.Tagged)+len(vs.Pseudo) == 0 {
		if errors.Is(latestErr, source.ErrNotFound) && err != nil && !errors.Is(err, source.ErrNotFound) {
			return nil, nil, err // the list failed for a reason worth reporting
		}
		return nil, nil, latestErr
	}
	best := protocol.PickLatest(vs)
	degraded := vs.Degraded
	info, err := m.Info(ctx, path, best)
	if err != nil && !isRateLimited(err) {
		// The source is down and that version's .info was never fetched:
		// answer with the best version whose .info is stored instead.
		if stored := m.storedInfos(ctx, path); len(stored) > 0 {
			m.log.Warn("@latest: answering with the newest stored version", "module", path, "wanted", best, "err", err)
			tagged, pseudo := splitPseudo(stored)
			info, err = m.Info(ctx, path, protocol.PickLatest(&protocol.Versions{Tagged: tagged, Pseudo: pseudo}))
			degraded = true
		}
	}
	if err != nil {
		return nil, nil, err
	}
	defer info.Content.Close()
	data, err := io.ReadAll(io.LimitReader(info.Content, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	f := protocol.BytesFile(data)
	f.Version, f.Mutable, f.Degraded = info.Version, true, degraded
	f.Provenance = vs.Provenance
	f.Stored = vs.Stored && info.Stored
	return f, data, nil
}

// storedInfos returns the versions of path whose .info is stored.
func (m *Modules) storedInfos(ctx context.Context, path string) []protocol.Version {
	prefix, err := store.VersionPrefix(path)
	if err != nil {
		return nil
	}
	var versions []protocol.Version
	m.cfg.Store.List(ctx, prefix, func(key string) error {
		if p, v, ext, err := store.ParseVersionKey(key); err == nil && p == path && ext == "info" && protocol.IsCanonical(path, v) {
			versions = append(versions, protocol.Version{Version: v})
		}
		return nil
	})
	return versions
}

// splitPseudo sorts versions into tagged and pseudo-versions, each
// ascending, as semver.Sort orders them.
func splitPseudo(versions []protocol.Version) (tagged, pseudo []protocol.Version) {
	for _, v := range versions {
		if module.IsPseudoVersion(v.Version) {
			pseudo = append(pseudo, v)
		} else {
			tagged = append(tagged, v)
		}
	}
	bySemver := func(a, b protocol.Version) int {
		if c := semver.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	}
	slices.SortFunc(tagged, bySemver)
	slices.SortFunc(pseudo, bySemver)
	return tagged, pseudo
}
