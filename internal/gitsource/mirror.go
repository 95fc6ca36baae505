package gitsource

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/modgate/modgate/internal/gitmirror"
)

// Bounds of what is remembered per mirror (stateFile).
const (
	maxModules  = 1024 // module paths served from one repository
	maxVersions = 8192 // module versions and the commit each was answered with
)

// stateFile is kept in each mirror's directory: the module paths served
// from the repository (so that a webhook after a restart still knows
// which cached lists to drop) and the commit each tagged version was
// answered with (so that a moved tag is noticed).
const stateFile = "modgate-gitsource.json"

// mirror is the Source's view of one gitmirror.Repo.
type mirror struct {
	s      *Source
	key    string // gitmirror.RepoKey(remote)
	remote string // the URL discovery gave

	openMu sync.Mutex
	repo   *gitmirror.Repo

	fetchMu   sync.Mutex // held during a fetch
	timeMu    sync.Mutex // guards lastFetch
	lastFetch time.Time  // by Config.Now; zero: not fetched by this process

	stateMu sync.Mutex
	state   *mirrorState // nil until loaded

	// What the rules read again and again, kept between requests: the
	// refs (until the mirror is fetched again), and what never changes,
	// commits by full hash and small files by commit and path.
	cacheMu    sync.Mutex
	snapshot   *refs
	snapshotAt time.Time // the repo's FetchedAt when snapshot was taken
	files      *lru.Cache[string, fileResult]
	commits    *lru.Cache[string, gitmirror.Commit]
}

// Bounds of the per-mirror memory.
const (
	maxCachedFiles    = 512
	maxCachedFileSize = 64 << 10 // go.mod files; bigger ones are read each time
	maxCachedCommits  = 4096
)

// mirrorState is stateFile's content.
type mirrorState struct {
	Modules []string `json:"modules"` // oldest first
	// Versions maps "path@version" to the commit answered, oldest first
	// in Order.
	Versions map[string]string `json:"versions"`
	Order    []string          `json:"order"`
}

// open opens the mirror on first use, and fetches it if it never was.
func (m *mirror) open(ctx context.Context) error {
	m.openMu.Lock()
	if m.repo == nil {
		repo, err := m.s.cfg.Mirrors.Open(ctx, m.remote)
		if err != nil {
			m.openMu.Unlock()
			return m.fetchError("opening the mirror", err)
		}
		m.repo = repo
		m.files, _ = lru.New[string, fileResult](maxCachedFiles)
		m.commits, _ = lru.New[string, gitmirror.Commit](maxCachedCommits)
	}
	repo := m.repo
	m.openMu.Unlock()
	if repo.FetchedAt().IsZero() {
		return m.fetch(ctx, "first use")
	}
	return nil
}

// fetch brings the mirror up to date unless this process fetched it less
// than FetchInterval ago. Concurrent callers wait for one fetch. A
// failure is not remembered: the next request tries again (what to
// answer meanwhile, and how long to keep an error, is the cache's call),
// and gitmirror's timeouts bound each try.
func (m *mirror) fetch(ctx context.Context, why string) error {
	m.fetchMu.Lock()
	defer m.fetchMu.Unlock()
	if last := m.lastFetchTime(); !last.IsZero() && m.s.cfg.Now().Sub(last) < m.s.cfg.FetchInterval {
		return nil
	}
	return m.fetchLocked(ctx, why)
}

// fetchLocked fetches now; m.fetchMu is held.
func (m *mirror) fetchLocked(ctx context.Context, why string) error {
	start := time.Now()
	if err := m.repo.Fetch(ctx); err != nil {
		return m.fetchError("", err)
	}
	m.timeMu.Lock()
	m.lastFetch = m.s.cfg.Now()
	m.timeMu.Unlock()
	m.s.cfg.Logger.Debug("git mirror fetched", "repo", m.key, "why", why, "duration", time.Since(start))
	return nil
}

// lastFetchTime is when this process last fetched the mirror.
func (m *mirror) lastFetchTime() time.Time {
	m.timeMu.Lock()
	defer m.timeMu.Unlock()
	return m.lastFetch
}

// refs is a snapshot of the mirror's branches and tags.
type refs struct {
	byName  map[string]string // full ref name -> commit; "HEAD" included when known
	tagsOf  map[string][]string
	hasHead bool
}

func (m *mirror) refs(ctx context.Context) (*refs, error) {
	at := m.repo.FetchedAt()
	m.cacheMu.Lock()
	if m.snapshot != nil && m.snapshotAt.Equal(at) {
		rs := m.snapshot
		m.cacheMu.Unlock()
		return rs, nil
	}
	m.cacheMu.Unlock()
	rs, err := m.loadRefs(ctx)
	if err != nil {
		return nil, err
	}
	m.cacheMu.Lock()
	m.snapshot, m.snapshotAt = rs, at
	m.cacheMu.Unlock()
	return rs, nil
}

