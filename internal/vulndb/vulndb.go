// Package vulndb reads the Go vulnerability database in the layout
// vuln.go.dev publishes, from a directory or an https URL, and answers
// which advisories affect a module version.
//
// The layout (https://go.dev/security/vuln/database):
//
//	index/db.json        {"modified": "<RFC 3339>"}
//	index/modules.json   [{"path": "<module>", "vulns": [{"id", "modified", "fixed"}]}]
//	ID/<id>.json         one OSV entry per advisory
//
// An OSV entry names the affected modules (affected[].package.name, in the
// "Go" ecosystem) and, for each, SEMVER ranges: events "introduced" and
// "fixed" with versions written without the leading "v" ("0" meaning the
// first version). The whole database (some thousands of entries, a few MB
// of JSON) is read at Open and kept in memory, indexed by module path, so
// that a question costs a map lookup and never waits for the network.
// Advisories of the standard library and the toolchain (the pseudo-modules
// "stdlib" and "toolchain") are left out: a proxy never serves them.
package vulndb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/sync/errgroup"

	"github.com/modgate/modgate/internal/redact"
)

// Bounds on what is read: a database larger than this is not one.
const (
	maxDBJSON      = 64 << 10 // index/db.json
	maxModulesJSON = 64 << 20 // index/modules.json (a few MB today)
	maxEntry       = 4 << 20  // one ID/<id>.json (tens of KB today)
	maxEntries     = 200_000  // advisories (a few thousand today)
	fetchWorkers   = 8        // entries read at once from a URL
	fetchTimeout   = time.Minute
)

// Config configures Open.
type Config struct {
	// Client fetches a URL source; nil means a client with a timeout.
	Client *http.Client
	// Refresh is how often the source's index/db.json is checked for a
	// newer database; 0 means an hour.
	Refresh time.Duration
	Logger  *slog.Logger
}

// Advisory is one advisory that affects a module version.
type Advisory struct {
	ID      string
	Summary string
	// Fixed is the version that fixes the range the asked version is in,
	// "v"-prefixed; "" when no fixed version is known.
	Fixed string
}

// DB is a loaded database. Its methods are safe for concurrent use.
type DB struct {
	src    source
	log    *slog.Logger
	data   atomic.Pointer[snapshot]
	mu     sync.Mutex // serializes Refresh
	stop   context.CancelFunc
	done   chan struct{}
	closed sync.Once
}

// snapshot is one version of the database, immutable once built.
type snapshot struct {
	modified string
	entries  map[string]*entry    // by ID, with the modified time the index gave
	byModule map[string][]*affect // by module path
}

type entry struct {
	id, summary, modified string
	affects               []*affect
}

// affect is one affected[] element of an entry: the ranges of one module.
type affect struct {
	module string
	entry  *entry
	ranges [][]event
}

type event struct {
	kind    byte   // 'i' introduced, 'f' fixed, 'l' last_affected
	version string // "v"-prefixed; "" for introduced "0"
}

// Open reads the database at src, a directory or an https URL (http is
// accepted for 127.0.0.1 only, for tests), and keeps it fresh in the
// background: every cfg.Refresh, when index/db.json says it changed, it is
// read again, reusing entries whose modified time is unchanged. A failed
// refresh is logged and the data read before stays.
func Open(ctx context.Context, src string, cfg Config) (*DB, error) {
	s, err := newSource(src, cfg.Client)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Hour
	}
	db := &DB{src: s, log: cfg.Logger.With("vulndb", s.name())}
	snap, err := load(ctx, s, nil)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %s: %w", s.name(), err)
	}
	db.data.Store(snap)
	db.log.Info("vulnerability database loaded", "modified", snap.modified, "advisories", len(snap.entries), "modules", len(snap.byModule))
	bg, stop := context.WithCancel(context.Background())
	db.stop, db.done = stop, make(chan struct{})
	go db.refreshLoop(bg, cfg.Refresh)
	return db, nil
}

// Close stops the background refresh. The data stays readable.
func (db *DB) Close() {
	db.closed.Do(func() {
		db.stop()
		<-db.done
	})
}

// Source returns the database's location, without credentials.
func (db *DB) Source() string { return db.src.name() }

// Modified returns the modified time of the loaded database as its
// index/db.json gave it.
func (db *DB) Modified() string { return db.data.Load().modified }

// Len returns the number of advisories loaded.
func (db *DB) Len() int { return len(db.data.Load().entries) }

func (db *DB) refreshLoop(ctx context.Context, every time.Duration) {
	defer close(db.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := db.Refresh(ctx); err != nil && ctx.Err() == nil {
				db.log.Warn("vulnerability database refresh failed; keeping the data loaded before", "modified", db.Modified(), "err", redact.Text(err.Error()))
			}
		}
	}
}

