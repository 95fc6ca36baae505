package sumdb

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb"
)

// lookupOps is the sumdb.ClientOps of one lookup: each lookup runs its own
// x/mod Client over the shared, verified state. The Client calls
// ReadCache and WriteCache without saying for which lookup, and saves tiles
// as soon as they match the tree it is checking, which may be a forked tree
// it rejects a moment later; with one Client per lookup, what a lookup
// fetched is its own, and is stored only once its tree is accepted, whatever
// other lookups do meanwhile. The Client is cheap to make; its state is in
// storage.
type lookupOps struct {
	ctx  context.Context // the lookup's: the database is asked within it
	v    *Verifier
	file string // the lookup's cache file name

	mu       sync.Mutex
	pending  map[string][]byte // tiles saved by the Client, not yet stored
	answer   []byte            // the lookup answer, once the Client has verified it
	fetched  bool              // answer came from the database, not storage
	notFound bool              // the database has no record

	// The tree head ReadConfig last gave the Client, and its ETag: the
	// version its WriteConfig replaces.
	readLatest []byte
	readETag   string
	readDone   bool
}

func newLookupOps(ctx context.Context, v *Verifier, file string) *lookupOps {
	return &lookupOps{ctx: ctx, v: v, file: file, pending: map[string][]byte{}}
}

func (o *lookupOps) ReadRemote(path string) ([]byte, error) {
	data, err := o.v.remote.Get(o.ctx, path)
	if errors.Is(err, ErrNotFound) && strings.HasPrefix(path, "/lookup/") {
		o.mu.Lock()
		o.notFound = true
		o.mu.Unlock()
	}
	return data, err
}

func (o *lookupOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.v.db.Key), nil
	}
	if file != o.v.state.latestFile() {
		return nil, errors.New("unknown checksum database configuration file " + file)
	}
	data, etag, err := o.v.state.latestVersion(o.ctx)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.readLatest, o.readETag, o.readDone = data, etag, true
	o.mu.Unlock()
	return data, nil
}

// WriteConfig moves the stored tree head forward. The Client calls it once
// it has checked the new tree consistent with the stored one: the tree is
// then accepted, and so are the tiles this lookup fetched so far (they
// match it, or the stored tree).
//
// It is a compare-and-swap in storage, so that two lookups, in one process
// or in two sharing the storage, cannot both move the tree forward from the
// same head: the Client passes back as old the head ReadConfig gave it, and
// that version (its ETag, or none stored) is the condition of the store's
// conditional put. When another lookup moved the head since, the Client
// gets sumdb.ErrWriteConflict, reads the new head and checks against it.
func (o *lookupOps) WriteConfig(file string, old, new []byte) error {
	if file != o.v.state.latestFile() {
		return errors.New("the checksum database key is never written")
	}
	o.mu.Lock()
	read, etag, readDone := o.readLatest, o.readETag, o.readDone
	o.mu.Unlock()
	var err error
	if readDone && bytes.Equal(old, read) {
		err = o.v.state.replaceLatest(o.ctx, etag, new)
	} else {
		// Not what this lookup read (the x/mod Client does not do
		// that): compare with the stored head first.
		err = o.v.state.swapLatest(o.ctx, old, new)
	}
	if err != nil {
		return err
	}
	o.commitTiles()
	return nil
}

func (o *lookupOps) ReadCache(file string) ([]byte, error) {
	o.mu.Lock()
	data, ok := o.pending[file]
	o.mu.Unlock()
	if ok {
		return data, nil
	}
	data, err := o.v.state.read(o.ctx, file)
	if err == nil && file == o.file {
		o.mu.Lock()
		o.answer = data
		o.mu.Unlock()
	}
	return data, err
}

// WriteCache holds tiles and the lookup answer until the lookup is known to
// have succeeded (finish).
func (o *lookupOps) WriteCache(file string, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if file == o.file {
		o.answer, o.fetched = data, true
		return
	}
	if strings.HasPrefix(file, o.v.db.Name+"/tile/") {
		o.pending[file] = data
	}
}

func (o *lookupOps) Log(msg string) { o.v.log.Debug("sumdb client", "msg", msg) }

func (o *lookupOps) SecurityError(msg string) {
	o.mu.Lock()
	o.pending = map[string][]byte{} // tiles of a rejected tree: never stored
	o.mu.Unlock()
	o.v.securityError(msg)
}

// finish stores what a successful lookup verified: its tiles first, then
// the answer, so that storage never holds a lookup whose tiles are missing.
// A failed lookup's tiles are dropped.
func (o *lookupOps) finish(ok bool) {
	if !ok {
		o.mu.Lock()
		o.pending = map[string][]byte{}
		o.mu.Unlock()
		return
	}
	o.commitTiles()
	o.mu.Lock()
	answer, fetched := o.answer, o.fetched
	o.mu.Unlock()
	if fetched {
		o.put(o.file, answer)
	}
}

func (o *lookupOps) commitTiles() {
	o.mu.Lock()
	tiles := o.pending
	o.pending = map[string][]byte{}
	o.mu.Unlock()
	for file, data := range tiles {
		o.put(file, data)
	}
}

// put stores a verified file even if the lookup's caller has gone meanwhile:
// it is as good as it will ever be.
func (o *lookupOps) put(file string, data []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(o.ctx), opTimeout)
	defer cancel()
	if err := o.v.state.put(ctx, file, data); err != nil {
		o.v.log.Warn("cannot store checksum database file", "file", file, "err", err)
	}
}

var _ sumdb.ClientOps = (*lookupOps)(nil)
