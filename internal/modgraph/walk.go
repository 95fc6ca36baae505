package modgraph

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// FromGoMod returns the graph of the main module whose go.mod is gomod:
// every go.mod reachable through requirements (the whole graph, a
// superset of what the go command reads with pruning), with the main
// module's replace directives (module replacements followed, directory
// replacements skipped) and exclude directives applied, and the versions
// minimal version selection picks. The main module itself is in neither
// list.
func FromGoMod(ctx context.Context, gomod []byte, fetch GoModFetcher, opt Options) (*Graph, error) {
	mm, err := parseMain(gomod)
	if err != nil {
		return nil, err
	}
	w := newWalker(fetch, opt)
	return w.graph(ctx, mm)
}

// FromModules returns, for each root, its zip and the graph of its go.mod
// as a main module (what `go install root@version` builds; a root's own
// replace and exclude directives do not apply, as the go command refuses
// to install such a module), merged.
func FromModules(ctx context.Context, roots []module.Version, fetch GoModFetcher, opt Options) (*Graph, error) {
	for _, r := range roots {
		if err := checkVersion(r); err != nil {
			return nil, err
		}
	}
	w := newWalker(fetch, opt)
	out := &Graph{}
	for _, r := range roots {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := w.bound([]module.Version{r}); err != nil {
			return nil, err
		}
		l := w.load(ctx, []module.Version{r})[r]
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if l.err != nil {
			if !w.opt.KeepGoing {
				return nil, l.err
			}
			out.Merge(&Graph{Missing: []Missing{{Version: r, Err: l.err, Needed: true}}})
			continue
		}
		g, err := w.graph(ctx, &mainModule{path: r.Path, require: l.sum.require, pruned: l.sum.pruned})
		if err != nil {
			return nil, err
		}
		g.GoMods = union(g.GoMods, []module.Version{r})
		g.Zips = union(g.Zips, []module.Version{r})
		out.Merge(g)
	}
	return out, nil
}

// CheckGoMod reports whether gomod is a main module's go.mod that
// FromGoMod accepts, without fetching anything: callers that walk later,
// in the background, refuse a bad one at once.
func CheckGoMod(gomod []byte) error {
	_, err := parseMain(gomod)
	return err
}

// walker fetches and parses go.mod files, each once, however many walks
// (roots) need it.
type walker struct {
	fetch  GoModFetcher
	opt    Options
	loaded map[module.Version]loaded // by module version fetched
}

type loaded struct {
	sum *summary
	err error // the fetch or parse error, naming the version
}

func newWalker(fetch GoModFetcher, opt Options) *walker {
	return &walker{fetch: fetch, opt: opt.withDefaults(), loaded: map[module.Version]loaded{}}
}

// load fetches and parses the go.mod files of targets not loaded yet,
// opt.Workers at a time, and returns the results of all targets. A
// canceled ctx makes every unfinished one fail with ctx's error.
func (w *walker) load(ctx context.Context, targets []module.Version) map[module.Version]loaded {
	out := make(map[module.Version]loaded, len(targets))
	var todo []module.Version
	for _, t := range targets {
		if l, ok := w.loaded[t]; ok {
			out[t] = l
		} else {
			todo = append(todo, t)
		}
	}
	if len(todo) == 0 {
		return out
	}
	results := make([]loaded, len(todo))
	var wg sync.WaitGroup
	sem := make(chan struct{}, w.opt.Workers)
	for i, t := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			results[i] = loaded{err: ctx.Err()}
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = w.fetchOne(ctx, t)
		})
	}
	wg.Wait()
	for i, t := range todo {
		if ctx.Err() == nil {
			w.loaded[t] = results[i] // a canceled walk's errors are not the go.mod's
		}
		out[t] = results[i]
	}
	return out
}

// bound fails when loading targets would take the walker past
// MaxModules go.mod files, counting those every earlier root loaded: the
// bound is the walk's, not each root's.
func (w *walker) bound(targets []module.Version) error {
	n := len(w.loaded)
	for _, t := range targets {
		if _, ok := w.loaded[t]; !ok {
			n++
		}
	}
	if n > w.opt.MaxModules {
		return fmt.Errorf("the module graph has more than %d module versions (MaxModules)", w.opt.MaxModules)
	}
	return nil
}

func (w *walker) fetchOne(ctx context.Context, t module.Version) loaded {
	data, err := w.fetch(ctx, t)
	if err != nil {
		if ctx.Err() != nil {
			return loaded{err: ctx.Err()}
		}
		return loaded{err: versionError(t, "go.mod", err)}
	}
	s, err := parseDep(t, data)
	return loaded{sum: s, err: err}
}

