package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/modgate/modgate/internal/discover"
	"github.com/modgate/modgate/internal/gitmirror"
)

// Size limits of files read from a repository, the go command's.
const (
	maxGoMod   = 16 << 20
	maxLICENSE = 16 << 20
)

// modRepo is one module path in one repository, for the duration of one
// request: the go command's codeRepo. Its fields say where the module
// lives:
//
//	path        git.corp.test/team/repo/sub/v2
//	codeRoot    git.corp.test/team/repo      (discover.Repo.Root)
//	codeDir     sub                          (discover.Repo.Subdir joined with the path below Root, without /v2)
//	pathPrefix  git.corp.test/team/repo/sub
//	pathMajor   /v2
//	pseudoMajor v2
//
// The module's go.mod is at codeDir/go.mod ("major branch": the go.mod
// says /v2) or at codeDir/v2/go.mod ("major subdirectory"); its tags are
// "sub/v2.x.y".
type modRepo struct {
	s    *Source
	m    *mirror
	repo *gitmirror.Repo

	modPath     string
	codeRoot    string
	codeDir     string
	pathPrefix  string
	pathMajor   string
	pseudoMajor string

	// Per request memory, so that the rules below, which look at the
	// same go.mod files and refs several times, run git once for each.
	rs        *refs
	files     map[string]fileResult // by "hash:name"
	list      []string
	listErr   error
	listDone  bool
	retracted func(string) bool
	// gitErr is the first failure of git itself (not a missing file or
	// revision): once set, the request fails with it whatever the rules
	// made of the missing answer.
	gitErr error
}

type fileResult struct {
	data []byte
	err  error
}

// newModRepo places modPath in the repository discovery found, as the
// go command's newCodeRepo does.
func newModRepo(s *Source, m *mirror, loc discover.Repo, modPath string) (*modRepo, error) {
	codeRoot := loc.Root
	if !hasPathPrefix(modPath, codeRoot) {
		return nil, fmt.Errorf("mismatched repo: found %s for %s", codeRoot, modPath)
	}
	pathPrefix, pathMajor, ok := module.SplitPathVersion(modPath)
	if !ok {
		return nil, fmt.Errorf("invalid module path %q", modPath)
	}
	if codeRoot == modPath {
		pathPrefix = modPath
	}
	codeDir := ""
	if codeRoot != modPath {
		if !hasPathPrefix(pathPrefix, codeRoot) {
			return nil, fmt.Errorf("repository rooted at %s cannot contain module %s", codeRoot, modPath)
		}
		codeDir = trimSlashes(pathPrefix[len(codeRoot):])
	}
	if loc.Subdir != "" {
		if err := checkSubdir(loc.Subdir); err != nil {
			return nil, fmt.Errorf("%s: invalid repository subdirectory %q: %v", modPath, loc.Subdir, err)
		}
		codeDir = path.Join(codeDir, loc.Subdir)
	}
	return &modRepo{
		s:           s,
		m:           m,
		repo:        m.repo,
		modPath:     modPath,
		codeRoot:    codeRoot,
		codeDir:     codeDir,
		pathPrefix:  pathPrefix,
		pathMajor:   pathMajor,
		pseudoMajor: module.PathMajorPrefix(pathMajor),
		files:       map[string]fileResult{},
	}, nil
}

// checkSubdir accepts a go-import subdirectory that stays inside the
// repository and that git cannot read as anything but a plain path (no
// pathspec magic, no glob).
func checkSubdir(dir string) error {
	switch {
	case dir != path.Clean(dir) || dir == "." || dir == ".." || strings.HasPrefix(dir, "../"):
		return errors.New("not a clean relative path")
	case dir[0] == '/' || dir[0] == '-' || dir[0] == ':':
		return errors.New("bad first character")
	case strings.ContainsAny(dir, "*?[\\\x00\n\r\t"):
		return errors.New("bad character")
	}
	return nil
}

// hasPathPrefix reports whether the slash-separated path s begins with the
// elements of prefix.
func hasPathPrefix(s, prefix string) bool {
	switch {
	case len(s) == len(prefix):
		return s == prefix
	case len(s) > len(prefix):
		if prefix != "" && prefix[len(prefix)-1] == '/' {
			return strings.HasPrefix(s, prefix)
		}
		return s[len(prefix)] == '/' && s[:len(prefix)] == prefix
	}
	return false
}

// ---- git access: every call of the mirror goes through these ----

// fail records a failure of git itself and returns it.
func (r *modRepo) fail(op string, err error) error {
	fe := r.m.fetchError(op, err)
	if r.gitErr == nil {
		r.gitErr = fe
	}
	return fe
}

func (r *modRepo) refs(ctx context.Context) (*refs, error) {
	if r.rs == nil {
		rs, err := r.m.refs(ctx)
		if err != nil {
			if r.gitErr == nil {
				r.gitErr = err
			}
			return nil, err
		}
		r.rs = rs
	}
	return r.rs, nil
}

