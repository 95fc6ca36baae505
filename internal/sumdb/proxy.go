package sumdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/singleflight"

	"github.com/modgate/modgate/internal/store"
)

// Proxy serves the checksum database to go commands that use modgate as
// their GOPROXY: /sumdb/<name>/supported, /lookup/M@V, /tile/... and
// /latest. Lookups go through the Verifier, so they are checked against
// the tree before they are served and stored; tiles are immutable and kept
// forever; latest is kept for a short TTL and served stale when the
// database is unreachable.
type Proxy struct {
	v      *Verifier
	remote *Remote
	store  store.Store
	// private reports paths whose lookups must never leave the company.
	private   func(path string) bool
	latestTTL time.Duration
	log       *slog.Logger
	now       func() time.Time

	latestFlight singleflight.Group // one refresh of latest at a time
}

// NewProxy returns the database proxy. private may be nil.
func NewProxy(v *Verifier, remote *Remote, st store.Store, private func(string) bool, latestTTL time.Duration, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.Default()
	}
	return &Proxy{v: v, remote: remote, store: st, private: private, latestTTL: latestTTL, log: log, now: time.Now}
}

// WriteErrorFunc writes a one-line text/plain error.
type WriteErrorFunc func(w http.ResponseWriter, r *http.Request, status int, msg string)

// Handler returns the HTTP handler for the "/sumdb/" prefix.
func (p *Proxy) Handler(writeError WriteErrorFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/sumdb/"+p.v.db.Name+"/")
		if !ok {
			writeError(w, r, http.StatusNotFound, fmt.Sprintf("checksum database not proxied here; this modgate proxies %s", p.v.db.Name))
			return
		}
		ctx := r.Context()
		switch {
		case rest == "supported":
			w.WriteHeader(http.StatusOK)
		case rest == "latest":
			data, err := p.latest(ctx)
			if err != nil {
				writeError(w, r, http.StatusBadGateway, err.Error()+"; try again later")
				return
			}
			write(w, r, "text/plain; charset=utf-8", "no-cache, max-age=0", data)
		case strings.HasPrefix(rest, "lookup/"):
			p.serveLookup(w, r, strings.TrimPrefix(rest, "lookup/"), writeError)
		case strings.HasPrefix(rest, "tile/"):
			p.serveTile(w, r, rest, writeError)
		default:
			writeError(w, r, http.StatusNotFound, "unknown checksum database path "+rest)
		}
	})
}

func (p *Proxy) serveLookup(w http.ResponseWriter, r *http.Request, modver string, writeError WriteErrorFunc) {
	escPath, escVers, ok := strings.Cut(modver, "@")
	path, err1 := module.UnescapePath(escPath)
	vers, err2 := module.UnescapeVersion(escVers)
	if !ok || err1 != nil || err2 != nil || module.CanonicalVersion(vers) != vers {
		writeError(w, r, http.StatusBadRequest, fmt.Sprintf("invalid lookup %q: want <escaped module path>@<canonical version>", modver))
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
		if errors.As(err, &ve) && ve.Kind == NotInDB {
			writeError(w, r, http.StatusNotFound, err.Error())
			return
		}
		writeError(w, r, http.StatusBadGateway, err.Error()+"; try again later")
		return
	}
	write(w, r, "text/plain; charset=utf-8", "public, max-age=31536000, immutable", data)
}

func (p *Proxy) serveTile(w http.ResponseWriter, r *http.Request, rest string, writeError WriteErrorFunc) {
	tile, err := tlog.ParseTilePath(rest)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, fmt.Sprintf("invalid tile path %q", rest))
		return
	}
	// Served tiles are kept apart from the verifier's tiles: they were not
	// checked here (clients check them), so they must not feed verification.
	key := "sumdb/" + p.v.db.Name + "/served/" + rest
	ctx := r.Context()
	if rc, info, err := p.store.Open(ctx, key); err == nil {
		defer rc.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeContent(w, r, "", info.ModTime, rc)
		return
	}
	data, err := p.remote.Get(ctx, "/"+rest)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			writeError(w, r, http.StatusNotFound, err.Error())
			return
		}
		writeError(w, r, http.StatusBadGateway, err.Error()+"; try again later")
		return
	}
	switch {
	case tile.L < 0:
		// A data tile: nothing here can check it cheaply, so it is passed
		// through and not kept (the go command does not ask for them).
	case len(data) != tile.W*tlog.HashSize:
		writeError(w, r, http.StatusBadGateway, fmt.Sprintf("checksum database sent a tile of %d bytes for %s, want %d; try again later", len(data), rest, tile.W*tlog.HashSize))
		return
	default:
		if err := p.store.Put(ctx, key, bytes.NewReader(data)); err != nil {
			p.log.Warn("cannot store checksum database tile", "tile", rest, "err", err)
		}
	}
	write(w, r, "application/octet-stream", "public, max-age=31536000, immutable", data)
}

// latestEntry is the stored copy of the database's latest signed tree.
type latestEntry struct {
	Fetched time.Time `json:"fetched"`
	Body    []byte    `json:"body"`
}

func (p *Proxy) latest(ctx context.Context) ([]byte, error) {
	key := "sumdb/" + p.v.db.Name + "/served/latest"
	cached, _ := p.readLatest(ctx, key)
	if cached != nil && p.now().Sub(cached.Fetched) < p.latestTTL {
		return cached.Body, nil
	}
	// One refresh for all waiting clients, detached from the first one's
	// request so that its hanging up does not fail the others.
	ch := p.latestFlight.DoChan("latest", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		data, err := p.remote.Get(fctx, "/latest")
		if err != nil {
			return nil, err
		}
		enc, _ := json.Marshal(latestEntry{Fetched: p.now(), Body: data})
		if err := p.store.Put(fctx, key, bytes.NewReader(enc)); err != nil {
			p.log.Warn("cannot store checksum database latest", "err", err)
		}
		return data, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			if cached != nil {
				p.log.Warn("checksum database unreachable; serving the last known tree", "err", r.Err)
				return cached.Body, nil
			}
			return nil, r.Err
		}
		return r.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Proxy) readLatest(ctx context.Context, key string) (*latestEntry, error) {
	rc, _, err := p.store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var e latestEntry
	if err := json.NewDecoder(io.LimitReader(rc, maxRemoteSize*2)).Decode(&e); err != nil {
		return nil, err
	}
	return &e, nil
}

func write(w http.ResponseWriter, r *http.Request, ctype, cacheControl string, data []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", cacheControl)
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}