// loadRefs reads the refs; the result is shared and never changed.
func (m *mirror) loadRefs(ctx context.Context) (*refs, error) {
	list, err := m.repo.Refs(ctx)
	if err != nil {
		return nil, m.fetchError("listing refs", err)
	}
	rs := &refs{byName: make(map[string]string, len(list)+1), tagsOf: map[string][]string{}}
	for _, r := range list {
		rs.byName[r.Name] = r.Hash
		if tag, ok := strings.CutPrefix(r.Name, "refs/tags/"); ok {
			rs.tagsOf[r.Hash] = append(rs.tagsOf[r.Hash], tag)
		}
	}
	for _, tags := range rs.tagsOf {
		slices.Sort(tags)
	}
	// A repository without commits has no HEAD to speak of; that is not
	// an error until someone asks for it.
	head, err := m.repo.HEAD(ctx)
	switch {
	case err == nil:
		if h := rs.byName[head]; h != "" {
			rs.byName["HEAD"] = h
			rs.hasHead = true
		}
	case !errors.Is(err, gitmirror.ErrUnknownRevision):
		return nil, m.fetchError("reading HEAD", err)
	}
	return rs, nil
}

// served records that path was answered from this mirror.
func (m *mirror) served(path string) {
	m.update(func(st *mirrorState) bool {
		if slices.Contains(st.Modules, path) {
			return false
		}
		st.Modules = append(st.Modules, path)
		if len(st.Modules) > maxModules {
			st.Modules = slices.Delete(st.Modules, 0, len(st.Modules)-maxModules)
		}
		return true
	})
}

// modules returns the module paths served from this mirror.
func (m *mirror) modules() []string {
	var out []string
	m.update(func(st *mirrorState) bool {
		out = slices.Clone(st.Modules)
		return false
	})
	return out
}

// answered records that path@version was answered with commit hash and
// returns the commit it was answered with before ("" if never).
func (m *mirror) answered(path, version, hash string) (before string) {
	key := path + "@" + version
	m.update(func(st *mirrorState) bool {
		before = st.Versions[key]
		if before == hash {
			return false
		}
		if before == "" {
			st.Order = append(st.Order, key)
		}
		st.Versions[key] = hash
		for len(st.Order) > maxVersions {
			delete(st.Versions, st.Order[0])
			st.Order = st.Order[1:]
		}
		return true
	})
	return before
}

// update runs f on the loaded state and saves it when f reports a change.
// The state is a convenience: a file that cannot be read starts afresh,
// one that cannot be written is logged.
func (m *mirror) update(f func(*mirrorState) bool) {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if m.repo == nil {
		return
	}
	file := filepath.Join(m.repo.Dir(), stateFile)
	if m.state == nil {
		m.state = &mirrorState{}
		if data, err := readBounded(file, 4<<20); err == nil {
			if err := json.Unmarshal(data, m.state); err != nil {
				m.s.cfg.Logger.Warn("git source: ignoring unreadable state file", "repo", m.key, "err", err)
				m.state = &mirrorState{}
			}
		}
		m.state.clean()
	}
	if !f(m.state) {
		return
	}
	data, err := json.Marshal(m.state)
	if err == nil {
		err = writeAtomic(file, data)
	}
	if err != nil {
		m.s.cfg.Logger.Warn("git source: saving state file", "repo", m.key, "err", err)
	}
}

// clean makes a state read from disk consistent and within bounds.
func (st *mirrorState) clean() {
	if st.Versions == nil {
		st.Versions = map[string]string{}
	}
	if len(st.Modules) > maxModules {
		st.Modules = st.Modules[len(st.Modules)-maxModules:]
	}
	order := st.Order[:0]
	seen := map[string]bool{}
	for _, k := range st.Order {
		if _, ok := st.Versions[k]; ok && !seen[k] {
			seen[k] = true
			order = append(order, k)
		}
	}
	for k := range st.Versions {
		if !seen[k] {
			delete(st.Versions, k)
		}
	}
	st.Order = order
	for len(st.Order) > maxVersions {
		delete(st.Versions, st.Order[0])
		st.Order = st.Order[1:]
	}
}

func readBounded(file string, max int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, errors.New("state file too large")
	}
	return data, nil
}

// writeAtomic replaces file with data, never leaving a partial file.
func writeAtomic(file string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-"+filepath.Base(file)+"-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
