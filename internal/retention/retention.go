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
// Last access. On a disk store a version's last access is the newest access
// time (atime) of its files, or their modification time where that is newer
// (a file's atime is never older than its mtime when the filesystem keeps
// atimes; with noatime it stays at the write, and the order is then by the
// time each version was stored). Linux's default relatime updates an atime
// at most once a day per file, which is the granularity of this order.
// Other stores have no access times: the order is by modification time.
package retention

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/modgate/modgate/internal/store"
)

// RecentGuard is how long after its last write or access a version is
// never removed: it may be being fetched (its files arrive one by one) or
// served right now.
const RecentGuard = 10 * time.Minute

// Version is one stored module version and what it takes.
type Version struct {
	Path    string   // module path
	Version string   // canonical version
	Keys    []string // its stored files, in lexical order
	Size    int64    // sum of the files' sizes
	// Written is the newest modification time of its files.
	Written time.Time
	// LastAccess is the newest access time of its files where the store
	// has them, never older than Written.
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
// there). ctx bounds the listing.
func Plan(ctx context.Context, st store.Store, maxSize int64, now time.Time) (Eviction, error) {
	if maxSize < 0 {
		return Eviction{}, fmt.Errorf("retention: negative size limit %d", maxSize)
	}
	versions, err := list(ctx, st, now)
	if err != nil {
		return Eviction{}, err
	}
	e := Eviction{MaxSize: maxSize, Now: now, Versions: len(versions)}
	for _, v := range versions {
		e.Total += v.Size
	}
	// Least recently used first; ties (same second, noatime) by the oldest
	// write, then by name so that the plan is deterministic.
	slices.SortFunc(versions, func(a, b Version) int {
		return cmp.Or(a.LastAccess.Compare(b.LastAccess), a.Written.Compare(b.Written),
			cmp.Compare(a.Path, b.Path), cmp.Compare(a.Version, b.Version))
	})
	over := e.Total - maxSize
	for _, v := range versions {
		if over <= 0 {
			break
		}
		if now.Sub(v.LastAccess) < RecentGuard {
			e.Recent++
			continue
		}
		e.Remove = append(e.Remove, v)
		e.Removed += v.Size
		over -= v.Size
	}
	return e, nil
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
// of the plan. A version written again since the plan (a file newer than
// the plan saw, or a new file) is left: it is in use. ctx stops it between
// files; removed is called after each version it removed, if not nil
// (progress, a cache to invalidate). It returns the first error, after
// which it removes nothing more.
func Apply(ctx context.Context, st store.Store, e Eviction, removed func(Version)) error {
	for _, v := range e.Remove {
		if err := ctx.Err(); err != nil {
			return err
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
		if removed != nil {
			removed(v)
		}
	}
	return nil
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
