// Package retention keeps a module store under a size limit by removing
// whole module versions, least recently used first.
//
// Plan decides, Apply removes: "modgate gc" prints a plan (and applies it
// unless --dry-run), and a server can run the same two steps in the
// background for --max-storage.
//
// A version is the unit: its .info, .mod, .zip and .ziphash go together, so
// a removal never leaves a zip without its go.mod or the reverse. A removed
// version is fetched again on its next request, like a purge.
//
// Last access. A version's last access is the newest of: the time its
// usage record says (package access: what serving modgates counted, on any
// store), the access times (atime) of its files on a disk store, and their
// modification time (when it was stored). Records are what makes the order
// right on an object store, which keeps no access times, and on a disk
// mounted noatime or with Linux's default relatime (an atime updated at
// most once a day). A store written before records were kept, or by
// "modgate gc" alone, is ordered by the file times.
//
// Never evicted: a version written or accessed within RecentGuard (it may
// be being fetched, its files arriving one by one, or served right now),
// whether the access is in its record, its files' times, or only in the
// memory of the serving process that plans (Options.Recent).
package retention

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/modgate/modgate/internal/access"
	"github.com/modgate/modgate/internal/store"
)

// RecentGuard is how long after its last write or access a version is
// never removed: it may be being fetched (its files arrive one by one) or
// served right now. It is the window of access.Recorder.Recent.
const RecentGuard = access.RecentWindow

// Options are what a serving modgate adds to a plan.
type Options struct {
	// Recent, when not nil, reports whether this process served a version
	// within RecentGuard, including accesses not yet in its usage record
	// (access.Recorder.Recent). Such a version is never removed.
	Recent func(path, version string) bool
}

// Version is one stored module version and what it takes.
type Version struct {
	Path    string   // module path
	Version string   // canonical version
	Keys    []string // its stored files, in lexical order
	Size    int64    // sum of the files' sizes
	// Written is the newest modification time of its files.
	Written time.Time
	// LastAccess is the newest of its usage record's last access, its
	// files' access times where the store has them, and Written.
	LastAccess time.Time
}

// String is "path@version".
func (v Version) String() string { return v.Path + "@" + v.Version }

// Eviction is a plan: which versions to remove to bring a store under a
// size limit.
type Eviction struct {
	MaxSize  int64     // the limit
	Now      time.Time // when the plan was made
	Versions int       // stored versions
	Total    int64     // bytes of all stored versions
	// Remove are the versions to remove, least recently used first.
	Remove []Version
	// Removed is the sum of the sizes of Remove.
	Removed int64
	// Recent counts the versions kept only because RecentGuard protects
	// them although the store is over the limit.
	Recent int

	opts Options
}

// After is the total once the plan is applied.
func (e Eviction) After() int64 { return e.Total - e.Removed }

// Fits reports whether the store is under the limit once the plan is
// applied; it is not when recent versions alone exceed it.
func (e Eviction) Fits() bool { return e.After() <= e.MaxSize }

// Plan lists every stored module version of st and chooses, least recently
// used first, the versions to remove so that the total is at most maxSize,
// leaving out those written or accessed within RecentGuard of now. Files
// under "mod/" that are not module files are ignored (nothing else writes
// there). ctx bounds the listing and the reads.
//
// Usage records are read only when the store is over the limit, and only
// those of the modules whose versions come up as candidates: a record can
// only make a version more recent than its files say, so the versions are
// taken in the order of their files' times, and one whose module's record
// makes it more recent goes back in line. A store slightly over its limit
// costs a few reads, not one per module (a request each on S3).
func Plan(ctx context.Context, st store.Store, maxSize int64, now time.Time, opts Options) (Eviction, error) {
	if maxSize < 0 {
		return Eviction{}, fmt.Errorf("retention: negative size limit %d", maxSize)
	}
	versions, err := list(ctx, st, now)
	if err != nil {
		return Eviction{}, err
	}
	e := Eviction{MaxSize: maxSize, Now: now, Versions: len(versions), opts: opts}
	byModule := map[string][]int{}
	q := &queue{versions: versions}
	for i, v := range versions {
		e.Total += v.Size
		byModule[v.Path] = append(byModule[v.Path], i)
		q.items = append(q.items, candidate{v.LastAccess, i})
	}
	heap.Init(q)
	read := map[string]bool{} // modules whose record was read
	for over := e.Total - maxSize; over > 0 && q.Len() > 0; {
		c := heap.Pop(q).(candidate)
		v := &versions[c.i]
		if !read[v.Path] {
			read[v.Path] = true
			if err := addRecord(ctx, st, versions, byModule[v.Path], now); err != nil {
				return Eviction{}, err
			}
		}
		if v.LastAccess.After(c.last) {
			heap.Push(q, candidate{v.LastAccess, c.i}) // more recent than it looked
			continue
		}
		if now.Sub(v.LastAccess) < RecentGuard || (opts.Recent != nil && opts.Recent(v.Path, v.Version)) {
			e.Recent++
			continue
		}
		e.Remove = append(e.Remove, *v)
		e.Removed += v.Size
		over -= v.Size
	}
	return e, nil
}

// addRecord raises the LastAccess of the versions at indexes, all of one
// module, to what the module's usage record says. A record that is not
// one is ignored (the file times stand); failing to read one fails the
// plan, which could otherwise remove versions in use.
func addRecord(ctx context.Context, st store.Store, versions []Version, indexes []int, now time.Time) error {
	path := versions[indexes[0]].Path
	entries, err := access.Read(ctx, st, path)
	if errors.Is(err, access.ErrBroken) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retention: reading the usage record of %s: %w", path, err)
	}
	for _, i := range indexes {
		v := &versions[i]
		// A time after now (another replica's clock ahead) would protect
		// the version for as long: it is not taken.
		if last := entries[v.Version].Last; last.After(v.LastAccess) && !last.After(now) {
			v.LastAccess = last
		}
	}
	return nil
}