// graph walks mm's whole requirement graph, level by level (each level's
// go.mod files fetched in parallel), and selects versions.
func (w *walker) graph(ctx context.Context, mm *mainModule) (*Graph, error) {
	// edges holds, for every node (a required version, before
	// replacement), what its go.mod requires, exclusions dropped; a node
	// without an entry was not loaded (directory replacement, fetch error).
	edges := map[module.Version][]module.Version{}
	nodes := map[module.Version]bool{}
	targets := map[module.Version]bool{} // go.mod files read
	roots := mm.keep(mm.require)
	level := roots
	for _, m := range roots {
		nodes[m] = true
	}
	for len(level) > 0 {
		var fetch []module.Version
		for _, m := range level {
			if t, dir := mm.resolve(m); !dir && !targets[t] {
				targets[t] = true
				fetch = append(fetch, t)
			}
		}
		if err := w.bound(fetch); err != nil {
			return nil, err
		}
		got := w.load(ctx, fetch)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var next []module.Version
		for _, m := range level {
			t, dir := mm.resolve(m)
			if dir {
				continue
			}
			l, ok := got[t]
			if !ok {
				l = w.loaded[t]
			}
			if l.err != nil {
				continue
			}
			reqs := mm.keep(l.sum.require)
			edges[m] = reqs
			for _, r := range reqs {
				if !nodes[r] {
					nodes[r] = true
					next = append(next, r)
				}
			}
		}
		level = next
	}

	// What the go command reads with pruning, and selects from it.
	prunedNodes, read := nodes, targets
	if mm.pruned {
		prunedNodes, read = w.prunedGraph(mm, roots, edges)
	}
	g := &Graph{}
	for t := range targets {
		l := w.loaded[t]
		switch {
		case l.err == nil:
			g.GoMods = append(g.GoMods, t)
		case read[t] && !w.opt.KeepGoing:
			return nil, l.err
		default:
			g.Missing = append(g.Missing, Missing{Version: t, Err: l.err, Needed: read[t]})
		}
	}
	module.Sort(g.GoMods)
	sortMissing(g.Missing)

	zips := map[module.Version]bool{}
	for _, sel := range []map[string]string{mm.selectMax(nodes), mm.selectMax(prunedNodes)} {
		for path, v := range sel {
			if t, dir := mm.resolve(module.Version{Path: path, Version: v}); !dir {
				zips[t] = true
			}
		}
	}
	g.Zips = sortedSet(zips)
	return g, nil
}

// prunedGraph returns the nodes of the graph the go command loads with
// pruning (cmd/go/internal/modload.readModGraph): the go.mod files of the
// main module's requirements are read; below a pruned go.mod nothing more
// is, below an unpruned one everything is. It also returns the go.mod
// files read.
func (w *walker) prunedGraph(mm *mainModule, roots []module.Version, edges map[module.Version][]module.Version) (nodes, read map[module.Version]bool) {
	nodes, read = map[module.Version]bool{}, map[module.Version]bool{}
	type visit struct {
		m      module.Version
		pruned bool // loaded as part of a pruned graph
	}
	seen := map[visit]bool{}
	var stack []visit
	for _, r := range roots {
		nodes[r] = true
		stack = append(stack, visit{r, true})
	}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[v] {
			continue
		}
		seen[v] = true
		t, dir := mm.resolve(v.m)
		if dir {
			continue
		}
		read[t] = true
		l := w.loaded[t]
		if l.err != nil {
			continue
		}
		for _, r := range edges[v.m] {
			nodes[r] = true
			if !v.pruned || !l.sum.pruned {
				stack = append(stack, visit{r, v.pruned && l.sum.pruned})
			}
		}
	}
	return nodes, read
}

// keep returns reqs less the versions the main module excludes.
func (mm *mainModule) keep(reqs []module.Version) []module.Version {
	if len(mm.exclude) == 0 {
		return reqs
	}
	out := make([]module.Version, 0, len(reqs))
	for _, r := range reqs {
		if !mm.exclude[r] {
			out = append(out, r)
		}
	}
	return out
}

// selectMax is minimal version selection over a graph's nodes: the
// highest version of each path, the main module's path left out.
func (mm *mainModule) selectMax(nodes map[module.Version]bool) map[string]string {
	sel := map[string]string{}
	for m := range nodes {
		if m.Path == mm.path {
			continue
		}
		if cur, ok := sel[m.Path]; !ok || semver.Compare(m.Version, cur) > 0 {
			sel[m.Path] = m.Version
		}
	}
	return sel
}