// fetchOnMiss fetches the mirror, at most once per FetchInterval, after
// something was not found in it, and reports whether it did (and so
// whether looking again can help).
func (r *modRepo) fetchOnMiss(ctx context.Context, what string) bool {
	before := r.m.lastFetchTime()
	if err := r.m.fetch(ctx, "missing "+what); err != nil {
		if r.gitErr == nil {
			r.gitErr = err
		}
		return false
	}
	if r.m.lastFetchTime().Equal(before) {
		return false
	}
	// Everything learnt so far may be out of date.
	r.rs, r.list, r.listErr, r.listDone, r.retracted = nil, nil, nil, false, nil
	r.files = map[string]fileResult{}
	return true
}

// readFile returns file at commit hash; fs.ErrNotExist when there is none
// (or when git failed, which fail records).
func (r *modRepo) readFile(ctx context.Context, hash, file string, max int64) ([]byte, error) {
	key := hash + ":" + file
	if res, ok := r.files[key]; ok {
		return res.data, res.err
	}
	if res, ok := r.m.files.Get(key); ok && int64(len(res.data)) <= max {
		r.files[key] = res
		return res.data, res.err
	}
	data, err := r.repo.ReadFile(ctx, hash, file, max)
	if err != nil {
		if !isNotExist(err) {
			r.fail("reading "+file, err)
			return nil, fs.ErrNotExist
		}
		err = fs.ErrNotExist
	}
	res := fileResult{data, err}
	r.files[key] = res
	if len(data) <= maxCachedFileSize && len(hash) == 40 {
		r.m.files.Add(key, res)
	}
	return data, err
}

// ---- versions ----

// versions lists the module's versions from the repository's tags, as the
// go command's codeRepo.Versions.
func (r *modRepo) versions(ctx context.Context) ([]string, error) {
	if r.listDone {
		return r.list, r.listErr
	}
	r.list, r.listErr = r.computeVersions(ctx)
	r.listDone = true
	return r.list, r.listErr
}

func (r *modRepo) computeVersions(ctx context.Context) ([]string, error) {
	rs, err := r.refs(ctx)
	if err != nil {
		return nil, err
	}
	p := ""
	if r.codeDir != "" {
		p = r.codeDir + "/"
	}
	list, incompatible := []string{}, []string(nil)
	for name := range rs.byName {
		tag, ok := strings.CutPrefix(name, "refs/tags/")
		if !ok || !strings.HasPrefix(tag, p) {
			continue
		}
		v := tag[len(p):]
		// Only canonical tags are versions (a "v1.2" or "v1.2.3+meta" tag
		// is a revision name, resolved to a pseudo-version); tags shaped
		// like pseudo-versions are ignored.
		if v == "" || v != semver.Canonical(v) || module.IsPseudoVersion(v) {
			continue
		}
		if err := module.CheckPathMajor(v, r.pathMajor); err != nil {
			if r.codeDir == "" && r.pathMajor == "" && semver.Major(v) > "v1" {
				incompatible = append(incompatible, v)
			}
			continue
		}
		list = append(list, v)
	}
	semver.Sort(list)
	semver.Sort(incompatible)
	return r.appendIncompatible(ctx, rs, list, incompatible)
}

// appendIncompatible adds the v2+ tags of a module without a /vN suffix
// as "+incompatible" versions, where the go command would: not at all if
// the highest compatible version has a go.mod (its author moved on to
// modules), and for each major version only if that major's highest tag
// has no go.mod.
func (r *modRepo) appendIncompatible(ctx context.Context, rs *refs, list, incompatible []string) ([]string, error) {
	if len(incompatible) == 0 || r.pathMajor != "" {
		return list, nil
	}
	hasGoMod := func(v string) bool {
		hash := rs.byName["refs/tags/"+v]
		_, err := r.readFile(ctx, hash, "go.mod", maxGoMod)
		return err == nil
	}
	if len(list) > 0 && hasGoMod(list[len(list)-1]) {
		return list, r.gitErr
	}
	var lastMajor string
	var lastMajorHasGoMod bool
	for i, v := range incompatible {
		if major := semver.Major(v); major != lastMajor {
			rem := incompatible[i:]
			j := sort.Search(len(rem), func(j int) bool { return semver.Major(rem[j]) != major })
			lastMajor, lastMajorHasGoMod = major, hasGoMod(rem[j-1])
		}
		if !lastMajorHasGoMod {
			list = append(list, v+"+incompatible")
		}
	}
	return list, r.gitErr
}

// ---- resolving revisions ----

// revInfo is a commit as the rules see it.
type revInfo struct {
	hash    string
	short   string // the 12 hex digits pseudo-versions use
	time    time.Time
	version string   // a tag name when rev named that tag, else the hash; after convert, the module version
	tags    []string // every tag on the commit
	ref     string   // the ref rev was resolved through, for Origin.Ref
}

// unknownRevisionError is the go command's "unknown revision X".
type unknownRevisionError struct{ rev string }