// Refresh reads the database again if its index/db.json changed. On error
// the data loaded before stays.
func (db *DB) Refresh(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	old := db.data.Load()
	snap, err := load(ctx, db.src, old)
	if err != nil {
		return err
	}
	if snap != old {
		db.data.Store(snap)
		db.log.Info("vulnerability database updated", "modified", snap.modified, "advisories", len(snap.entries))
	}
	return nil
}

// Affecting returns the advisories whose ranges include version of module
// (a canonical version), in ID order, each once.
func (db *DB) Affecting(modulePath, version string) []Advisory {
	affs := db.data.Load().byModule[modulePath]
	if len(affs) == 0 || !semver.IsValid(version) {
		return nil
	}
	var out []Advisory
	for _, a := range affs {
		fixed, ok := a.affects(version)
		if !ok {
			continue
		}
		if n := len(out); n > 0 && out[n-1].ID == a.entry.id {
			continue // a second affected[] of the same entry
		}
		out = append(out, Advisory{ID: a.entry.id, Summary: a.entry.summary, Fixed: fixed})
	}
	return out
}

// affects reports whether version is in one of a's ranges, and the fixed
// version that ends that range.
func (a *affect) affects(version string) (fixed string, ok bool) {
	if len(a.ranges) == 0 {
		return "", true // no ranges: every version
	}
	for _, events := range a.ranges {
		// Events are sorted by version; the last one at or below version
		// says whether it is affected.
		in := false
		i := 0
		for ; i < len(events); i++ {
			e := events[i]
			c := -1
			if e.version != "" {
				c = semver.Compare(e.version, version)
			}
			if e.kind == 'l' {
				if c >= 0 {
					break // last_affected at or above: still affected
				}
				in = false
				continue
			}
			if c > 0 {
				break
			}
			in = e.kind == 'i'
		}
		if !in {
			continue
		}
		for ; i < len(events); i++ {
			if events[i].kind == 'f' {
				return events[i].version, true
			}
		}
		return "", true
	}
	return "", false
}

