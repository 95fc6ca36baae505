package sumdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"
)

// Proxy serves the checksum database to go commands that use modgate as
// their GOPROXY: /sumdb/<name>/supported, /lookup/M@V, /tile/... and
// /latest. It answers from what the Verifier has verified and stored, and
// asks the database only for what is missing, checking it first:
//
//   - lookups go through the Verifier, and are served with the latest
//     verified tree head;
//   - tiles are cut from stored tiles, or fetched and authenticated against
//     a verified tree (a tile beyond it first moves the tree forward), and
//     stored; data tiles are checked record by record against the hashes;
//   - latest is the verified tree head, moved forward from the database
//     after latestTTL and served as it is when the database is unreachable.
//
// So with the database out of reach, every module the Verifier stored still
// passes the go command's verification.
type Proxy struct {
	v *Verifier
	// private reports paths whose lookups must never leave the company.
	private   func(path string) bool
	latestTTL time.Duration
	log       *slog.Logger
	now       func() time.Time

	mu      sync.Mutex
	okAt    time.Time // last time the tree was brought up to the database's
	failAt  time.Time // last failed attempt, and why
	failErr error
}

// tileRefreshInterval is how often a tile beyond the verified tree may make
// the proxy ask the database for a newer tree: often enough for a client
// that knows a newer tree than modgate, seldom enough that requests for
// tiles that do not exist cannot make modgate hammer the database.
const tileRefreshInterval = 5 * time.Second

// NewProxy returns the database proxy over v's verified state. private may
// be nil.
func NewProxy(v *Verifier, private func(string) bool, latestTTL time.Duration, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.Default()
	}
	return &Proxy{v: v, private: private, latestTTL: latestTTL, log: log, now: time.Now}
}

// WriteErrorFunc writes a one-line text/plain error.
type WriteErrorFunc func(w http.ResponseWriter, r *http.Request, status int, msg string)

// statusClientClosed is nginx's code for a client that went away: nobody
// reads the answer, and it is not the database's failure.
const statusClientClosed = 499

// Handler returns the HTTP handler for the "/sumdb/" prefix.
func (p *Proxy) Handler(writeError WriteErrorFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, r, http.StatusMethodNotAllowed, "method "+quote(r.Method)+" not allowed on the checksum database proxy; use GET")
			return
		}
		name := p.v.db.Name
		rest, ok := strings.CutPrefix(r.URL.Path, "/sumdb/"+name+"/")
		if !ok {
			// The go command then reaches that database directly.
			writeError(w, r, http.StatusNotFound, fmt.Sprintf("checksum database path %s is not proxied here; this modgate proxies %s only", quote(r.URL.Path), name))
			return
		}
		switch {
		case rest == "supported":
			w.WriteHeader(http.StatusOK)
		case rest == "latest":
			p.serveLatest(w, r, writeError)
		case strings.HasPrefix(rest, "lookup/"):
			p.serveLookup(w, r, strings.TrimPrefix(rest, "lookup/"), writeError)
		case strings.HasPrefix(rest, "tile/"):
			p.serveTile(w, r, rest, writeError)
		default:
			writeError(w, r, http.StatusNotFound, fmt.Sprintf("unknown checksum database path %s; the protocol has supported, latest, lookup/<module>@<version> and tile/<height>/<level>/<index>[.p/<width>]", quote(rest)))
		}
	})
}

func (p *Proxy) serveLatest(w http.ResponseWriter, r *http.Request, writeError WriteErrorFunc) {
	ctx := r.Context()
	rerr := p.refresh(ctx, p.latestTTL, false)
	if ctx.Err() != nil {
		writeError(w, r, statusClientClosed, "request canceled")
		return
	}
	_, msg, err := p.v.state.verifiedTree(ctx)
	switch {
	case err != nil:
		writeError(w, r, http.StatusBadGateway, err.Error()+"; try again later, and tell modgate's operator if it persists")
		return
	case msg == nil && rerr != nil:
		writeError(w, r, http.StatusBadGateway, fmt.Sprintf("no verified tree head of checksum database %s yet: %v; try again later", p.v.db.Name, rerr))
		return
	case msg == nil:
		writeError(w, r, http.StatusBadGateway, fmt.Sprintf("no verified tree head of checksum database %s yet; try again later", p.v.db.Name))
		return
	case rerr != nil:
		p.log.Warn("checksum database tree not refreshed; serving the last verified tree", "err", rerr)
	}
	write(w, r, "text/plain; charset=utf-8", "no-cache, max-age=0", msg)
}

// refresh moves the verified tree forward from the database, one move at a
// time for all callers, unless it was done within maxAge. With backoff, a
// failure within maxAge is returned instead of trying again.
func (p *Proxy) refresh(ctx context.Context, maxAge time.Duration, backoff bool) error {
	now := p.now()
	p.mu.Lock()
	okAt, failAt, failErr := p.okAt, p.failAt, p.failErr
	p.mu.Unlock()
	if now.Sub(okAt) < maxAge {
		return nil
	}
	if backoff && failErr != nil && now.Sub(failAt) < maxAge {
		return failErr
	}
	// One move at a time, in the verifier's flights (so that its Close
	// waits for it), keyed by the tree head's storage key.
	st := p.v.state
	return p.v.flights.Do(ctx, st.key(st.latestFile()), func(ctx context.Context) error {
		err := p.v.advance(ctx)
		p.mu.Lock()
		if err == nil {
			p.okAt, p.failErr = p.now(), nil
		} else if ctx.Err() == nil {
			p.failAt, p.failErr = p.now(), err
		}
		p.mu.Unlock()
		return err
	})
}