func (e *unknownRevisionError) Error() string { return "unknown revision " + e.rev }
func (e *unknownRevisionError) Is(err error) bool {
	return err == fs.ErrNotExist
}

// revToRev turns a version into the revision it names: the tag (with the
// module's directory prefix, without +incompatible), or the commit prefix
// at the end of a pseudo-version. Anything else is a revision already.
func (r *modRepo) revToRev(rev string) string {
	if !semver.IsValid(rev) {
		return rev
	}
	if module.IsPseudoVersion(rev) {
		short, _ := module.PseudoVersionRev(rev)
		return short
	}
	rev = strings.TrimSuffix(rev, "+incompatible")
	if r.codeDir == "" {
		return rev
	}
	return r.codeDir + "/" + rev
}

// stat resolves a version or a query to the module version it means, as
// the go command's codeRepo.Stat: a canonical tag to itself, a branch,
// a hash or any other revision to the version of a tag on its commit or
// else a pseudo-version, a pseudo-version to itself once it checks out.
func (r *modRepo) stat(ctx context.Context, rev string) (*revInfo, error) {
	info, err := r.statRev(ctx, r.revToRev(rev))
	if err != nil {
		return nil, &module.ModuleError{Path: r.modPath, Err: &module.InvalidVersionError{Version: rev, Err: err}}
	}
	return r.convert(ctx, info, rev)
}

// statRev finds the commit rev names, fetching the mirror (at most once
// per FetchInterval) when it does not know rev.
func (r *modRepo) statRev(ctx context.Context, rev string) (*revInfo, error) {
	info, err := r.statLocal(ctx, rev)
	var unknown *unknownRevisionError
	if errors.As(err, &unknown) && r.fetchOnMiss(ctx, "revision") {
		info, err = r.statLocal(ctx, rev)
	}
	if err == nil && r.gitErr != nil {
		err = r.gitErr
	}
	return info, err
}

// statLocal resolves rev in the mirror as the go command's gitRepo.stat
// does: a tag, a branch, HEAD, or any commit by its hash or a prefix of
// at least 7 hex digits.
func (r *modRepo) statLocal(ctx context.Context, rev string) (*revInfo, error) {
	if !plausibleRev(rev) {
		return nil, &unknownRevisionError{rev}
	}
	rs, err := r.refs(ctx)
	if err != nil {
		return nil, err
	}
	var ref, hash string
	version := ""
	switch {
	case rs.byName["refs/tags/"+rev] != "":
		ref = "refs/tags/" + rev
		hash = rs.byName[ref]
		version = rev
	case rs.byName["refs/heads/"+rev] != "":
		ref = "refs/heads/" + rev
		hash = rs.byName[ref]
	case rev == "HEAD" && rs.hasHead:
		// The go command fetches HEAD by hash, and so does not name it.
		hash = rs.byName["HEAD"]
	case isHexRev(rev):
		// A commit by its hash names no ref, as the go command reports
		// once it has the repository.
		hash = rev
	default:
		return nil, &unknownRevisionError{rev}
	}
	c, err := r.commit(ctx, hash)
	if err != nil {
		if errors.Is(err, gitmirror.ErrUnknownRevision) {
			return nil, &unknownRevisionError{rev}
		}
		return nil, r.fail("resolving "+rev, err)
	}
	if len(c.Hash) != 40 || !isHex(c.Hash) {
		return nil, r.fail("resolving "+rev, fmt.Errorf("unexpected commit hash %q", c.Hash))
	}
	if version == "" {
		version = c.Hash
	}
	return &revInfo{
		hash:    c.Hash,
		short:   c.Hash[:12],
		time:    c.Time.UTC(),
		version: version,
		tags:    rs.tagsOf[c.Hash],
		ref:     ref,
	}, nil
}

// commit stats hash, from memory when it is a full hash seen before.
func (r *modRepo) commit(ctx context.Context, hash string) (gitmirror.Commit, error) {
	full := len(hash) == 40 && isHex(hash)
	if full {
		if c, ok := r.m.commits.Get(hash); ok {
			return c, nil
		}
	}
	c, err := r.repo.Stat(ctx, hash)
	if err == nil && full && c.Hash == hash {
		r.m.commits.Add(hash, c)
	}
	return c, err
}

// plausibleRev accepts what could name a ref or a commit and nothing git
// could read as an option or a revision expression. Revisions never reach
// git as such (only hashes do), but a bound keeps errors short.
func plausibleRev(rev string) bool {
	if rev == "" || len(rev) > 1024 || rev[0] == '-' || strings.Contains(rev, "..") || strings.Contains(rev, "@{") {
		return false
	}
	for _, c := range rev {
		if c < ' ' || c == 0x7f || strings.ContainsRune(" ~^:?*[\\", c) {
			return false
		}
	}
	return true
}

