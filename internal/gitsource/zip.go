package gitsource

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// zip builds the module zip of version at ri's commit as the go command's
// codeRepo.Zip does, so that it is the same bytes: `git archive` of the
// commit (limited to the module's directory) spooled to a file, then
// modzip.Create over the archive's files below that directory, in the
// archive's order, plus the repository's root LICENSE when the module's
// directory has none. modzip leaves out what a module zip never holds
// (vendor/ contents but modules.txt, nested modules, symlinks, VCS
// directories) and checks the limits.
//
// Both the archive and the result live in ScratchDir, never in memory;
// the returned file is removed on Close.
func (r *modRepo) zip(ctx context.Context, ri *revInfo, version string) (io.ReadCloser, error) {
	dir, _, err := r.findDir(ctx, ri.hash, version)
	if err != nil {
		return nil, err
	}

	archive, err := os.CreateTemp(r.s.cfg.ScratchDir, "gitsource-archive-*.zip")
	if err != nil {
		return nil, fmt.Errorf("gitsource: scratch file: %w", err)
	}
	defer func() {
		archive.Close()
		os.Remove(archive.Name())
	}()
	if err := r.repo.Archive(ctx, ri.hash, dir, archive, modzip.MaxZipFile); err != nil {
		if isNotExist(err) {
			return nil, &module.ModuleError{Path: r.modPath, Version: version, Err: fmt.Errorf("no files in %s", dir)}
		}
		return nil, r.fail("archiving "+version, err)
	}
	size, err := archive.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(archive, size)
	if err != nil {
		return nil, r.fail("reading the archive of "+version, err)
	}

	var files []modzip.File
	subdir := strings.Trim(dir, "/")
	if subdir != "" {
		subdir += "/"
	}
	haveLICENSE := false
	topPrefix := ""
	for _, zf := range zr.File {
		if topPrefix == "" {
			i := strings.Index(zf.Name, "/")
			if i < 0 {
				return nil, r.fail("reading the archive of "+version, errors.New("missing top-level directory prefix"))
			}
			topPrefix = zf.Name[:i+1]
		}
		name, ok := strings.CutPrefix(zf.Name, topPrefix)
		if !ok {
			return nil, r.fail("reading the archive of "+version, errors.New("more than one top-level directory"))
		}
		if name, ok = strings.CutPrefix(name, subdir); !ok {
			continue
		}
		if name == "" || strings.HasSuffix(name, "/") {
			continue
		}
		files = append(files, archiveFile{name: name, f: zf})
		if name == "LICENSE" {
			haveLICENSE = true
		}
	}
	if !haveLICENSE && subdir != "" {
		if data, err := r.readFile(ctx, ri.hash, "LICENSE", maxLICENSE); err == nil {
			files = append(files, dataFile{name: "LICENSE", data: data})
		}
		if r.gitErr != nil {
			return nil, r.gitErr
		}
	}

	out, err := os.CreateTemp(r.s.cfg.ScratchDir, "gitsource-zip-*.zip")
	if err != nil {
		return nil, fmt.Errorf("gitsource: scratch file: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	if err := modzip.Create(out, module.Version{Path: r.modPath, Version: version}, files); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// What modzip refuses (a file too large, an invalid name, a
		// zip over the size limit) is a version the go command could
		// not download either.
		return nil, &module.ModuleError{Path: r.modPath, Version: version, Err: err}
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	keep = true
	return &tempFile{File: out}, nil
}

// archiveFile is a file of the git archive, as modzip wants it.
type archiveFile struct {
	name string
	f    *zip.File
}

func (f archiveFile) Path() string                 { return f.name }
func (f archiveFile) Lstat() (fs.FileInfo, error)  { return f.f.FileInfo(), nil }
func (f archiveFile) Open() (io.ReadCloser, error) { return f.f.Open() }

// dataFile is a file read from the repository (the root LICENSE).
type dataFile struct {
	name string
	data []byte
}

func (f dataFile) Path() string                 { return f.name }
func (f dataFile) Lstat() (fs.FileInfo, error)  { return dataFileInfo{f}, nil }
func (f dataFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.data)), nil }

type dataFileInfo struct{ f dataFile }

func (fi dataFileInfo) Name() string       { return path.Base(fi.f.name) }
func (fi dataFileInfo) Size() int64        { return int64(len(fi.f.data)) }
func (fi dataFileInfo) Mode() fs.FileMode  { return 0o644 }
func (fi dataFileInfo) ModTime() time.Time { return time.Time{} }
func (fi dataFileInfo) IsDir() bool        { return false }
func (fi dataFileInfo) Sys() any           { return nil }

// tempFile is a scratch file removed when closed.
type tempFile struct {
	*os.File
}

func (t *tempFile) Close() error {
	err := t.File.Close()
	if rerr := os.Remove(t.File.Name()); err == nil && rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	return err
}
