package sumdb

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// A tile from the database is believed only once it is authenticated
// against a tree that modgate accepted, with tlog.TileHashReader: the tiles
// holding the tree's subtree roots must hash to the signed tree hash, and
// every other tile to the hash its parent tile holds for it. Only then is it
// stored; storage therefore holds nothing a later client could fail on
// with "downloaded inconsistent tile".
//
// Which tiles get stored matters when the database is out of reach: the
// proxy answers every lookup with the stored tree (state.answer), and a
// client checks a record against it with the record's tile and its
// parents, and the tree's own subtree-root tiles. The verifier stored
// exactly those, at the width they had in the tree of that time, when it
// checked the record; and every time the stored tree moves forward, the
// consistency proof reads the tiles at the old tree's edge at their new
// width, which are the only tiles whose width changes. So the tiles a client
// needs are stored, or cut from a wider stored tile (state.tile).

// tileReader reads the tiles of one tree for tlog.TileHashReader: from
// storage when it has them, else from the database. Tiles from the database
// are kept once TileHashReader has authenticated them (SaveTiles), and
// written by commit, when the caller knows that the tree is accepted.
type tileReader struct {
	ctx    context.Context
	state  *state
	remote *Remote

	mu      sync.Mutex
	fetched map[tlog.Tile]bool   // came from the database
	saved   map[tlog.Tile][]byte // fetched and authenticated
}

func newTileReader(ctx context.Context, st *state, remote *Remote) *tileReader {
	return &tileReader{ctx: ctx, state: st, remote: remote, fetched: map[tlog.Tile]bool{}, saved: map[tlog.Tile][]byte{}}
}

func (r *tileReader) Height() int { return tileHeight }

// ReadTiles reads the tiles in parallel, as the x/mod Client does: a cold
// check asks the database for a handful of them.
func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	errs := make([]error, len(tiles))
	var wg sync.WaitGroup
	for i, t := range tiles {
		wg.Go(func() { data[i], errs[i] = r.readTile(t) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}

func (r *tileReader) readTile(t tlog.Tile) ([]byte, error) {
	if data, err := r.state.tile(r.ctx, t); err == nil {
		return data, nil
	}
	data, err := r.remote.Get(r.ctx, "/"+t.Path())
	if errors.Is(err, ErrNotFound) && t.W < 1<<uint(t.H) {
		// A database may serve only the complete tile once a partial one
		// has filled up; the partial tile is its prefix (the go command
		// does the same).
		full := t
		full.W = 1 << uint(t.H)
		if fdata, ferr := r.remote.Get(r.ctx, "/"+full.Path()); ferr == nil && len(fdata) == full.W*tlog.HashSize {
			data, err = fdata[:t.W*tlog.HashSize], nil
		}
	}
	if err != nil {
		return nil, err
	}
	if len(data) != t.W*tlog.HashSize {
		return nil, &badTileError{fmt.Sprintf("the database sent %d bytes for %s, want %d", len(data), t.Path(), t.W*tlog.HashSize)}
	}
	r.mu.Lock()
	r.fetched[t] = true
	r.mu.Unlock()
	return data, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range tiles {
		if r.fetched[t] {
			r.saved[t] = data[i]
		}
	}
}

// commit stores the authenticated tiles; call it once their tree is
// accepted. A tile that cannot be stored is fetched again next time.
func (r *tileReader) commit() {
	r.mu.Lock()
	saved := r.saved
	r.saved = map[tlog.Tile][]byte{}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), opTimeout)
	defer cancel()
	for t, data := range saved {
		if err := r.state.putTile(ctx, t, data); err != nil {
			return
		}
	}
}

// badTileError is tile data from the database that does not match its
// signed tree: not a failure to reach it, and never stored.
type badTileError struct{ msg string }

func (e *badTileError) Error() string { return e.msg }

// fetchHashTile returns hash tile t of tree, which must be accepted and
// contain t, computed from tiles read from storage or fetched from the
// database and authenticated against tree; what was fetched is stored.
func fetchHashTile(ctx context.Context, st *state, remote *Remote, tree tlog.Tree, t tlog.Tile) ([]byte, error) {
	r := newTileReader(ctx, st, remote)
	data, err := tlog.ReadTileData(t, tlog.TileHashReader(tree, r))
	if err != nil {
		var re *remoteError
		if errors.As(err, &re) || ctx.Err() != nil {
			return nil, err
		}
		// TileHashReader's "downloaded inconsistent tile", or a tile of
		// the wrong size.
		return nil, &badTileError{fmt.Sprintf("checksum database %s sent tiles for %s that do not match its signed tree of %d records (%v)", st.db.Name, t.Path(), tree.N, err)}
	}
	// t itself is cut from authenticated tiles: keep it too, so that the
	// next client asking for it is answered by one read.
	r.mu.Lock()
	r.saved[t] = data
	r.mu.Unlock()
	r.commit()
	return data, nil
}

// fetchDataTile returns data tile t (level -1: the records themselves) of
// tree, fetched and checked record by record against the authenticated
// hashes of level 0 (tlog.RecordHash), then stored.
func fetchDataTile(ctx context.Context, st *state, remote *Remote, tree tlog.Tree, t tlog.Tile) ([]byte, error) {
	ht := t
	ht.L = 0
	hashes, err := st.tile(ctx, ht)
	if err != nil {
		if hashes, err = fetchHashTile(ctx, st, remote, tree, ht); err != nil {
			return nil, err
		}
	}
	data, err := remote.Get(ctx, "/"+t.Path())
	if errors.Is(err, ErrNotFound) && t.W < 1<<uint(t.H) {
		full := t
		full.W = 1 << uint(t.H)
		if fdata, ferr := remote.Get(ctx, "/"+full.Path()); ferr == nil {
			if cut, ok := tilePrefix(t, full.W, fdata); ok {
				data, err = cut, nil
			}
		}
	}
	if err != nil {
		return nil, err
	}
	recs, err := splitDataTile(data, t.W)
	if err != nil {
		return nil, &badTileError{fmt.Sprintf("checksum database %s sent a malformed data tile %s (%v)", st.db.Name, t.Path(), err)}
	}
	for i, text := range recs {
		var want tlog.Hash
		copy(want[:], hashes[i*tlog.HashSize:])
		if tlog.RecordHash(text) != want {
			return nil, &badTileError{fmt.Sprintf("checksum database %s sent data tile %s whose record %d does not match its signed tree", st.db.Name, t.Path(), t.N<<uint(t.H)+int64(i))}
		}
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	st.putTile(pctx, t, data)
	return data, nil
}

// covers reports whether tree holds every entry of tile t (for a data
// tile: every record).
func covers(tree tlog.Tree, t tlog.Tile) bool {
	level := max(t.L, 0)
	shift := level * t.H
	if t.N < 0 || t.W < 1 || shift >= 63 {
		return false
	}
	limit := tree.N >> uint(shift) // entries of that level in the tree
	w := int64(t.W)
	return limit >= w && t.N <= (limit-w)>>uint(t.H)
}
