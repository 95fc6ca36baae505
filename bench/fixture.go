package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// fixtureModule is one synthetic module version of the offline parts.
type fixtureModule struct {
	Path, Version string
	Files         map[string][]byte // go.mod is added when missing
}

// buildTree writes a GOPROXY tree for mods under dir (<path>/@v/list,
// <v>.info, <v>.mod, <v>.zip), the layout http.FileServer and a file://
// GOPROXY serve as is. It is the bench's own copy of internal/testenv's
// builder, which needs a testing.TB.
func buildTree(dir string, mods []fixtureModule) error {
	lists := map[string][]string{}
	for _, m := range mods {
		ep, err := module.EscapePath(m.Path)
		if err != nil {
			return err
		}
		ev, err := module.EscapeVersion(m.Version)
		if err != nil {
			return err
		}
		vdir := filepath.Join(dir, filepath.FromSlash(ep), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return err
		}
		info, _ := json.Marshal(struct {
			Version string
			Time    time.Time
		}{m.Version, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)})
		files := map[string][]byte{"go.mod": []byte("module " + m.Path + "\n\ngo 1.21\n")}
		for name, data := range m.Files {
			files[name] = data
		}
		if err := os.WriteFile(filepath.Join(vdir, ev+".info"), info, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(vdir, ev+".mod"), files["go.mod"], 0o644); err != nil {
			return err
		}
		names := make([]string, 0, len(files))
		for name := range files {
			names = append(names, name)
		}
		sort.Strings(names)
		var zfiles []modzip.File
		for _, name := range names {
			zfiles = append(zfiles, memFile{name, files[name]})
		}
		zf, err := os.Create(filepath.Join(vdir, ev+".zip"))
		if err != nil {
			return err
		}
		if err := modzip.Create(zf, module.Version{Path: m.Path, Version: m.Version}, zfiles); err != nil {
			zf.Close()
			return fmt.Errorf("zip %s@%s: %w", m.Path, m.Version, err)
		}
		if err := zf.Close(); err != nil {
			return err
		}
		lists[vdir] = append(lists[vdir], m.Version)
	}
	for vdir, versions := range lists {
		if err := os.WriteFile(filepath.Join(vdir, "list"), []byte(strings.Join(versions, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

type memFile struct {
	name string
	data []byte
}

func (f memFile) Path() string                 { return f.name }
func (f memFile) Lstat() (os.FileInfo, error)  { return memInfo(f), nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.data)), nil }

type memInfo memFile

func (i memInfo) Name() string       { return filepath.Base(i.name) }
func (i memInfo) Size() int64        { return int64(len(i.data)) }
func (i memInfo) Mode() fs.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

// smallModules returns n small modules example.com/bench/mNNN@v1.0.0.
func smallModules(n int) []fixtureModule {
	mods := make([]fixtureModule, n)
	for i := range mods {
		path := fmt.Sprintf("example.com/bench/m%03d", i)
		mods[i] = fixtureModule{Path: path, Version: "v1.0.0", Files: map[string][]byte{
			"m.go": fmt.Appendf(nil, "package m%03d\n\nconst N = %d\n", i, i),
		}}
	}
	return mods
}

// largeModule returns a module whose zip is about size bytes of
// incompressible (pseudo-random, deterministic) data in 10 MB files.
func largeModule(path string, size int64) fixtureModule {
	rnd := rand.NewChaCha8([32]byte{'m', 'o', 'd', 'g', 'a', 't', 'e'})
	files := map[string][]byte{"big.go": []byte("package big\n")}
	const chunk = 10 << 20
	for i := 0; size > 0; i++ {
		n := min(size, chunk)
		buf := make([]byte, n)
		rnd.Read(buf)
		files[fmt.Sprintf("data/blob%02d.bin", i)] = buf
		size -= n
	}
	return fixtureModule{Path: path, Version: "v1.0.0", Files: files}
}

// copyTree copies the regular files under src to dst, skipping names for
// which skip returns true.
func copyTree(src, dst string, skip func(name string) bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() || skip(d.Name()) {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
