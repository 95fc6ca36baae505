// Package access records how each stored module version is used: when it
// was last asked for, how many times its zip was downloaded, and where it
// was fetched from. Retention orders versions by the last access (a disk's
// atime is coarse with relatime, and an object store has none), and the
// admin API shows the counts and origins.
//
// Recording is cheap: a Recorder keeps the figures in memory (a map update
// on each answer) and writes them out in batches, one small document per
// module touched (Flush, every minute). Replicas sharing a store write the
// same documents; each write is a compare-and-swap (store.PutIf) of the
// document merged with what this process counted since its last write, so
// that no replica's counts are lost to another's.
//
// A document may name versions that are no longer stored (purged, or
// removed by retention while another replica was counting them): readers
// take the entries of the versions they find in the store and ignore the
// others, so nothing needs to remove an entry for correctness. Retention
// removes the entries of what it evicts (Forget) to keep documents small.
package access

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/store"
)

// docName is the name of a module's usage document under its meta key:
// meta/<escaped path>/@/access.
const docName = "access"

// Bounds of a usage document. A module with more stored versions than
// MaxVersions keeps the entries of the most recently used ones; a document
// larger than maxDocSize (which MaxVersions entries stay well under) is
// not read at all: a broken or hostile store must not take our memory.
const (
	MaxVersions = 4096
	maxDocSize  = 2 << 20
	// maxOrigin bounds the origin's name: it is shown in the admin API
	// and the UI, and a real one is a URL of a proxy or git server.
	maxOrigin = 512
)

// casAttempts is how many times a document is re-read and merged again
// when another process replaced it between our read and our write.
const casAttempts = 8

// Entry is what is known of one stored version's use.
type Entry struct {
	// Last is the last time the version's .info, go.mod or zip was served.
	Last time.Time `json:"last,omitzero"`
	// Downloads counts its zips served.
	Downloads int64 `json:"downloads"`
	// Origin names (without credentials) where its files were last
	// fetched from, "" when they were stored before records were kept or
	// arrived otherwise (a bundle import).
	Origin string `json:"origin,omitempty"`
	// Fetched is when they were last fetched from Origin.
	Fetched time.Time `json:"fetched,omitzero"`
}

// add merges d, counted since the last merge, into e.
func (e *Entry) add(d Entry) {
	if d.Last.After(e.Last) {
		e.Last = d.Last
	}
	e.Downloads += d.Downloads
	if d.Origin != "" && !d.Fetched.Before(e.Fetched) {
		e.Origin, e.Fetched = d.Origin, d.Fetched
	}
}

// doc is the stored form of a module's entries.
type doc struct {
	Versions map[string]Entry `json:"versions"`
}

// Key returns the storage key of path's usage document.
func Key(path string) (string, error) { return store.MetaKey(path, docName) }

// Read returns the entries of path's usage document, by version: an empty
// map when there is none. A document that cannot be read as one (too
// large, not JSON) is an error that is ErrBroken; entries that do not
// hold (a version that is not canonical for path, a negative count, an
// origin that is not a short line of text) are left out.
func Read(ctx context.Context, st store.Store, path string) (map[string]Entry, error) {
	key, err := Key(path)
	if err != nil {
		return nil, err
	}
	d, _, err := readDoc(ctx, st, key, path)
	if err != nil {
		return nil, err
	}
	return d.Versions, nil
}

// ErrBroken marks a stored document that cannot be read as a usage
// document: it is ignored by readers and replaced by the next flush.
var ErrBroken = errors.New("not a usage document")

