package bundle

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	xsumdb "golang.org/x/mod/sumdb"

	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/sumdb"
)

// checkOffline makes sure that the verified state answers a go command
// with no checksum database cache of its own, offline: an x/mod client,
// as the go command runs it, looks up every bundled version through
// modgate's /sumdb/ proxy over the state, whose Verifier cannot reach any
// database. What that proxy cannot answer from the state, a go command
// could not verify behind an air gap either: better refused now than
// found out by the first build.
func (im *importer) checkOffline(ctx context.Context) error {
	db := im.opt.DB
	db.URL = "https://offline.invalid"
	discard := slog.New(slog.DiscardHandler)
	v := sumdb.NewVerifier(sumdb.Config{DB: db, Store: im.state, Remote: sumdb.NewRemote(db, nil, &http.Client{Transport: refuser{}}), Logger: discard})
	defer v.Close()
	p := sumdb.NewProxy(v, nil, time.Hour, discard)
	ops := &goCommandOps{ctx: ctx, name: db.Name, key: db.Key, h: p.Handler(func(w http.ResponseWriter, _ *http.Request, status int, msg string) {
		http.Error(w, msg, status)
	})}
	c := xsumdb.NewClient(ops)
	for _, m := range im.man.Modules {
		for _, gomod := range []bool{true, false} {
			vers, want := m.Version+"/go.mod", m.Mod
			if !gomod {
				if m.Zip == "" {
					continue
				}
				vers, want = m.Version, m.Zip
			}
			lines, err := c.Lookup(m.Path, vers)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				return importError("the bundle's proofs would not let a go command verify %s offline (%s); nothing was imported", m, redact.Line(err.Error(), 300))
			}
			if !slices.Contains(lines, m.Path+" "+vers+" "+want) {
				return importError("the checksum database state from the bundle gives %q for %s, not %s; nothing was imported", lines, m, want)
			}
		}
	}
	return nil
}

// goCommandOps are the x/mod client operations of a go command with an
// empty cache whose GOPROXY is the proxy handler h.
type goCommandOps struct {
	ctx       context.Context
	name, key string
	h         http.Handler

	mu     sync.Mutex
	latest []byte
}

func (o *goCommandOps) ReadRemote(path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(o.ctx, http.MethodGet, "http://modgate.invalid/sumdb/"+o.name+path, nil)
	if err != nil {
		return nil, err
	}
	w := &bufferWriter{header: http.Header{}}
	o.h.ServeHTTP(w, req)
	if w.status != 0 && w.status != http.StatusOK {
		return nil, fmt.Errorf("%s: %d %s", path, w.status, strings.TrimSpace(w.body.String()))
	}
	return w.body.Bytes(), nil
}

func (o *goCommandOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.key), nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.latest), nil
}

func (o *goCommandOps) WriteConfig(file string, old, new []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !bytes.Equal(old, o.latest) {
		return xsumdb.ErrWriteConflict
	}
	o.latest = bytes.Clone(new)
	return nil
}

func (o *goCommandOps) ReadCache(file string) ([]byte, error) { return nil, fs.ErrNotExist }
func (o *goCommandOps) WriteCache(file string, data []byte)   {}
func (o *goCommandOps) Log(msg string)                        {}
func (o *goCommandOps) SecurityError(msg string)              {}

// bufferWriter is an http.ResponseWriter that keeps the answer: the proxy's
// answers are a lookup or a tile, small.
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferWriter) Header() http.Header { return w.header }

func (w *bufferWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *bufferWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.body.Len()+len(p) > maxProofSize {
		return 0, fmt.Errorf("answer larger than %d bytes", maxProofSize)
	}
	return w.body.Write(p)
}