func (p *Proxy) serveLookup(w http.ResponseWriter, r *http.Request, modver string, writeError WriteErrorFunc) {
	escPath, escVers, ok := strings.Cut(modver, "@")
	path, err1 := module.UnescapePath(escPath)
	vers, err2 := module.UnescapeVersion(escVers)
	if !ok || err1 != nil || err2 != nil || module.CanonicalVersion(vers) != vers {
		writeError(w, r, http.StatusBadRequest, fmt.Sprintf("invalid lookup %s: want <escaped module path>@<canonical version>", quote(modver)))
		return
	}
	// Private module names never leave the company, not even as a lookup.
	if p.v.Skips(path) || (p.private != nil && p.private(path)) {
		writeError(w, r, http.StatusForbidden, fmt.Sprintf("%s is private or excluded from the checksum database here; set GONOSUMDB=%s (or GOPRIVATE) on the client", path, path))
		return
	}
	data, err := p.v.Lookup(r.Context(), path, vers)
	if err != nil {
		var ve *VerifyError
		errors.As(err, &ve)
		switch {
		case r.Context().Err() != nil:
			writeError(w, r, statusClientClosed, "request canceled")
		case ve != nil && ve.Kind == NotInDB:
			writeError(w, r, http.StatusNotFound, err.Error())
		case ve != nil && ve.Kind == Security:
			writeError(w, r, http.StatusServiceUnavailable, err.Error())
		default:
			writeError(w, r, http.StatusBadGateway, err.Error()+"; try again later")
		}
		return
	}
	write(w, r, "text/plain; charset=utf-8", "public, max-age=31536000, immutable", data)
}

func (p *Proxy) serveTile(w http.ResponseWriter, r *http.Request, rest string, writeError WriteErrorFunc) {
	t, err := tlog.ParseTilePath(rest)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, fmt.Sprintf("invalid tile path %s: want tile/%d/<level>/<index>[.p/<width>], index in 3-digit groups", quote(rest), tileHeight))
		return
	}
	if t.H != tileHeight {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("tile %s not found: checksum database %s has tiles of height %d only", quote(rest), p.v.db.Name, tileHeight))
		return
	}
	data, err := p.tile(r.Context(), t)
	if err != nil {
		var (
			beyond *beyondTreeError
			bad    *badTileError
			ve     *VerifyError
		)
		switch {
		case r.Context().Err() != nil:
			writeError(w, r, statusClientClosed, "request canceled")
		case errors.As(err, &beyond):
			writeError(w, r, http.StatusNotFound, err.Error())
		case errors.As(err, &ve) && ve.Kind == Security:
			writeError(w, r, http.StatusServiceUnavailable, err.Error())
		case errors.As(err, &bad):
			p.log.Warn("checksum database sent a bad tile; not stored", "tile", rest, "err", err)
			writeError(w, r, http.StatusBadGateway, err.Error()+"; nothing was stored; try again later, and tell modgate's operator if it persists")
		default:
			writeError(w, r, http.StatusBadGateway, fmt.Sprintf("cannot get %s of checksum database %s: %v; try again later", rest, p.v.db.Name, err))
		}
		return
	}
	ctype := "application/octet-stream"
	if t.L < 0 {
		ctype = "text/plain; charset=utf-8"
	}
	write(w, r, ctype, "public, max-age=31536000, immutable", data)
}

// tile returns tile t, verified: from storage, or authenticated against
// the verified tree, moved forward first if t is beyond it.
func (p *Proxy) tile(ctx context.Context, t tlog.Tile) ([]byte, error) {
	st := p.v.state
	if data, err := st.tile(ctx, t); err == nil {
		return data, nil
	}
	tree, _, err := st.verifiedTree(ctx)
	if err != nil {
		return nil, err
	}
	if !covers(tree, t) {
		rerr := p.refresh(ctx, tileRefreshInterval, true)
		if tree, _, err = st.verifiedTree(ctx); err != nil {
			return nil, err
		}
		if !covers(tree, t) {
			if rerr != nil {
				return nil, rerr
			}
			return nil, &beyondTreeError{tile: t, db: p.v.db.Name, n: tree.N}
		}
	}
	if t.L < 0 {
		return fetchDataTile(ctx, st, p.v.remote, tree, t)
	}
	return fetchHashTile(ctx, st, p.v.remote, tree, t)
}

// beyondTreeError is a tile the database's latest tree does not hold.
type beyondTreeError struct {
	tile tlog.Tile
	db   string
	n    int64
}

func (e *beyondTreeError) Error() string {
	return fmt.Sprintf("%s is not in the tree of checksum database %s (%d records, the latest modgate has verified); if the database has grown since, try again in a few seconds", e.tile.Path(), e.db, e.n)
}

// quote shows a client-supplied string in an error: quoted (so that it
// stays one line) and cut.
func quote(s string) string {
	const max = 200
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return strconv.Quote(s)
}

func write(w http.ResponseWriter, r *http.Request, ctype, cacheControl string, data []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", cacheControl)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}
