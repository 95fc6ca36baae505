// Package testenv builds what modgate's tests run against: a static
// GOPROXY tree of deterministic fixture modules served over real HTTP, and
// the modgate binary itself.
package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	modzip "golang.org/x/mod/zip"
)

// Module is one fixture module version.
type Module struct {
	Path    string
	Version string
	// Files maps file names inside the module to contents. A go.mod is
	// synthesized when absent.
	Files map[string]string
	// Time is the .info time; zero means a fixed date.
	Time time.Time
}

// GoMod returns the module's go.mod content.
func (m Module) GoMod() string {
	if gm, ok := m.Files["go.mod"]; ok {
		return gm
	}
	return "module " + m.Path + "\n\ngo 1.21\n"
}

// BuildTree writes a GOPROXY tree for mods under dir: <path>/@v/list,
// <v>.info, <v>.mod, <v>.zip, laid out exactly as the protocol names them,
// so that http.FileServer or a file:// GOPROXY can serve it.
func BuildTree(t testing.TB, dir string, mods []Module) {
	t.Helper()
	lists := map[string][]string{}
	for _, m := range mods {
		ep, err := module.EscapePath(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := module.EscapeVersion(m.Version)
		if err != nil {
			t.Fatal(err)
		}
		vdir := filepath.Join(dir, filepath.FromSlash(ep), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			t.Fatal(err)
		}
		when := m.Time
		if when.IsZero() {
			when = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
		}
		info, _ := json.Marshal(struct {
			Version string
			Time    time.Time
		}{m.Version, when})
		write(t, filepath.Join(vdir, ev+".info"), info)
		write(t, filepath.Join(vdir, ev+".mod"), []byte(m.GoMod()))
		files := map[string]string{"go.mod": m.GoMod()}
		for name, content := range m.Files {
			files[name] = content
		}
		write(t, filepath.Join(vdir, ev+".zip"), MakeZip(t, m.Path, m.Version, files))
		if !module.IsPseudoVersion(m.Version) {
			lists[vdir] = append(lists[vdir], m.Version)
		} else if _, ok := lists[vdir]; !ok {
			lists[vdir] = nil
		}
	}
	for vdir, versions := range lists {
		sort.Slice(versions, func(i, j int) bool { return semver.Compare(versions[i], versions[j]) < 0 })
		var b strings.Builder
		for _, v := range versions {
			b.WriteString(v + "\n")
		}
		write(t, filepath.Join(vdir, "list"), []byte(b.String()))
	}
}

// MakeZip builds a module zip of exactly files (no go.mod is added: a
// module without one, like a +incompatible version, is a valid zip too).
func MakeZip(t testing.TB, path, version string, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var mf []modzip.File
	for _, name := range names {
		mf = append(mf, memFile{name: name, data: files[name]})
	}
	var buf bytes.Buffer
	if err := modzip.Create(&buf, module.Version{Path: path, Version: version}, mf); err != nil {
		t.Fatalf("zip %s@%s: %v", path, version, err)
	}
	return buf.Bytes()
}

type memFile struct {
	name, data string
}

func (f memFile) Path() string                 { return f.name }
func (f memFile) Lstat() (os.FileInfo, error)  { return memInfo(f), nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(f.data)), nil }

type memInfo memFile

func (i memInfo) Name() string       { return filepath.Base(i.name) }
func (i memInfo) Size() int64        { return int64(len(i.data)) }
func (i memInfo) Mode() os.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

func write(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Upstream is a fixture GOPROXY served over HTTP on 127.0.0.1. It counts
// requests per URL path and can be slowed, broken or taken down, to test
// how modgate behaves when its upstream misbehaves.
type Upstream struct {
	Dir    string
	Server *httptest.Server

	mu     sync.Mutex
	counts map[string]int
	// down makes every request fail with 503.
	down atomic.Bool
	// hook, if set, may answer a request itself (return true) before the
	// static tree is consulted.
	hook func(w http.ResponseWriter, r *http.Request) bool
}

// NewUpstream serves the GOPROXY tree in dir. It answers 404 for unknown
// files, like a plain static file server; set a hook for other habits.
func NewUpstream(t testing.TB, dir string) *Upstream {
	u := &Upstream{Dir: dir, counts: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.counts[r.URL.Path]++
		hook := u.hook
		u.mu.Unlock()
		if u.down.Load() {
			http.Error(w, "fixture upstream is down", http.StatusServiceUnavailable)
			return
		}
		if hook != nil && hook(w, r) {
			return
		}
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Server.Close)
	return u
}

// URL is the base URL to use as an upstream.
func (u *Upstream) URL() string { return u.Server.URL }

// Count returns how many requests reached urlPath (percent-decoded).
func (u *Upstream) Count(urlPath string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[urlPath]
}

// CountContaining returns how many requests reached a path (percent-
// decoded) containing substr.
func (u *Upstream) CountContaining(substr string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for p, c := range u.counts {
		if strings.Contains(p, substr) {
			n += c
		}
	}
	return n
}

// Total returns how many requests reached the upstream.
func (u *Upstream) Total() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, c := range u.counts {
		n += c
	}
	return n
}

// SetDown makes the upstream answer 503 to everything (or recover).
func (u *Upstream) SetDown(down bool) { u.down.Store(down) }

// SetHook installs a function that may answer requests before the tree.
func (u *Upstream) SetHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hook = h
}

// FilePath returns the tree file for a module version's file (ext is
// "info", "mod" or "zip").
func (u *Upstream) FilePath(path, version, ext string) string {
	ep, _ := module.EscapePath(path)
	ev, _ := module.EscapeVersion(version)
	return filepath.Join(u.Dir, filepath.FromSlash(ep), "@v", fmt.Sprintf("%s.%s", ev, ext))
}