// load reads the database; with old, it returns old itself when db.json is
// unchanged, and reuses old's entries whose modified time is unchanged.
func load(ctx context.Context, s source, old *snapshot) (*snapshot, error) {
	var dbIndex struct {
		Modified string `json:"modified"`
	}
	if err := readJSON(ctx, s, "index/db.json", maxDBJSON, &dbIndex); err != nil {
		return nil, err
	}
	if dbIndex.Modified == "" {
		return nil, errors.New("index/db.json: no modified time")
	}
	if old != nil && old.modified == dbIndex.Modified {
		return old, nil
	}
	var mods []struct {
		Path  string `json:"path"`
		Vulns []struct {
			ID       string `json:"id"`
			Modified string `json:"modified"`
		} `json:"vulns"`
	}
	if err := readJSON(ctx, s, "index/modules.json", maxModulesJSON, &mods); err != nil {
		return nil, err
	}
	want := map[string]string{} // ID -> modified
	for _, m := range mods {
		if ignoredModule(m.Path) {
			continue
		}
		for _, v := range m.Vulns {
			if !validID(v.ID) {
				return nil, fmt.Errorf("index/modules.json: module %q: invalid advisory id %q", m.Path, v.ID)
			}
			if m, ok := want[v.ID]; !ok || v.Modified > m {
				want[v.ID] = v.Modified
			}
		}
	}
	if len(want) > maxEntries {
		return nil, fmt.Errorf("index/modules.json: %d advisories, more than the %d accepted", len(want), maxEntries)
	}
	snap := &snapshot{modified: dbIndex.Modified, entries: make(map[string]*entry, len(want))}
	var fetch []string
	for id, mod := range want {
		if old != nil {
			if e := old.entries[id]; e != nil && e.modified == mod {
				snap.entries[id] = e
				continue
			}
		}
		fetch = append(fetch, id)
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchWorkers)
	for _, id := range fetch {
		g.Go(func() error {
			e, err := readEntry(gctx, s, id)
			if err != nil {
				return err
			}
			e.modified = want[id]
			mu.Lock()
			snap.entries[id] = e
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	snap.byModule = map[string][]*affect{}
	for _, e := range snap.entries {
		for _, a := range e.affects {
			snap.byModule[a.module] = append(snap.byModule[a.module], a)
		}
	}
	for _, affs := range snap.byModule {
		sort.SliceStable(affs, func(i, j int) bool { return affs[i].entry.id < affs[j].entry.id })
	}
	return snap, nil
}

// ignoredModule reports the pseudo-modules of the Go distribution, which a
// module proxy never serves.
func ignoredModule(path string) bool { return path == "stdlib" || path == "toolchain" }

// validIDRe is what an advisory ID may look like (GO-2022-1059): it becomes
// a file name, so nothing that could leave the ID directory.
var validIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func validID(id string) bool { return validIDRe.MatchString(id) && !strings.Contains(id, "..") }

// osvEntry is the part of an OSV entry the database needs.
type osvEntry struct {
	ID        string `json:"id"`
	Summary   string `json:"summary"`
	Withdrawn string `json:"withdrawn"`
	Affected  []struct {
		Package struct {
			Name      string `json:"name"`
			Ecosystem string `json:"ecosystem"`
		} `json:"package"`
		Ranges []struct {
			Type   string `json:"type"`
			Events []struct {
				Introduced   string `json:"introduced"`
				Fixed        string `json:"fixed"`
				LastAffected string `json:"last_affected"`
			} `json:"events"`
		} `json:"ranges"`
	} `json:"affected"`
}

func readEntry(ctx context.Context, s source, id string) (*entry, error) {
	name := "ID/" + id + ".json"
	var o osvEntry
	if err := readJSON(ctx, s, name, maxEntry, &o); err != nil {
		return nil, err
	}
	if o.ID != id {
		return nil, fmt.Errorf("%s: holds advisory %q", name, o.ID)
	}
	e := &entry{id: id, summary: oneLine(o.Summary, 200)}
	if o.Withdrawn != "" {
		return e, nil // kept for its modified time, affects nothing
	}
	for _, af := range o.Affected {
		path := af.Package.Name
		if af.Package.Ecosystem != "Go" || ignoredModule(path) {
			continue
		}
		if err := module.CheckImportPath(path); err != nil {
			return nil, fmt.Errorf("%s: invalid module path %q", name, path)
		}
		a := &affect{module: path, entry: e}
		semverRanges := 0
		for _, r := range af.Ranges {
			if r.Type != "SEMVER" {
				continue
			}
			semverRanges++
			var evs []event
			for _, ev := range r.Events {
				var kind byte
				var v string
				switch {
				case ev.Introduced != "":
					kind, v = 'i', ev.Introduced
				case ev.Fixed != "":
					kind, v = 'f', ev.Fixed
				case ev.LastAffected != "":
					kind, v = 'l', ev.LastAffected
				default:
					return nil, fmt.Errorf("%s: %s: range event without a version", name, path)
				}
				if kind == 'i' && v == "0" {
					v = ""
				} else {
					v = "v" + strings.TrimPrefix(v, "v")
					if !semver.IsValid(v) {
						return nil, fmt.Errorf("%s: %s: invalid version %q in a SEMVER range", name, path, v)
					}
				}
				evs = append(evs, event{kind: kind, version: v})
			}
			sort.SliceStable(evs, func(i, j int) bool {
				vi, vj := evs[i].version, evs[j].version
				if vi == "" || vj == "" {
					return vi == "" && vj != ""
				}
				return semver.Compare(vi, vj) < 0
			})
			a.ranges = append(a.ranges, evs)
		}
		if semverRanges == 0 && len(af.Ranges) > 0 {
			continue // only ranges of other kinds (GIT): nothing to compare versions with
		}
		e.affects = append(e.affects, a)
	}
	return e, nil
}

// oneLine returns s on one line, at most max bytes.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return s
}

func readJSON(ctx context.Context, s source, name string, max int64, v any) error {
	data, err := s.read(ctx, name, max)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// source is where the database's files come from.
type source interface {
	// read returns the file at name (slash-separated, relative to the
	// database's root), failing when it is larger than max bytes.
	read(ctx context.Context, name string, max int64) ([]byte, error)
	name() string
}

func newSource(src string, client *http.Client) (source, error) {
	if !strings.Contains(src, "://") {
		if src == "" {
			return nil, errors.New("vulnerability database: no location given")
		}
		fi, err := os.Stat(src)
		if err != nil {
			return nil, fmt.Errorf("vulnerability database: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("vulnerability database %s: not a directory", src)
		}
		return dirSource(src), nil
	}
	u, err := url.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %s: invalid URL", redact.URL(src))
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		// Tests only: nothing crosses a network in clear.
	default:
		return nil, fmt.Errorf("vulnerability database %s: want a directory or an https URL", redact.URL(src))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("vulnerability database %s: a URL with a query or fragment is not a database root", redact.URL(src))
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	return &urlSource{base: u, client: client}, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type dirSource string

func (d dirSource) name() string { return string(d) }

func (d dirSource) read(_ context.Context, name string, max int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(name)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: missing", name)
		}
		return nil, err
	}
	defer f.Close()
	return readMax(f, name, max)
}

type urlSource struct {
	base   *url.URL
	client *http.Client
}

func (u *urlSource) name() string { return redact.URL(u.base.String()) }

func (u *urlSource) read(ctx context.Context, name string, max int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	target := u.base.JoinPath(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, redacted, below
		}
		return nil, fmt.Errorf("%s: %v", name, redact.Text(err.Error()))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", name, resp.Status)
	}
	return readMax(resp.Body, name, max)
}

func readMax(r io.Reader, name string, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, max)
	}
	return data, nil
}