// isHexRev reports whether rev could be a commit hash or an abbreviation
// of one: 7 to 40 hex digits, as the go command accepts.
func isHexRev(rev string) bool { return len(rev) >= 7 && len(rev) <= 40 && isHex(rev) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// convert turns a commit into the module version it is, as the go
// command's codeRepo.convert: statVers is what was asked for ("" for the
// default branch's head).
func (r *modRepo) convert(ctx context.Context, info *revInfo, statVers string) (*revInfo, error) {
	// A plain tag of a module with neither a directory nor a /vN suffix
	// may be used with "+incompatible" when the tree has no go.mod (and,
	// unless asked for explicitly, no vN/go.mod for its major version).
	incompatibleOK := map[string]bool{}
	canUseIncompatible := func(v string) bool {
		if r.codeDir != "" || r.pathMajor != "" {
			return false
		}
		ok, seen := incompatibleOK[""]
		if !seen {
			_, err := r.readFile(ctx, info.hash, "go.mod", maxGoMod)
			ok = err != nil
			incompatibleOK[""] = ok
		}
		if !ok {
			return false
		}
		if v != "" && !strings.HasSuffix(statVers, "+incompatible") {
			major := semver.Major(v)
			ok, seen = incompatibleOK[major]
			if !seen {
				_, err := r.readFile(ctx, info.hash, path.Join(major, "go.mod"), maxGoMod)
				ok = err != nil
				incompatibleOK[major] = ok
			}
			if !ok {
				return false
			}
		}
		return true
	}

	// checkCanonical checks that v (canonical) is a version of this
	// module at this commit, adding +incompatible where needed, and that
	// a canonical statVers resolves to itself.
	checkCanonical := func(v string) (*revInfo, error) {
		if _, _, err := r.findDir(ctx, info.hash, v); err != nil {
			return nil, &module.ModuleError{Path: r.modPath, Err: &module.InvalidVersionError{Version: v, Err: err}}
		}
		invalidf := func(format string, args ...any) error {
			return &module.ModuleError{Path: r.modPath, Err: &module.InvalidVersionError{Version: v, Err: fmt.Errorf(format, args...)}}
		}
		if v == strings.TrimSuffix(statVers, "+incompatible") {
			v = statVers
		}
		base := strings.TrimSuffix(v, "+incompatible")
		var errIncompatible error
		if !module.MatchPathMajor(base, r.pathMajor) {
			if canUseIncompatible(base) {
				v = base + "+incompatible"
			} else if r.pathMajor != "" {
				errIncompatible = invalidf("module path includes a major version suffix, so major version must match")
			} else {
				errIncompatible = invalidf("module contains a go.mod file, so module path must match major version (%q)", path.Join(r.pathPrefix, semver.Major(v)))
			}
		} else if strings.HasSuffix(v, "+incompatible") {
			errIncompatible = invalidf("+incompatible suffix not allowed: major version %s is compatible", semver.Major(v))
		}
		if statVers != "" && statVers == module.CanonicalVersion(statVers) {
			if statBase := strings.TrimSuffix(statVers, "+incompatible"); statBase != base {
				return nil, &module.ModuleError{Path: r.modPath, Err: &module.InvalidVersionError{
					Version: statVers,
					Err:     fmt.Errorf("resolves to version %v (%s is not a tag)", v, statBase),
				}}
			}
		}
		if errIncompatible != nil {
			return nil, errIncompatible
		}
		out := *info
		out.version = v
		return &out, nil
	}

	if module.IsPseudoVersion(statVers) {
		// Cheap checks (directory, major version) before the ancestry
		// of the base tag.
		out, err := checkCanonical(statVers)
		if err != nil {
			return nil, err
		}
		if err := r.validatePseudoVersion(ctx, info, statVers); err != nil {
			return nil, err
		}
		return out, nil
	}

	tagPrefix := ""
	if r.codeDir != "" {
		tagPrefix = r.codeDir + "/"
	}
	isRetracted := r.retractedVersions(ctx)

	// tagToVersion is the canonical version a tag of this module names
	// ("" if none), and whether the tag is that version exactly.
	tagToVersion := func(tag string) (string, bool) {
		if !strings.HasPrefix(tag, tagPrefix) {
			return "", false
		}
		trimmed := tag[len(tagPrefix):]
		if module.IsPseudoVersion(tag) {
			return "", false
		}
		// semver.Canonical, not module.CanonicalVersion: a tag's
		// "+incompatible" is build metadata like any other.
		v := semver.Canonical(trimmed)
		if v == "" || !strings.HasPrefix(trimmed, v) {
			return "", false // not semver, or shortened ("v1.2")
		}
		return v, v == trimmed
	}

	// The tag that was asked for, if it is a version of this module.
	if v, exact := tagToVersion(info.version); exact {
		if out, err := checkCanonical(v); err == nil {
			return out, nil
		}
	}

	// Else a version tag on the commit (the highest usable one), or the
	// base of a pseudo-version.
	var highestCanonical, pseudoBase string
	for _, pathTag := range info.tags {
		v, exact := tagToVersion(pathTag)
		if statVers != "" && semver.Compare(v, statVers) == 0 {
			if exact {
				return checkCanonical(v)
			}
			// A non-canonical spelling of the version asked for
			// ("v1.0.0+meta"): a base for a pseudo-version at least.
			pseudoBase = v
		}
		if exact && semver.Compare(highestCanonical, v) < 0 && !isRetracted(v) {
			if module.MatchPathMajor(v, r.pathMajor) || canUseIncompatible(v) {
				highestCanonical = v
			}
		}
	}
	if highestCanonical != "" {
		return checkCanonical(highestCanonical)
	}

	// A pseudo-version based on the highest usable tag among the
	// commit's ancestors, so that it sorts above it.
	tagAllowed := func(tag string) bool {
		v, _ := tagToVersion(tag)
		if v == "" {
			return false
		}
		if !module.MatchPathMajor(v, r.pathMajor) && !canUseIncompatible(v) {
			return false
		}
		return !isRetracted(v)
	}
	if pseudoBase == "" {
		tag, err := r.recentTag(ctx, info.hash, tagPrefix, tagAllowed)
		if err != nil {
			return nil, err
		}
		if tag != "" {
			pseudoBase, _ = tagToVersion(tag)
		}
	}
	return checkCanonical(module.PseudoVersion(r.pseudoMajor, pseudoBase, info.time, info.short))
}

// recentTag returns the highest tag with prefix that allowed accepts among
// the tags on hash and its ancestors, as the go command's RecentTag.
func (r *modRepo) recentTag(ctx context.Context, hash, prefix string, allowed func(string) bool) (string, error) {
	merged, err := r.repo.TagsMerged(ctx, hash)
	if err != nil {
		return "", r.fail("listing the tags of "+hash, err)
	}
	var highest string
	for _, ref := range merged {
		tag, ok := strings.CutPrefix(ref.Name, "refs/tags/")
		if !ok || !strings.HasPrefix(tag, prefix) || !allowed(tag) {
			continue
		}
		if semtag := tag[len(prefix):]; semver.Compare(semtag, highest) > 0 {
			highest = semtag
		}
	}
	if highest == "" {
		return "", r.gitErr
	}
	return prefix + highest, r.gitErr
}

// validatePseudoVersion checks a pseudo-version someone asked for against
// the commit it names, as the go command does: the commit prefix and the
// time must be the commit's, and the base version must be a tag of this
// module on an ancestor of the commit (but not on the commit itself).
func (r *modRepo) validatePseudoVersion(ctx context.Context, info *revInfo, version string) (err error) {
	defer func() {
		if err != nil && r.gitErr == nil {
			var me *module.ModuleError
			if !errors.As(err, &me) {
				var ive *module.InvalidVersionError
				if !errors.As(err, &ive) {
					err = &module.InvalidVersionError{Version: version, Pseudo: true, Err: err}
				}
				err = &module.ModuleError{Path: r.modPath, Err: err}
			}
		}
	}()

	rev, err := module.PseudoVersionRev(version)
	if err != nil {
		return err
	}
	if rev != info.short {
		switch {
		case strings.HasPrefix(rev, info.short):
			return fmt.Errorf("revision is longer than canonical (expected %s)", info.short)
		case strings.HasPrefix(info.short, rev):
			return fmt.Errorf("revision is shorter than canonical (expected %s)", info.short)
		default:
			return fmt.Errorf("does not match short name of revision (expected %s)", info.short)
		}
	}
	t, err := module.PseudoVersionTime(version)
	if err != nil {
		return err
	}
	if !t.Equal(info.time.Truncate(time.Second)) {
		return fmt.Errorf("does not match version-control timestamp (expected %s)", info.time.UTC().Format(module.PseudoVersionTimestampFormat))
	}

	tagPrefix := ""
	if r.codeDir != "" {
		tagPrefix = r.codeDir + "/"
	}
	base, err := module.PseudoVersionBase(strings.TrimSuffix(version, "+incompatible"))
	if err != nil {
		return err
	}
	if base == "" {
		if r.pseudoMajor == "" && semver.Major(version) == "v1" {
			return fmt.Errorf("major version without preceding tag must be v0, not v1")
		}
		return nil
	}
	for _, tag := range info.tags {
		if strings.TrimPrefix(tag, tagPrefix) == base {
			return fmt.Errorf("tag (%s) found on revision %s is already canonical, so should not be replaced with a pseudo-version derived from that tag", tag, rev)
		}
	}

	rs, err := r.refs(ctx)
	if err != nil {
		return err
	}
	var candidates []string
	for name := range rs.byName {
		if tag, ok := strings.CutPrefix(name, "refs/tags/"); ok && strings.HasPrefix(tag, tagPrefix+base) {
			candidates = append(candidates, tag)
		}
	}
	sort.Strings(candidates)
	var lastTag string
	ancestorFound := false
	for _, tag := range candidates {
		if semver.Compare(strings.TrimPrefix(tag, tagPrefix), base) != 0 {
			continue
		}
		lastTag = tag
		ok, err := r.repo.IsAncestor(ctx, rs.byName["refs/tags/"+tag], info.hash)
		if err != nil {
			return r.fail("checking ancestry", err)
		}
		if ok {
			ancestorFound = true
			break
		}
	}
	if lastTag == "" {
		return fmt.Errorf("preceding tag (%s) not found", base)
	}
	if !ancestorFound {
		return fmt.Errorf("revision %s is not a descendent of preceding tag (%s)", rev, lastTag)
	}
	return nil
}

// ---- go.mod ----

// findDir finds the module's directory at commit hash: codeDir, or
// codeDir/vN for a /vN module whose go.mod lives there, checking that the
// go.mod found (if any) is for this major version, as the go command's
// findDir. It returns the go.mod's content when it read one.
func (r *modRepo) findDir(ctx context.Context, hash, version string) (dir string, gomod []byte, err error) {
	rev := r.revToRev(version) // for messages, as the go command words them

	file1 := path.Join(r.codeDir, "go.mod")
	gomod1, err1 := r.readFile(ctx, hash, file1, maxGoMod)
	if r.gitErr != nil {
		return "", nil, r.gitErr
	}
	mpath1 := modfile.ModulePath(gomod1)
	found1 := err1 == nil && (isMajor(mpath1, r.pathMajor) || r.canReplaceMismatchedVersionDueToBug(mpath1))

	var file2 string
	if r.pathMajor != "" && r.codeRoot != r.modPath && !strings.HasPrefix(r.pathMajor, ".") {
		// Either codeDir/go.mod says /vN and codeDir/vN/go.mod does not
		// exist, or codeDir/vN/go.mod exists and says /vN. Not both.
		dir2 := path.Join(r.codeDir, r.pathMajor[1:])
		file2 = path.Join(dir2, "go.mod")
		gomod2, err2 := r.readFile(ctx, hash, file2, maxGoMod)
		if r.gitErr != nil {
			return "", nil, r.gitErr
		}
		mpath2 := modfile.ModulePath(gomod2)
		found2 := err2 == nil && isMajor(mpath2, r.pathMajor)
		if found1 && found2 {
			return "", nil, fmt.Errorf("%s/%s and ...%s/go.mod both have ...%s module paths at revision %s", r.pathPrefix, file1, r.pathMajor, r.pathMajor, rev)
		}
		if found2 {
			return dir2, gomod2, nil
		}
		if err2 == nil {
			if mpath2 == "" {
				return "", nil, fmt.Errorf("%s/%s is missing module path at revision %s", r.codeRoot, file2, rev)
			}
			return "", nil, fmt.Errorf("%s/%s has non-...%s module path %q at revision %s", r.codeRoot, file2, r.pathMajor, mpath2, rev)
		}
	}

	if found1 {
		return r.codeDir, gomod1, nil
	}
	if err1 == nil {
		suffix := ""
		if file2 != "" {
			suffix = fmt.Sprintf(" (and ...%s/go.mod does not exist)", r.pathMajor)
		}
		if mpath1 == "" {
			return "", nil, fmt.Errorf("%s is missing module path%s at revision %s", file1, suffix, rev)
		}
		if r.pathMajor != "" {
			return "", nil, fmt.Errorf("%s has non-...%s module path %q%s at revision %s", file1, r.pathMajor, mpath1, suffix, rev)
		}
		if _, _, ok := module.SplitPathVersion(mpath1); !ok {
			return "", nil, fmt.Errorf("%s has malformed module path %q%s at revision %s", file1, mpath1, suffix, rev)
		}
		return "", nil, fmt.Errorf("%s has post-%s module path %q%s at revision %s", file1, semver.Major(version), mpath1, suffix, rev)
	}

	if r.codeDir == "" && (r.pathMajor == "" || strings.HasPrefix(r.pathMajor, ".")) {
		// No go.mod at the root of a v0/v1 module: the go command makes
		// one up (legacyGoMod).
		return "", nil, nil
	}
	if file2 != "" {
		return "", nil, fmt.Errorf("missing %s/go.mod and ...%s/go.mod at revision %s", r.pathPrefix, r.pathMajor, rev)
	}
	return "", nil, fmt.Errorf("missing %s/go.mod at revision %s", r.pathPrefix, rev)
}

// isMajor reports whether a go.mod's module path mpath is for the major
// version pathMajor stands for ("" means v0 or v1).
func isMajor(mpath, pathMajor string) bool {
	if mpath == "" {
		return false
	}
	_, mpathMajor, ok := module.SplitPathVersion(mpath)
	if !ok {
		return false
	}
	if pathMajor == "" {
		switch module.PathMajorPrefix(mpathMajor) {
		case "", "v0", "v1":
			return true
		}
		return false
	}
	if mpathMajor == "" {
		return false
	}
	return pathMajor[1:] == mpathMajor[1:]
}

// canReplaceMismatchedVersionDueToBug keeps an old acceptance of the go
// command: an unversioned module path served by a gopkg.in go.mod.
func (r *modRepo) canReplaceMismatchedVersionDueToBug(mpath string) bool {
	return r.pathMajor == "" && strings.HasPrefix(mpath, "gopkg.in/")
}

// legacyGoMod is the go.mod the go command makes up for a module without
// one: a module line and nothing else.
func legacyGoMod(modPath string) []byte {
	return fmt.Appendf(nil, "module %s\n", modfile.AutoQuote(modPath))
}

// goMod returns the go.mod of version at ri's commit.
func (r *modRepo) goMod(ctx context.Context, ri *revInfo, version string) ([]byte, error) {
	dir, gomod, err := r.findDir(ctx, ri.hash, version)
	if err != nil {
		return nil, err
	}
	if gomod != nil {
		return gomod, nil
	}
	data, err := r.readFile(ctx, ri.hash, path.Join(dir, "go.mod"), maxGoMod)
	if r.gitErr != nil {
		return nil, r.gitErr
	}
	if err != nil {
		return legacyGoMod(r.modPath), nil
	}
	return data, nil
}

// tagVersionCommit is the commit of a version listed from a tag.
func (r *modRepo) tagVersionCommit(ctx context.Context, v string) (*revInfo, error) {
	return r.statRev(ctx, r.revToRev(v))
}

// goModOfTag is the go.mod of a listed version.
func (r *modRepo) goModOfTag(ctx context.Context, v string) ([]byte, error) {
	ri, err := r.tagVersionCommit(ctx, v)
	if err != nil {
		return nil, err
	}
	return r.goMod(ctx, ri, v)
}

// retractedVersions reports the versions the module's latest go.mod
// retracts, as the go command's codeRepo.retractedVersions (used to keep
// retracted tags out of pseudo-version bases). Any failure means none.
func (r *modRepo) retractedVersions(ctx context.Context) func(string) bool {
	if r.retracted != nil {
		return r.retracted
	}
	none := func(string) bool { return false }
	r.retracted = none
	versions, err := r.versions(ctx)
	if err != nil {
		return none
	}
	for i, v := range versions {
		if strings.HasSuffix(v, "+incompatible") {
			versions = versions[:i]
			break
		}
	}
	if len(versions) == 0 {
		return none
	}
	highest := versions[len(versions)-1]
	for i := len(versions) - 1; i >= 0; i-- {
		if semver.Prerelease(versions[i]) == "" {
			highest = versions[i]
			break
		}
	}
	data, err := r.goModOfTag(ctx, highest)
	if err != nil {
		return none
	}
	r.retracted = retractions(data)
	return r.retracted
}

// retractions reads the retract directives of a go.mod.
func retractions(gomod []byte) func(string) bool {
	f, err := modfile.ParseLax("go.mod", gomod, nil)
	if err != nil {
		return func(string) bool { return false }
	}
	var intervals []modfile.VersionInterval
	for _, r := range f.Retract {
		intervals = append(intervals, r.VersionInterval)
	}
	return func(v string) bool {
		for _, in := range intervals {
			if semver.Compare(in.Low, v) <= 0 && semver.Compare(v, in.High) <= 0 {
				return true
			}
		}
		return false
	}
}

// ---- queries ----

// query resolves what someone asked an .info for, as `go mod download
// mod@query` does: a version prefix ("v1", "v1.2") picks the highest
// matching version; anything else is a version or a revision (and a
// non-canonical spelling of a version that is no tag falls back to the
// canonical one).
func (r *modRepo) query(ctx context.Context, q string) (*revInfo, error) {
	if isVersionPrefix(q) {
		return r.queryPrefix(ctx, q)
	}
	ri, err := r.stat(ctx, q)
	if err != nil && r.gitErr == nil {
		if c := module.CanonicalVersion(q); c != "" && c != q {
			if ri2, err2 := r.stat(ctx, c); err2 == nil || r.gitErr != nil {
				return ri2, err2
			}
		}
	}
	return ri, err
}

// isVersionPrefix reports whether q is a version with its minor or patch
// number left out, which the go command reads as "the highest such".
func isVersionPrefix(q string) bool {
	return semver.IsValid(q) && strings.Count(q, ".") < 2 && !strings.ContainsAny(q, "-+")
}

// queryPrefix picks the highest version v of the list with prefix q+"."
// and not below q, leaving out retracted versions, as the go command's
// query for "v1.2" does.
func (r *modRepo) queryPrefix(ctx context.Context, q string) (*revInfo, error) {
	list, err := r.versions(ctx)
	if err != nil {
		return nil, err
	}
	retracted, err := r.latestRetractions(ctx, list)
	if err != nil {
		return nil, err
	}
	allowed := func(v string) bool {
		return strings.HasPrefix(v, q+".") && semver.Compare(v, q) >= 0 && !retracted(v)
	}
	preferIncompatible := module.CheckPathMajor(q, r.pathMajor) != nil
	v, err := r.pick(ctx, list, allowed, preferIncompatible)
	if err != nil {
		return nil, err
	}
	if v == "" {
		return nil, fmt.Errorf("module %s: no matching versions for query %q", r.modPath, q)
	}
	return r.stat(ctx, v)
}

// latest is the go command's answer to mod@latest from a repository: the
// highest release, else the highest pre-release, leaving out retracted
// versions and, when the highest compatible version has a go.mod, every
// +incompatible one; else the version of the default branch's head.
func (r *modRepo) latest(ctx context.Context) (*revInfo, error) {
	list, err := r.versions(ctx)
	if err != nil {
		return nil, err
	}
	retracted, err := r.latestRetractions(ctx, list)
	if err != nil {
		return nil, err
	}
	v, err := r.pick(ctx, list, func(v string) bool { return !retracted(v) }, false)
	if err != nil {
		return nil, err
	}
	if v != "" {
		return r.stat(ctx, v)
	}
	return r.head(ctx)
}

// latestRetractions reports the versions retracted by the go.mod of the
// version that would be latest if nothing were retracted, where the go
// command reads retractions from.
func (r *modRepo) latestRetractions(ctx context.Context, list []string) (func(string) bool, error) {
	none := func(string) bool { return false }
	v, err := r.pick(ctx, list, nil, false)
	if err != nil || v == "" {
		return none, err
	}
	data, err := r.goModOfTag(ctx, v)
	if r.gitErr != nil {
		return nil, r.gitErr
	}
	if err != nil {
		return none, nil
	}
	return retractions(data), nil
}

// pick chooses from list (sorted, +incompatible versions last) as the go
// command's version queries do: among the versions allowed accepts (all
// when nil), the highest release, else the highest pre-release; the
// +incompatible ones only when preferIncompatible or when the highest
// allowed compatible version has no go.mod of its own.
func (r *modRepo) pick(ctx context.Context, list []string, allowed func(string) bool, preferIncompatible bool) (string, error) {
	var release, prerelease, lastCompatible string
	needIncompatible := preferIncompatible
	for _, v := range list {
		if allowed != nil && !allowed(v) {
			continue
		}
		if !needIncompatible {
			if !strings.HasSuffix(v, "+incompatible") {
				lastCompatible = v
			} else if lastCompatible != "" {
				gomod, err := r.goModOfTag(ctx, lastCompatible)
				if err != nil {
					return "", err
				}
				if string(gomod) != string(legacyGoMod(r.modPath)) {
					break // the author moved to modules: no +incompatible beyond
				}
				needIncompatible = true
			}
		}
		if semver.Prerelease(v) != "" {
			prerelease = v
		} else {
			release = v
		}
	}
	if release != "" {
		return release, nil
	}
	return prerelease, nil
}

// head is the version of the default branch's head commit, as the go
// command's codeRepo.Latest.
func (r *modRepo) head(ctx context.Context) (*revInfo, error) {
	rs, err := r.refs(ctx)
	if err != nil {
		return nil, err
	}
	if !rs.hasHead {
		return nil, &module.ModuleError{Path: r.modPath, Err: errors.New("no commits")}
	}
	info, err := r.statLocal(ctx, rs.byName["HEAD"])
	if err != nil {
		if r.gitErr != nil {
			return nil, r.gitErr
		}
		return nil, err
	}
	info.ref = "HEAD"
	return r.convert(ctx, info, "")
}

// checkVersion resolves a canonical version for GoMod and Zip, checking it
// as a request for its .info would: a version that does not resolve to
// itself is not one of this module's.
func (r *modRepo) checkVersion(ctx context.Context, version string) (*revInfo, error) {
	if version == "" || version != module.CanonicalVersion(version) {
		return nil, &module.ModuleError{Path: r.modPath, Err: &module.InvalidVersionError{Version: version, Err: errors.New("not a canonical version")}}
	}
	ri, err := r.stat(ctx, version)
	if err != nil {
		return nil, err
	}
	if ri.version != version {
		return nil, &module.ModuleError{Path: r.modPath, Err: &module.InvalidVersionError{Version: version, Err: fmt.Errorf("resolves to version %s", ri.version)}}
	}
	return ri, nil
}

// noteVersion remembers the commit a tagged version was answered with,
// and warns when a tag moved since: whoever stored the first answer
// keeps serving it, and someone should know the tag changed.
func (r *modRepo) noteVersion(ri *revInfo) {
	if module.IsPseudoVersion(ri.version) {
		return // the name holds the commit
	}
	if before := r.m.answered(r.modPath, ri.version, ri.hash); before != "" && before != ri.hash {
		r.s.cfg.Logger.Warn("git tag moved: the version now names another commit; the first answer stays what is served",
			"module", r.modPath, "version", ri.version, "repo", r.m.key, "was", before, "now", ri.hash)
	}
}
