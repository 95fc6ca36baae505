// Package modgraph computes which module files the go command needs to
// build a module: the go.mod files it may read while loading the module
// graph, the zips of the versions minimal version selection picks, and
// the hashes a go.sum records for them. Prefetch jobs and air-gapped
// bundles use it to know what to fetch before anyone asks.
//
// # How the go command builds its graph (cmd/go/internal/modload, mvs)
//
//   - The main module's go.mod is read with its replace and exclude
//     directives; every other go.mod is read laxly (modfile.ParseLax) and
//     its replace and exclude directives do not apply.
//   - A requirement is looked up through the main module's replacements:
//     a replacement of that exact version first, else one of every version
//     of its path. The go.mod read for it is the replacement's; a
//     replacement by a directory has no go.mod a proxy could serve.
//   - A requirement on a version the main module excludes is dropped.
//   - Minimal version selection takes, for every module path, the highest
//     version of it anywhere in the graph; the main module's path is always
//     the main module.
//   - With graph pruning (a main module at go 1.17 or later) the go command
//     reads the go.mod of each of the main module's requirements, and goes
//     further only below go.mod files without pruning (before go 1.17, or
//     with no go directive), transitively. Without pruning it reads the
//     whole graph.
//
// This package walks the whole graph, a superset of what pruning reads,
// so that a build works whichever modules the go command ends up loading.
// Its Zips are the union of the versions selected from the whole graph and
// from the pruned graph: the go command's own selection lies between the
// two (it may widen a pruned graph while loading packages), and with a
// go.sum (FromGoSum) it is exactly known.
//
// What a go.mod cannot say is not found: the requirements of a module
// replaced by a local directory, and the versions the go command's
// package loading adds beyond the pruned graph. Giving the go.sum too
// covers both.
package modgraph

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/mod/module"
)

// GoModFetcher returns the go.mod file of a module version.
type GoModFetcher func(ctx context.Context, m module.Version) ([]byte, error)

// Options bound a walk.
type Options struct {
	// MaxModules is the most module versions whose go.mod a walk fetches;
	// a larger graph is an error. Default 20000 (a large Kubernetes
	// operator's full graph has a few thousand).
	MaxModules int
	// Workers is how many go.mod files are fetched at once. Default 8.
	Workers int
	// KeepGoing makes a go.mod that cannot be fetched or parsed, even one
	// the go command reads, a Missing entry (Needed) instead of the walk's
	// error, so that a caller fetching what it can learns every failure
	// at once. A canceled context still ends the walk.
	KeepGoing bool
}

const (
	defaultMaxModules = 20000
	defaultWorkers    = 8
)

func (o Options) withDefaults() Options {
	if o.MaxModules <= 0 {
		o.MaxModules = defaultMaxModules
	}
	if o.Workers <= 0 {
		o.Workers = defaultWorkers
	}
	return o
}

// Graph is what the go command needs to build: GoMods are every module
// version whose go.mod file it may read, Zips the versions whose zips it
// downloads (the selected build list, MVS). Both are sorted (module.Sort)
// with no duplicates.
type Graph struct {
	GoMods, Zips []module.Version
	// Sums are the hashes a go.sum gave, "h1:..." keyed by M@V for the zip
	// and by M@V/go.mod (a Version with the "/go.mod" suffix) for the
	// go.mod; nil or partial when there was no go.sum.
	Sums map[module.Version]string
	// Missing are the go.mod files of the whole graph that could not be
	// fetched or parsed, with why; the walk did not go below them. Without
	// Options.KeepGoing only those the go command does not read when it
	// prunes the graph are here (one it reads fails the walk). Sorted.
	Missing []Missing
}

// Missing is a go.mod a walk could not fetch or parse.
type Missing struct {
	Version module.Version
	Err     error // names the version
	// Needed reports a go.mod the go command reads (in the pruned graph,
	// or anywhere in an unpruned one): a build needs it.
	Needed bool
}

// GoModKey returns the key of m's go.mod hash in Graph.Sums.
func GoModKey(m module.Version) module.Version {
	return module.Version{Path: m.Path, Version: m.Version + "/go.mod"}
}

// Merge adds o's module versions and hashes to g. Where both have a hash
// for the same key, g's stays.
func (g *Graph) Merge(o *Graph) {
	if o == nil {
		return
	}
	g.GoMods = union(g.GoMods, o.GoMods)
	g.Zips = union(g.Zips, o.Zips)
	if len(o.Sums) > 0 && g.Sums == nil {
		g.Sums = make(map[module.Version]string, len(o.Sums))
	}
	for k, v := range o.Sums {
		if _, ok := g.Sums[k]; !ok {
			g.Sums[k] = v
		}
	}
	seen := make(map[module.Version]bool, len(g.Missing))
	for _, m := range g.Missing {
		seen[m.Version] = true
	}
	for _, m := range o.Missing {
		if !seen[m.Version] {
			g.Missing = append(g.Missing, m)
		}
	}
	sortMissing(g.Missing)
}

// union returns the sorted set of a's and b's versions.
func union(a, b []module.Version) []module.Version {
	set := make(map[module.Version]bool, len(a)+len(b))
	for _, m := range a {
		set[m] = true
	}
	for _, m := range b {
		set[m] = true
	}
	return sortedSet(set)
}

func sortedSet(set map[module.Version]bool) []module.Version {
	list := make([]module.Version, 0, len(set))
	for m := range set {
		list = append(list, m)
	}
	module.Sort(list)
	return list
}

func sortMissing(list []Missing) {
	vs := make([]module.Version, len(list))
	byVersion := make(map[module.Version]Missing, len(list))
	for i, m := range list {
		vs[i] = m.Version
		byVersion[m.Version] = m
	}
	module.Sort(vs)
	for i, v := range vs {
		list[i] = byVersion[v]
	}
}

// versionError names the module version an error is about, unless the
// error starts with its name already (a policy's refusal does).
func versionError(m module.Version, what string, err error) error {
	if strings.HasPrefix(err.Error(), m.Path+"@"+m.Version+" ") {
		return err
	}
	return fmt.Errorf("%s@%s %s: %w", m.Path, m.Version, what, err)
}

// oneLine keeps the first line of a message from outside (a go.mod
// parser's error lists every bad line).
func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " (...)"
	}
	return s
}
