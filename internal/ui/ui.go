// Package ui is modgate's web UI, served at /ui/: one page of hand-written
// HTML, CSS and JavaScript, embedded in the binary, that shows what the
// admin API answers (modules and versions, stats and charts, the audit
// log, the policy, health) and fixes entries through it (refresh a
// module's list, purge a version). There is no build step and no
// outside asset: the page works in a network that reaches nothing but
// modgate.
//
// The files hold no data and no secret, so they are served to anyone the
// server lets through (the server decides: with tokens, to every client,
// since the page asks for an admin token itself; without, to the clients
// the admin API answers). Every figure comes from /admin/v1/, behind the
// admin gate, with the token the page keeps in the tab's session storage.
//
// Everything the page shows from the API is inserted as text, never as
// markup, and the Content-Security-Policy allows scripts and styles from
// the server's own files only, so a module path or an audit field that
// holds markup stays text.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is where the UI is mounted.
const Prefix = "/ui/"

//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of every UI response: the page's own
// scripts, styles and images, requests to its own server, nothing inline,
// no frames.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// contentTypes are the types of the files' extensions, fixed here rather
// than read from the system's MIME tables, which differ between machines
// (and a script served as anything but JavaScript does not run).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

type file struct {
	data        []byte
	etag        string // a hash of data, so a changed binary changes it
	contentType string
}

// files are the embedded files by their name under Prefix ("" is the
// page itself).
var files = func() map[string]file {
	m := map[string]file{}
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("%s: no content type for its extension", name)
		}
		m[strings.TrimPrefix(name, "static/")] = file{data: data, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, contentType: ct}
		return nil
	})
	if err != nil {
		panic("ui: embedded files: " + err.Error())
	}
	m[""] = m["index.html"]
	return m
}()

// Handler serves the UI's files under Prefix, and redirects the prefix
// without its slash to it. Files are revalidated on every load
// (no-cache, with an ETag from their content): a new modgate binary is
// picked up at once, and an unchanged file costs a 304.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			textError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
			return
		}
		if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		f, found := files[name]
		if !ok || !found {
			textError(w, http.StatusNotFound, "no such file in the web UI; open "+Prefix)
			return
		}
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		// ServeContent answers If-None-Match with 304 and HEAD without a
		// body; the zero time leaves Last-Modified out.
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
	})
}

func textError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte("modgate: " + msg + "\n"))
}
