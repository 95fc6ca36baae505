// Package catalog answers the admin API's read-only questions about what
// modgate holds and how it is used (issue #12): GET /admin/v1/modules, the
// stored modules and versions, and GET /admin/v1/stats, store totals and
// request figures. It reads the store and the metrics registry only; who
// may ask is the caller's business (the server mounts these behind its
// admin gate).
package catalog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/access"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/store"
)

// Limits of GET /admin/v1/modules: a page holds at most MaxLimit modules,
// DefaultLimit when the request names none.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// maxInfoSize bounds the read of a stored .info file: a real one is well
// under 200 bytes, and the store is not to be trusted with our memory.
const maxInfoSize = 64 << 10

// ModuleList is the answer of GET /admin/v1/modules.
type ModuleList struct {
	Modules []Module `json:"modules"`
	// Next, when set, is the value of the "after" parameter that asks for
	// the next page: this one stopped at the limit.
	Next string `json:"next,omitempty"`
}

// Module is one stored module and its stored versions, in the store's
// order (the lexical order of escaped versions, not semver order).
type Module struct {
	Path     string    `json:"path"`
	Versions []Version `json:"versions"`
}

// Version is one stored version of a module.
type Version struct {
	Version string `json:"version"`
	// Files are the extensions of the version's stored files, in key
	// order: info, mod, zip, as many as are stored (a version that only
	// had its .info asked for has only that).
	Files []string `json:"files"`
	// Size is the total size of those files in bytes.
	Size int64 `json:"size"`
	// Time is the version's time from its .info file, when stored and
	// readable.
	Time *time.Time `json:"time,omitempty"`
	// Fetched is when the zip was stored (its modification time).
	Fetched *time.Time `json:"fetched,omitempty"`
	// Origin names where its files were last fetched from (without
	// credentials), when the usage record knows.
	Origin string `json:"origin,omitempty"`
	// Downloads counts its zips served, and LastAccess is when any of its
	// files was last served, as the usage record says (package access:
	// written by each replica every minute, so up to a minute behind).
	Downloads  int64      `json:"downloads"`
	LastAccess *time.Time `json:"last_access,omitempty"`
	// H1 is the zip's hash as go.sum records it ("h1:..."), when its
	// .ziphash is stored (it is not computed on request).
	H1 string `json:"h1,omitempty"`

	hashed bool // a .ziphash is stored
}

// Modules serves GET /admin/v1/modules?q=<substring>&limit=N&after=<path>:
// the stored modules whose path contains q, compared case-insensitively
// (all of them without q), at most limit of them, after the module path
// "after" in the store's order (the previous page's "next"). With
// path=<module path>, only that module (a page of one, or none): the walk
// reads its keys alone, which the web UI's module page asks for.
//
// It walks the store's module files in key order, so one module's files
// arrive together and the walk stops as soon as the page is full; a q that
// matches little still reads the listing of the whole store, never more
// than one page of modules into memory.
func Modules(st store.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			goproxy.WriteError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET")
			return
		}
		p, err := parseListParams(r)
		if err != nil {
			goproxy.WriteError(w, r, http.StatusBadRequest, err.Error())
			return
		}
		list, err := listModules(r.Context(), st, p)
		if err != nil {
			if r.Context().Err() == nil {
				goproxy.WriteError(w, r, http.StatusInternalServerError, "listing the store failed: "+err.Error())
			}
			return
		}
		goproxy.WriteJSON(w, r, http.StatusOK, list)
	})
}

type listParams struct {
	q string // lower case
	// path, when set, asks for that one module: the walk reads only its
	// keys, however many modules the store holds.
	path  string
	limit int
	// afterKey is the key prefix of the module the page starts after
	// ("<escaped path>/@v/"), empty for the first page.
	afterKey string
}

func parseListParams(r *http.Request) (listParams, error) {
	query := r.URL.Query()
	for name := range query {
		switch name {
		case "q", "limit", "after", "path":
		default:
			return listParams{}, errors.New("unknown parameter " + strconv.Quote(name) + "; GET /admin/v1/modules takes q, path, limit and after")
		}
	}
	p := listParams{q: strings.ToLower(query.Get("q")), limit: DefaultLimit}
	if len(p.q) > store.MaxKeyLen {
		return listParams{}, errors.New("q is longer than any module path")
	}
	if s := query.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return listParams{}, errors.New("limit must be a number from 1 to " + strconv.Itoa(MaxLimit))
		}
		p.limit = n
	}
	if path := query.Get("path"); path != "" {
		if err := module.CheckPath(path); err != nil {
			return listParams{}, errors.New("path is not a module path: " + err.Error())
		}
		p.path = path
	}
	if after := query.Get("after"); after != "" {
		ep, err := module.EscapePath(after)
		if err != nil {
			return listParams{}, errors.New("after is not a module path")
		}
		p.afterKey = ep + "/@v/"
	}
	return p, nil
}