// candidate is a version in line for removal, with the last access it had
// when it was put in line.
type candidate struct {
	last time.Time
	i    int // in queue.versions
}

// queue orders candidates least recently used first; ties (same second,
// noatime) by the oldest write, then by name, so that the plan is
// deterministic.
type queue struct {
	items    []candidate
	versions []Version
}

func (q *queue) Len() int { return len(q.items) }
func (q *queue) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	va, vb := &q.versions[a.i], &q.versions[b.i]
	return cmp.Or(a.last.Compare(b.last), va.Written.Compare(vb.Written),
		cmp.Compare(va.Path, vb.Path), cmp.Compare(va.Version, vb.Version)) < 0
}
func (q *queue) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *queue) Push(x any)    { q.items = append(q.items, x.(candidate)) }
func (q *queue) Pop() any {
	c := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return c
}

// list returns every module version stored in st, with its files.
func list(ctx context.Context, st store.Store, now time.Time) ([]Version, error) {
	atimes := accessTimes(st)
	byID := map[string]int{}
	var versions []Version
	err := store.ListInfo(ctx, st, "mod/", func(key string, info store.Info) error {
		path, version, _, err := store.ParseVersionKey(key)
		if err != nil {
			return nil // not a module file; not ours to remove
		}
		id := path + "@" + version
		i, ok := byID[id]
		if !ok {
			i = len(versions)
			byID[id] = i
			versions = append(versions, Version{Path: path, Version: version})
		}
		v := &versions[i]
		v.Keys = append(v.Keys, key)
		v.Size += info.Size
		if info.ModTime.After(v.Written) {
			v.Written = info.ModTime
		}
		last := info.ModTime
		if atimes != nil {
			// An access time after now (a clock set back) would protect
			// the version for as long: it is not taken.
			if at, ok := atimes(key); ok && at.After(last) && !at.After(now) {
				last = at
			}
		}
		if last.After(v.LastAccess) {
			v.LastAccess = last
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retention: listing the store: %w", err)
	}
	return versions, nil
}

// Apply removes the versions of e from st, all files of each, in the order
// of the plan, then their entries from the modules' usage records. A
// version in use since the plan is left: written again (a file newer than
// the plan saw, or a new file), accessed according to its usage record,
// or Recent in this process. On a disk store the directories a removal
// leaves empty go too. ctx stops it between versions; removed is called
// after each version it removed, if not nil (progress, a cache to
// invalidate). It returns the first error, after which it removes nothing
// more.
func Apply(ctx context.Context, st store.Store, e Eviction, removed func(Version)) error {
	records := map[string]map[string]access.Entry{} // read again, by module
	gone := map[string][]string{}                   // removed versions, by module
	var paths []string                              // of gone, in order
	defer func() {
		// Readers ignore the entries of versions not stored: a failure
		// here costs only a few bytes until the module's next removal.
		for _, path := range paths {
			access.Forget(context.WithoutCancel(ctx), st, path, gone[path]...)
		}
	}()
	for _, v := range e.Remove {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.opts.Recent != nil && e.opts.Recent(v.Path, v.Version) {
			continue
		}
		entries, ok := records[v.Path]
		if !ok {
			var err error
			entries, err = access.Read(ctx, st, v.Path)
			if err != nil && !errors.Is(err, access.ErrBroken) {
				return fmt.Errorf("retention: reading the usage record of %s: %w", v.Path, err)
			}
			records[v.Path] = entries
		}
		if entries[v.Version].Last.After(v.LastAccess) {
			continue
		}
		changed, err := changedSince(ctx, st, v)
		if err != nil {
			return err
		}
		if changed {
			continue
		}
		for _, key := range v.Keys {
			if err := st.Delete(ctx, key); err != nil && !errors.Is(err, store.ErrNotExist) {
				return fmt.Errorf("retention: removing %s: %w", v, err)
			}
		}
		if len(v.Keys) > 0 {
			removeEmptyDirs(st, v.Keys[0])
		}
		if gone[v.Path] == nil {
			paths = append(paths, v.Path)
		}
		gone[v.Path] = append(gone[v.Path], v.Version)
		if removed != nil {
			removed(v)
		}
	}
	return nil
}

// removeEmptyDirs removes, on a disk store, the directory of key and its
// parents that are left empty, up to the store's top directories ("mod").
// A directory that is not empty, or gone, ends it: its parents are not
// empty either, or someone else is at it. A Put that finds a directory
// gone places it again, with its file already inside (store.Disk).
func removeEmptyDirs(st store.Store, key string) {
	d, ok := st.(*store.Disk)
	if !ok {
		return
	}
	root := d.Root()
	dir := filepath.Dir(filepath.Join(root, filepath.FromSlash(key)))
	for filepath.Dir(dir) != root && len(dir) > len(root) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// changedSince reports whether v has been written since it was listed.
func changedSince(ctx context.Context, st store.Store, v Version) (bool, error) {
	for _, ext := range []string{"info", "mod", "zip", "ziphash"} {
		key, err := store.VersionKey(v.Path, v.Version, ext)
		if err != nil {
			return false, err
		}
		info, err := st.Stat(ctx, key)
		if errors.Is(err, store.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("retention: checking %s: %w", v, err)
		}
		if info.ModTime.After(v.Written) || !slices.Contains(v.Keys, key) {
			return true, nil
		}
	}
	return false, nil
}
