package modgraph

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// prunedSince is the first go version (1.N) whose go.mod files the go
// command reads with module graph pruning (gover.ExplicitIndirectVersion).
const prunedSince = 17

// mainModule is the go.mod a walk starts from, with what applies only
// there: replacements and exclusions.
type mainModule struct {
	path    string
	require []module.Version
	pruned  bool
	// replace maps a required version (or, with Version "", every version
	// of a path) to what the go command reads instead.
	replace map[module.Version]replacement
	exclude map[module.Version]bool
}

type replacement struct {
	to  module.Version
	dir bool // replaced by a local directory: nothing to fetch
}

// resolve returns the module version whose go.mod and zip stand for m:
// m itself, or its replacement; dir reports a directory replacement.
func (mm *mainModule) resolve(m module.Version) (target module.Version, dir bool) {
	if r, ok := mm.replace[m]; ok {
		return r.to, r.dir
	}
	if r, ok := mm.replace[module.Version{Path: m.Path}]; ok {
		return r.to, r.dir
	}
	return m, false
}

// parseMain reads the main module's go.mod strictly, as the go command
// does: every version canonical, replacements and exclusions kept.
func parseMain(data []byte) (*mainModule, error) {
	f, err := modfile.Parse("go.mod", data, strictVersion)
	if err != nil {
		return nil, fmt.Errorf("main go.mod: %s", oneLine(err.Error()))
	}
	if f.Module == nil || f.Module.Mod.Path == "" {
		return nil, errors.New("main go.mod: no module directive")
	}
	mm := &mainModule{
		path:    f.Module.Mod.Path,
		pruned:  Pruned(f),
		replace: map[module.Version]replacement{},
		exclude: map[module.Version]bool{},
	}
	if err := module.CheckPath(mm.path); err != nil {
		return nil, fmt.Errorf("main go.mod: %w", err)
	}
	for _, r := range f.Require {
		if err := checkVersion(r.Mod); err != nil {
			return nil, fmt.Errorf("main go.mod: require: %w", err)
		}
		mm.require = append(mm.require, r.Mod)
	}
	for _, x := range f.Exclude {
		if err := checkVersion(x.Mod); err != nil {
			return nil, fmt.Errorf("main go.mod: exclude: %w", err)
		}
		mm.exclude[x.Mod] = true
	}
	for _, r := range f.Replace {
		if err := module.CheckPath(r.Old.Path); err != nil {
			return nil, fmt.Errorf("main go.mod: replace: %w", err)
		}
		if r.Old.Version != "" {
			if err := checkVersion(r.Old); err != nil {
				return nil, fmt.Errorf("main go.mod: replace: %w", err)
			}
		}
		if r.New.Version == "" { // modfile made sure New.Path is a directory path
			mm.replace[r.Old] = replacement{dir: true}
			continue
		}
		if err := checkVersion(r.New); err != nil {
			return nil, fmt.Errorf("main go.mod: replace: %w", err)
		}
		mm.replace[r.Old] = replacement{to: r.New}
	}
	return mm, nil
}

// strictVersion refuses the versions modfile would otherwise make
// canonical ("v1.2" for v1.2.0): the go command does not build from a main
// go.mod that needs such an update (-mod=readonly), and a prefetch should
// not guess.
func strictVersion(path, version string) (string, error) {
	if module.CanonicalVersion(version) != version {
		return "", fmt.Errorf("%s@%s: version is not canonical", path, version)
	}
	return version, nil
}

// summary is what a walk keeps of a dependency's go.mod.
type summary struct {
	require []module.Version
	pruned  bool
}

// parseDep reads the go.mod of a dependency m laxly, as the go command
// does: its replace and exclude directives do not apply. A requirement
// it replaces by a directory itself is left out: such a requirement is a
// placeholder that exists nowhere (k8s.io/kubernetes requires k8s.io/api
// v0.0.0), which the main module must replace for the go command to get
// anywhere.
func parseDep(m module.Version, data []byte) (*summary, error) {
	f, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		return nil, versionError(m, "go.mod", errors.New(oneLine(err.Error())))
	}
	placeholders := DirReplaced(f)
	s := &summary{pruned: Pruned(f), require: make([]module.Version, 0, len(f.Require))}
	for _, r := range f.Require {
		if placeholders[module.Version{Path: r.Mod.Path}] || placeholders[r.Mod] {
			continue
		}
		if err := checkVersion(r.Mod); err != nil {
			return nil, versionError(m, "go.mod", err)
		}
		s.require = append(s.require, r.Mod)
	}
	return s, nil
}

// checkVersion accepts a valid module path with a canonical version that
// suits it.
func checkVersion(m module.Version) error {
	if err := module.Check(m.Path, m.Version); err != nil {
		return err
	}
	if module.CanonicalVersion(m.Version) != m.Version {
		return fmt.Errorf("%s@%s: version is not canonical", m.Path, m.Version)
	}
	return nil
}

// Pruned reports whether the go command reads f with graph pruning: its
// go directive names go 1.17 or later. Without one, a go.mod is read as
// go 1.16's. A version the go command does not know yet counts as newer.
func Pruned(f *modfile.File) bool {
	if f.Go == nil {
		return false
	}
	sub := modfile.GoVersionRE.FindStringSubmatch(f.Go.Version)
	if sub == nil {
		return true // a version the go command does not know yet: newer
	}
	major, _ := strconv.Atoi(sub[1])
	minor, _ := strconv.Atoi(sub[2])
	return major > 1 || minor >= prunedSince
}

// DirReplaced returns the requirements f's replace directives point to a
// directory: the Version is "" for every version of the path. ParseLax
// drops replace directives; the syntax tree it keeps still has them.
func DirReplaced(f *modfile.File) map[module.Version]bool {
	found := map[module.Version]bool{}
	add := func(tok []string) { // old [version] => new [version]
		arrow := slices.Index(tok, "=>")
		if (arrow != 1 && arrow != 2) || len(tok) != arrow+2 || !modfile.IsDirectoryPath(unquote(tok[arrow+1])) {
			return // malformed, or a module replacement (new has a version)
		}
		key := module.Version{Path: unquote(tok[0])}
		if arrow == 2 {
			key.Version = module.CanonicalVersion(unquote(tok[1]))
		}
		found[key] = true
	}
	for _, stmt := range f.Syntax.Stmt {
		switch x := stmt.(type) {
		case *modfile.Line:
			if len(x.Token) > 0 && x.Token[0] == "replace" {
				add(x.Token[1:])
			}
		case *modfile.LineBlock:
			if len(x.Token) == 1 && x.Token[0] == "replace" {
				for _, l := range x.Line {
					add(l.Token)
				}
			}
		}
	}
	return found
}

// unquote returns a go.mod token's text: tokens may be quoted strings.
func unquote(tok string) string {
	if s, err := strconv.Unquote(tok); err == nil {
		return s
	}
	return tok
}