// listModules walks the store under "mod/". Every key of a module starts
// with "mod/<escaped path>/@v/", so they are contiguous in key order, and
// modules come in the order of that prefix, which is also how "after"
// compares.
func listModules(ctx context.Context, st store.Store, p listParams) (ModuleList, error) {
	list := ModuleList{Modules: []Module{}}
	var (
		cur    *Module        // the module whose keys are arriving, if it matches
		curKey string         // its "<escaped path>/@v/"
		index  map[string]int // cur's versions: their index in cur.Versions
	)
	errFull := errors.New("page full")
	prefix := "mod/"
	if p.path != "" {
		vp, err := store.VersionPrefix(p.path)
		if err != nil {
			return list, nil // a path no key can hold: nothing stored
		}
		prefix = vp
	}
	err := store.ListInfo(ctx, st, prefix, func(key string, info store.Info) error {
		path, version, ext, err := store.ParseVersionKey(key)
		if err != nil {
			return nil // not a module file
		}
		ep, _, _ := strings.Cut(strings.TrimPrefix(key, "mod/"), "/@v/")
		modKey := ep + "/@v/"
		if modKey <= p.afterKey {
			return nil
		}
		if ext == "ziphash" {
			// Not a file of the version's own (see moduleFile): it only
			// says that the h1 is stored. It sorts after its zip, so the
			// version is known if it has one.
			if i, ok := index[version]; ok && modKey == curKey && cur != nil {
				cur.Versions[i].hashed = true
			}
			return nil
		}
		if modKey != curKey {
			curKey = modKey
			cur = nil
			if !strings.Contains(strings.ToLower(path), p.q) || p.path != "" && path != p.path {
				return nil
			}
			if len(list.Modules) == p.limit {
				list.Next = list.Modules[len(list.Modules)-1].Path
				return errFull
			}
			list.Modules = append(list.Modules, Module{Path: path, Versions: []Version{}})
			cur = &list.Modules[len(list.Modules)-1]
			index = map[string]int{}
		}
		if cur == nil {
			return nil
		}
		i, ok := index[version]
		if !ok {
			i = len(cur.Versions)
			index[version] = i
			cur.Versions = append(cur.Versions, Version{Version: version, Files: []string{}})
		}
		v := &cur.Versions[i]
		v.Files = append(v.Files, ext)
		v.Size += info.Size
		if ext == "zip" {
			t := info.ModTime.UTC()
			v.Fetched = &t
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return ModuleList{}, err
	}
	// The .info times, hashes and usage records are read once the walk is
	// over: it stays a listing, and only what is on the page costs a
	// read: a usage record per module, an .info and a .ziphash per version.
	for i := range list.Modules {
		m := &list.Modules[i]
		// A record that cannot be read shows no usage: the page is still
		// worth answering.
		records, _ := access.Read(ctx, st, m.Path)
		for j := range m.Versions {
			v := &m.Versions[j]
			if e, ok := records[v.Version]; ok {
				v.Origin, v.Downloads = e.Origin, e.Downloads
				if !e.Last.IsZero() {
					last := e.Last.UTC()
					v.LastAccess = &last
				}
			}
			if v.hashed && slices.Contains(v.Files, "zip") {
				v.H1 = readZipHash(ctx, st, m.Path, v.Version)
			}
			if !slices.Contains(v.Files, "info") {
				continue
			}
			if key, err := store.VersionKey(m.Path, v.Version, "info"); err == nil {
				if t, ok := readInfoTime(ctx, st, key); ok {
					v.Time = &t
				}
			}
		}
	}
	return list, nil
}

// readZipHash returns the h1: hash stored beside a version's zip, "" when
// it cannot be read or is not one.
func readZipHash(ctx context.Context, st store.Store, path, version string) string {
	key, err := store.VersionKey(path, version, "ziphash")
	if err != nil {
		return ""
	}
	rc, _, err := st.Open(ctx, key)
	if err != nil {
		return ""
	}
	defer rc.Close()
	// "h1:" and the base64 of a SHA-256, and a newline.
	data, _ := io.ReadAll(io.LimitReader(rc, 128))
	h1 := strings.TrimSpace(string(data))
	if !strings.HasPrefix(h1, "h1:") || len(h1) != len("h1:")+44 {
		return ""
	}
	if _, err := base64.StdEncoding.DecodeString(h1[len("h1:"):]); err != nil {
		return ""
	}
	return h1
}

// moduleFile reports whether key is one of the module files that the
// catalog shows and counts: a version's .info, .mod and .zip. The .ziphash
// next to a zip is left out: it is derived (the zip's h1, tens of bytes),
// the cache writes it in the background after the zip, and it would make
// a version's file list and size change after the fact.
func moduleFile(key string) bool {
	_, _, ext, err := store.ParseVersionKey(key)
	return err == nil && ext != "ziphash"
}

// readInfoTime returns the Time field of the stored .info file at key.
func readInfoTime(ctx context.Context, st store.Store, key string) (time.Time, bool) {
	rc, _, err := st.Open(ctx, key)
	if err != nil {
		return time.Time{}, false
	}
	defer rc.Close()
	var info struct{ Time time.Time }
	if err := json.NewDecoder(io.LimitReader(rc, maxInfoSize)).Decode(&info); err != nil || info.Time.IsZero() {
		return time.Time{}, false
	}
	return info.Time.UTC(), true
}