// readDoc reads the document at key with the ETag it had, store.IfAbsent
// when there is none (and an empty document). An unreadable document is
// an error that is ErrBroken, with the ETag to replace it.
func readDoc(ctx context.Context, st store.Store, key, path string) (doc, string, error) {
	d := doc{Versions: map[string]Entry{}}
	data, info, err := store.ReadAll(ctx, st, key, maxDocSize)
	switch {
	case errors.Is(err, store.ErrNotExist):
		return d, store.IfAbsent, nil
	case errors.Is(err, store.ErrTooLarge):
		return d, info.ETag, fmt.Errorf("%w: %w", ErrBroken, err)
	case err != nil:
		return d, "", err
	}
	var raw doc
	if err := json.Unmarshal(data, &raw); err != nil {
		return d, info.ETag, fmt.Errorf("%s: %w: %v", key, ErrBroken, err)
	}
	for v, e := range raw.Versions {
		if validEntry(path, v, e) {
			e.Origin = redact.Text(e.Origin) // whoever wrote it
			d.Versions[v] = e
		}
	}
	return d, info.ETag, nil
}

// validEntry reports whether e, under version v, is an entry this package
// could have written for path.
func validEntry(path, v string, e Entry) bool {
	if module.CanonicalVersion(v) != v || module.Check(path, v) != nil || e.Downloads < 0 {
		return false
	}
	return e.Origin == "" || validOrigin(e.Origin)
}

// validOrigin reports whether s is a short line of printable text.
func validOrigin(s string) bool {
	if len(s) > maxOrigin || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// trim keeps at most MaxVersions entries, the most recently used.
func (d *doc) trim() {
	if len(d.Versions) <= MaxVersions {
		return
	}
	vs := slices.Collect(maps.Keys(d.Versions))
	slices.SortFunc(vs, func(a, b string) int {
		return cmp.Or(d.Versions[b].Last.Compare(d.Versions[a].Last), cmp.Compare(a, b))
	})
	for _, v := range vs[MaxVersions:] {
		delete(d.Versions, v)
	}
}

// update replaces path's document with change applied to it, by
// compare-and-swap: when another process replaced the document after it
// was read, it is read and changed again. A document that is not one is
// replaced as if empty; replaced reports that. change reports whether it
// changed anything: if not, nothing is written.
func update(ctx context.Context, st store.Store, path string, change func(*doc) bool) (replaced bool, err error) {
	key, err := Key(path)
	if err != nil {
		return false, err
	}
	for attempt := range casAttempts {
		if attempt > 0 {
			// The other writers are merging the same document: a short
			// random pause lets one of them finish before we read again.
			pause := time.Duration(rand.Int64N(int64(attempt) * int64(10*time.Millisecond)))
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(pause):
			}
		}
		d, etag, err := readDoc(ctx, st, key, path)
		broken := errors.Is(err, ErrBroken)
		if err != nil && !broken {
			return false, err
		}
		if !change(&d) && !broken {
			return false, nil
		}
		d.trim()
		body, err := json.Marshal(d)
		if err != nil {
			return false, err
		}
		err = store.PutIf(ctx, st, key, bytes.NewReader(body), etag)
		if errors.Is(err, store.ErrPreconditionFailed) {
			continue
		}
		return broken, err
	}
	return false, fmt.Errorf("%s: %w: replaced by others %d times in a row", key, store.ErrPreconditionFailed, casAttempts)
}

// merge adds the entries of delta, counted since the last merge, to path's
// document.
func merge(ctx context.Context, st store.Store, path string, delta map[string]Entry) (replaced bool, err error) {
	return update(ctx, st, path, func(d *doc) bool {
		for v, e := range delta {
			cur := d.Versions[v]
			cur.add(e)
			d.Versions[v] = cur
		}
		return len(delta) > 0
	})
}

// Forget removes the entries of versions from path's usage document (its
// versions were removed from the store). A document that does not exist
// stays so, and one whose entries are all gone stays as an empty document:
// deleting it could undo another process's merge, which a conditional put
// cannot be ordered with.
func Forget(ctx context.Context, st store.Store, path string, versions ...string) error {
	_, err := update(ctx, st, path, func(d *doc) bool {
		n := len(d.Versions)
		for _, v := range versions {
			delete(d.Versions, v)
		}
		return len(d.Versions) != n
	})
	return err
}
