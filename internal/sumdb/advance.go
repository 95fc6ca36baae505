package sumdb

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/modgate/modgate/internal/redact"
)

// advance moves the stored tree head forward to the database's latest
// signed tree, as the x/mod Client does with the trees that come with
// lookups: the tree's signature must verify with the database's key, and
// the tree must contain the stored one (or, if older, be contained in it),
// which the tiles prove. A tree that fails either is never stored; one that
// is signed but inconsistent is a security error. The stored tree head is
// what the proxy serves as latest and with every lookup.
func (v *Verifier) advance(ctx context.Context) error {
	if msg := v.SecurityProblem(); msg != "" {
		return &VerifyError{Kind: Security, DB: v.db.Name, Err: errors.New(msg)}
	}
	msg, err := v.remote.Get(ctx, "/latest")
	if err != nil {
		return err
	}
	tree, err := v.state.openTree(msg)
	if err != nil {
		return &badTileError{fmt.Sprintf("checksum database %s sent a latest tree head that does not verify with its key (%s); it was not used", v.db.Name, redact.Line(err.Error(), maxCauseInError))}
	}
	for {
		cur, curMsg, err := v.state.verifiedTree(ctx)
		if err != nil {
			return err
		}
		older, newer := tree, cur
		if tree.N > cur.N {
			older, newer = cur, tree
		}
		// The tiles are of the newer tree: read from storage when it is
		// the stored one, else from the database and kept until it is.
		r := newTileReader(ctx, v.state, v.remote)
		thr := tlog.TileHashReader(newer, r)
		h, err := tlog.TreeHash(older.N, thr)
		if err == nil && older.N == 0 && newer.N > 0 {
			// Nothing to prove against the empty tree, but the tiles of
			// the new tree's subtree roots are what clients will ask for
			// first: read (and so authenticate and keep) them now.
			_, err = thr.ReadHashes(nil)
		}
		if err != nil {
			var re *remoteError
			if errors.As(err, &re) || ctx.Err() != nil {
				return err
			}
			return &badTileError{fmt.Sprintf("checksum database %s sent tiles that do not match its latest tree (%v); nothing was stored", v.db.Name, err)}
		}
		if h != older.Hash {
			detail := fmt.Sprintf("go.sum database server misbehavior detected: its latest tree (%d records, hash %v) and the tree modgate verified before (%d records, hash %v) are not one history", tree.N, tree.Hash, cur.N, cur.Hash)
			v.securityError(detail)
			return &VerifyError{Kind: Security, DB: v.db.Name, Err: errors.New(detail)}
		}
		if tree.N <= cur.N && curMsg != nil {
			r.commit() // tiles of the stored tree
			return nil
		}
		switch err := v.state.swapLatest(ctx, curMsg, msg); {
		case errors.Is(err, sumdb.ErrWriteConflict):
			continue // another lookup moved it meanwhile: check against that
		case err != nil:
			return err
		}
		r.commit()
		return nil
	}
}
