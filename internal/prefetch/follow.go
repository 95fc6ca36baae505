package prefetch

import (
	"fmt"
	"io"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/modgraph"
	"github.com/modgate/modgate/internal/protocol"
)

// maxGoModRead bounds the go.mod files read for their requirements. Real
// ones are a few KiB (tens for the largest projects); a larger one is
// served, but not followed.
const maxGoModRead = 1 << 20

// follow reads the go.mod f of j and returns the prefetches of the
// requirements the go command is likely to ask for next, one level below j.
//
// The go command reads a go.mod's requirements as they are written:
// replace and exclude directives apply only in the main module's go.mod,
// which modgate never serves (modfile.ParseLax, which the go command reads
// dependencies' go.mod files with, drops them). So a requirement replaced
// by another module, or excluded, is still asked for under its own name
// and version, and is prefetched. One replaced by a directory is not: it
// is a placeholder that exists nowhere (k8s.io/kubernetes requires
// k8s.io/api v0.0.0 and replaces it by ./staging/...), which a main module
// depending on it must replace itself, so no client asks for it, and
// origins would only answer not found.
//
// Which go.mod files the go command reads next: in a pruned module graph
// (a main module at go 1.17 or later: nearly every project today) it
// reads the go.mod of each of the main module's requirements, and walks
// further only below go.mod files without pruning (go before 1.17, or no
// go directive): their requirements, transitively. So the requirements of
// a go.mod a client was served (level 0) are prefetched, as they are
// likely the main module's own requirements too, or are walked; below
// that level only the requirements of unpruned go.mod files are.
func follow(f *protocol.File, j job) ([]job, error) {
	if f.Size <= 0 || f.Size > maxGoModRead {
		return nil, nil
	}
	data := make([]byte, f.Size)
	if _, err := io.ReadFull(f.Content, data); err != nil {
		return nil, fmt.Errorf("reading the stored go.mod: %w", err)
	}
	mf, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		// The cache checked it before storing it; an origin's go.mod that
		// the go command's lax parser refuses has nothing to follow.
		return nil, nil
	}
	if j.level > 0 && modgraph.Pruned(mf) {
		return nil, nil
	}
	placeholders := modgraph.DirReplaced(mf)
	next := make([]job, 0, len(mf.Require))
	for _, r := range mf.Require {
		p, v := r.Mod.Path, r.Mod.Version
		if placeholders[module.Version{Path: p}] || placeholders[r.Mod] || !protocol.IsCanonical(p, v) {
			continue
		}
		next = append(next, job{path: p, version: v, level: j.level + 1})
	}
	return next, nil
}
