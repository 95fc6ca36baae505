package modgraph_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/modgraph"
)

// repo is a fake module proxy for go.mod files: "path@version" → go.mod.
// It counts fetches so tests can check each go.mod is fetched once.
type repo struct {
	mu      sync.Mutex
	gomods  map[string]string
	fetched map[string]int
}

func newRepo(gomods map[string]string) *repo {
	return &repo{gomods: gomods, fetched: map[string]int{}}
}

func (r *repo) fetch(ctx context.Context, m module.Version) ([]byte, error) {
	key := m.Path + "@" + m.Version
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fetched[key]++
	gm, ok := r.gomods[key]
	if !ok {
		return nil, errors.New("not found")
	}
	return []byte(gm), nil
}

func (r *repo) twice() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k, n := range r.fetched {
		if n > 1 {
			out = append(out, k)
		}
	}
	return out
}

// gomod writes a go.mod: "module P", "go G", then each requirement.
func gomod(path, goVersion string, reqs ...string) string {
	s := "module " + path + "\n"
	if goVersion != "" {
		s += "\ngo " + goVersion + "\n"
	}
	for _, r := range reqs {
		p, v, _ := strings.Cut(r, "@")
		s += "require " + p + " " + v + "\n"
	}
	return s
}

// list renders versions as "path@version" for comparison.
func list(vs []module.Version) []string {
	out := make([]string, len(vs))
	for i, m := range vs {
		out[i] = m.Path + "@" + m.Version
	}
	return out
}

func check(t *testing.T, what string, got []module.Version, want ...string) {
	t.Helper()
	if g := list(got); !slices.Equal(g, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, g, want)
	}
}

func fromGoMod(t *testing.T, main string, r *repo) *modgraph.Graph {
	t.Helper()
	g, err := modgraph.FromGoMod(context.Background(), []byte(main), r.fetch, modgraph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if twice := r.twice(); len(twice) > 0 {
		t.Errorf("fetched more than once: %q", twice)
	}
	return g
}

// TestDiamond: A and B both require C, at different versions: both C
// go.mod files are read, and MVS picks the higher C's zip.
func TestDiamond(t *testing.T) {
	r := newRepo(map[string]string{
		"example.com/a@v1.0.0": gomod("example.com/a", "1.21", "example.com/c@v1.1.0"),
		"example.com/b@v1.0.0": gomod("example.com/b", "1.21", "example.com/c@v1.2.0"),
		"example.com/c@v1.1.0": gomod("example.com/c", "1.21", "example.com/d@v1.0.0"),
		"example.com/c@v1.2.0": gomod("example.com/c", "1.21"),
		"example.com/d@v1.0.0": gomod("example.com/d", "1.21"),
	})
	g := fromGoMod(t, gomod("example.com/main", "1.21", "example.com/a@v1.0.0", "example.com/b@v1.0.0"), r)
	check(t, "GoMods", g.GoMods, "example.com/a@v1.0.0", "example.com/b@v1.0.0", "example.com/c@v1.1.0", "example.com/c@v1.2.0", "example.com/d@v1.0.0")
	check(t, "Zips", g.Zips, "example.com/a@v1.0.0", "example.com/b@v1.0.0", "example.com/c@v1.2.0", "example.com/d@v1.0.0")
	if len(g.Missing) != 0 || g.Sums != nil {
		t.Errorf("Missing %v, Sums %v; want none", g.Missing, g.Sums)
	}
}

// TestCycle: requirements that go round (a module requiring a later
// version of the one requiring it, and the main module itself) end; the
// main module's older go.mod is read but its zip is never one to fetch.
func TestCycle(t *testing.T) {
	r := newRepo(map[string]string{
		"example.com/a@v1.0.0":    gomod("example.com/a", "1.16", "example.com/b@v1.0.0"),
		"example.com/b@v1.0.0":    gomod("example.com/b", "1.16", "example.com/a@v1.1.0", "example.com/main@v0.9.0"),
		"example.com/a@v1.1.0":    gomod("example.com/a", "1.16", "example.com/b@v1.0.0"),
		"example.com/main@v0.9.0": gomod("example.com/main", "1.16", "example.com/a@v1.0.0"),
	})
	g := fromGoMod(t, gomod("example.com/main", "1.16", "example.com/a@v1.0.0"), r)
	check(t, "GoMods", g.GoMods, "example.com/a@v1.0.0", "example.com/a@v1.1.0", "example.com/b@v1.0.0", "example.com/main@v0.9.0")
	check(t, "Zips", g.Zips, "example.com/a@v1.1.0", "example.com/b@v1.0.0")
}

// TestReplace: the main module's replacements apply everywhere in the
// graph (a path-wide one, and one of a single version, which wins); a
// directory replacement is neither fetched nor walked; a dependency's
// replace directives do not apply, except that what it replaces by a
// directory is a placeholder left out.
func TestReplace(t *testing.T) {
	r := newRepo(map[string]string{
		"example.com/a@v1.0.0":    gomod("example.com/a", "1.21", "example.com/old@v1.0.0", "example.com/pinned@v1.5.0") + "replace example.com/a/x => example.com/never v1.0.0\n",
		"example.com/fork@v1.3.0": gomod("example.com/old", "1.21", "example.com/d@v1.0.0"),
		"example.com/p2@v1.0.0":   gomod("example.com/pinned", "1.21"),
		"example.com/d@v1.0.0":    gomod("example.com/d", "1.21"),
		"example.com/k8s@v1.0.0":  gomod("example.com/k8s", "1.21", "example.com/k8s/api@v0.0.0", "example.com/b@v1.0.0") + "replace example.com/k8s/api => ./staging/api\n",
		"example.com/b@v1.0.0":    gomod("example.com/b", "1.21"),
	})
	main := gomod("example.com/main", "1.21", "example.com/a@v1.0.0", "example.com/local@v1.0.0", "example.com/k8s@v1.0.0") + `
replace example.com/old => example.com/fork v1.3.0
replace example.com/pinned v1.5.0 => example.com/p2 v1.0.0
replace example.com/pinned => example.com/wrong v1.0.0
replace example.com/local => ../local
`
	g := fromGoMod(t, main, r)
	check(t, "GoMods", g.GoMods, "example.com/a@v1.0.0", "example.com/b@v1.0.0", "example.com/d@v1.0.0", "example.com/fork@v1.3.0", "example.com/k8s@v1.0.0", "example.com/p2@v1.0.0")
	check(t, "Zips", g.Zips, "example.com/a@v1.0.0", "example.com/b@v1.0.0", "example.com/d@v1.0.0", "example.com/fork@v1.3.0", "example.com/k8s@v1.0.0", "example.com/p2@v1.0.0")
}

// TestExclude: a requirement on an excluded version is dropped, so MVS
// picks the next version required, and the excluded go.mod is not read.
func TestExclude(t *testing.T) {
	r := newRepo(map[string]string{
		"example.com/a@v1.0.0": gomod("example.com/a", "1.16", "example.com/c@v1.1.0"),
		"example.com/b@v1.0.0": gomod("example.com/b", "1.16", "example.com/c@v1.2.0"),
		"example.com/c@v1.1.0": gomod("example.com/c", "1.16"),
		"example.com/c@v1.2.0": gomod("example.com/c", "1.16", "example.com/bad@v1.0.0"),
	})
	main := gomod("example.com/main", "1.21", "example.com/a@v1.0.0", "example.com/b@v1.0.0") + "exclude example.com/c v1.2.0\n"
	g := fromGoMod(t, main, r)
	check(t, "GoMods", g.GoMods, "example.com/a@v1.0.0", "example.com/b@v1.0.0", "example.com/c@v1.1.0")
	check(t, "Zips", g.Zips, "example.com/a@v1.0.0", "example.com/b@v1.0.0", "example.com/c@v1.1.0")
	if n := r.fetched["example.com/c@v1.2.0"]; n != 0 {
		t.Errorf("excluded c@v1.2.0 fetched %d times", n)
	}
}

// TestIncompatible: a v2 module without a go.mod of its own, required as
// +incompatible, is compared as semver, above v1.
func TestIncompatible(t *testing.T) {
	r := newRepo(map[string]string{
		"example.com/a@v1.0.0":                gomod("example.com/a", "1.16", "example.com/old@v1.9.0"),
		"example.com/old@v1.9.0":              gomod("example.com/old", ""),
		"example.com/old@v2.1.0+incompatible": "module example.com/old\n",
	})
	g := fromGoMod(t, gomod("example.com/main", "1.21", "example.com/a@v1.0.0", "example.com/old@v2.1.0+incompatible"), r)
	check(t, "GoMods", g.GoMods, "example.com/a@v1.0.0", "example.com/old@v1.9.0", "example.com/old@v2.1.0+incompatible")
	check(t, "Zips", g.Zips, "example.com/a@v1.0.0", "example.com/old@v2.1.0+incompatible")
}

// TestPruning: with a pruned main module the go command does not read
// the go.mod of a requirement of a pruned dependency, so it may select a
// lower version than the whole graph does: both zips are in the graph. A
// go.mod outside the pruned graph that cannot be fetched is Missing, not
// an error; one inside it is an error naming it.
func TestPruning(t *testing.T) {
	gomods := map[string]string{
		"example.com/a@v1.0.0": gomod("example.com/a", "1.21", "example.com/b@v1.0.0"),
		"example.com/b@v1.0.0": gomod("example.com/b", "1.21", "example.com/c@v1.5.0", "example.com/gone@v1.0.0"),
		"example.com/c@v1.0.0": gomod("example.com/c", "1.21"),
		"example.com/c@v1.5.0": gomod("example.com/c", "1.21"),
	}
	main := gomod("example.com/main", "1.21", "example.com/a@v1.0.0", "example.com/c@v1.0.0")
	g := fromGoMod(t, main, newRepo(gomods))
	check(t, "GoMods", g.GoMods, "example.com/a@v1.0.0", "example.com/b@v1.0.0", "example.com/c@v1.0.0", "example.com/c@v1.5.0")
	check(t, "Zips", g.Zips, "example.com/a@v1.0.0", "example.com/b@v1.0.0", "example.com/c@v1.0.0", "example.com/c@v1.5.0", "example.com/gone@v1.0.0")
	if len(g.Missing) != 1 || g.Missing[0].Version.Path != "example.com/gone" || g.Missing[0].Needed || !strings.Contains(g.Missing[0].Err.Error(), "example.com/gone@v1.0.0 go.mod: not found") {
		t.Errorf("Missing = %v, want example.com/gone@v1.0.0 not found", g.Missing)
	}

	// Unpruned (go 1.16), the go command reads everything: gone's go.mod
	// is needed, and its absence is the walk's error.
	_, err := modgraph.FromGoMod(context.Background(), []byte(gomod("example.com/main", "1.16", "example.com/a@v1.0.0", "example.com/c@v1.0.0")), newRepo(gomods).fetch, modgraph.Options{})
	if err == nil || !strings.Contains(err.Error(), "example.com/gone@v1.0.0 go.mod: not found") {
		t.Errorf("unpruned main: err = %v, want gone@v1.0.0 not found", err)
	}
	// With KeepGoing it is a Missing go.mod the build needs, and the rest
	// of the graph is there.
	g, err = modgraph.FromGoMod(context.Background(), []byte(gomod("example.com/main", "1.16", "example.com/a@v1.0.0", "example.com/c@v1.0.0")), newRepo(gomods).fetch, modgraph.Options{KeepGoing: true})
	if err != nil || len(g.Missing) != 1 || !g.Missing[0].Needed || len(g.GoMods) != 4 {
		t.Errorf("unpruned main, KeepGoing: %+v, %v; want 4 go.mod files and gone Missing, needed", g, err)
	}
	// So is a root's, pruned or not.
	_, err = modgraph.FromGoMod(context.Background(), []byte(gomod("example.com/main", "1.21", "example.com/gone@v1.0.0")), newRepo(gomods).fetch, modgraph.Options{})
	if err == nil || !strings.Contains(err.Error(), "example.com/gone@v1.0.0 go.mod: not found") {
		t.Errorf("root missing: err = %v, want gone@v1.0.0 not found", err)
	}
}

func TestFromModules(t *testing.T) {
	r := newRepo(map[string]string{
		"example.com/tool@v1.2.0": gomod("example.com/tool", "1.21", "example.com/a@v1.0.0", "example.com/c@v1.0.0") + "replace example.com/a => example.com/fork v1.0.0\nexclude example.com/c v1.0.0\n",
		"example.com/lib@v0.3.0":  gomod("example.com/lib", "1.21", "example.com/c@v1.1.0"),
		"example.com/a@v1.0.0":    gomod("example.com/a", "1.21", "example.com/tool@v1.0.0"),
		"example.com/tool@v1.0.0": gomod("example.com/tool", "1.21"),
		"example.com/c@v1.0.0":    gomod("example.com/c", "1.21"),
		"example.com/c@v1.1.0":    gomod("example.com/c", "1.21"),
	})
	roots := []module.Version{{Path: "example.com/tool", Version: "v1.2.0"}, {Path: "example.com/lib", Version: "v0.3.0"}}
	g, err := modgraph.FromModules(context.Background(), roots, r.fetch, modgraph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "GoMods", g.GoMods, "example.com/a@v1.0.0", "example.com/c@v1.0.0", "example.com/c@v1.1.0", "example.com/lib@v0.3.0", "example.com/tool@v1.0.0", "example.com/tool@v1.2.0")
	check(t, "Zips", g.Zips, "example.com/a@v1.0.0", "example.com/c@v1.0.0", "example.com/c@v1.1.0", "example.com/lib@v0.3.0", "example.com/tool@v1.2.0")
	if twice := r.twice(); len(twice) > 0 {
		t.Errorf("fetched more than once: %q", twice)
	}

	for _, bad := range []module.Version{{Path: "example.com/x", Version: "latest"}, {Path: "../x", Version: "v1.0.0"}, {Path: "example.com/x/v2", Version: "v1.0.0"}, {Path: "example.com/x", Version: "v1.0"}} {
		if _, err := modgraph.FromModules(context.Background(), []module.Version{bad}, r.fetch, modgraph.Options{}); err == nil {
			t.Errorf("FromModules(%v) succeeded", bad)
		}
	}
	nope := []module.Version{{Path: "example.com/nope", Version: "v1.0.0"}, {Path: "example.com/lib", Version: "v0.3.0"}}
	_, err = modgraph.FromModules(context.Background(), nope, r.fetch, modgraph.Options{})
	if err == nil || !strings.Contains(err.Error(), "example.com/nope@v1.0.0 go.mod: not found") {
		t.Errorf("unknown root: err = %v", err)
	}
	g, err = modgraph.FromModules(context.Background(), nope, r.fetch, modgraph.Options{KeepGoing: true})
	if err != nil || len(g.Missing) != 1 || !g.Missing[0].Needed || g.Missing[0].Version != nope[0] {
		t.Errorf("unknown root, KeepGoing: %+v, %v; want it Missing", g, err)
	}
	check(t, "KeepGoing Zips", g.Zips, "example.com/c@v1.1.0", "example.com/lib@v0.3.0")
}

func TestBadGoMod(t *testing.T) {
	for _, tc := range []struct{ name, main, dep, want string }{
		{"no module line", "go 1.21\n", "", "no module directive"},
		{"syntax", "module example.com/m\nrequire (\n", "", "main go.mod"},
		{"non-canonical require", "module example.com/m\nrequire example.com/a v1.2\n", "", "main go.mod"},
		{"wrong major", "module example.com/m\nrequire example.com/a/v2 v1.0.0\n", "", "main go.mod"},
		{"bad path", "module example.com/m\nrequire example.com/../a v1.0.0\n", "", "main go.mod"},
		{"bad replacement", "module example.com/m\nreplace example.com/a => example.com/b v1\n", "", "main go.mod"},
		{"dependency syntax", gomod("example.com/m", "1.21", "example.com/a@v1.0.0"), "module example.com/a\nrequire (\n", "example.com/a@v1.0.0 go.mod"},
		{"dependency bad requirement", gomod("example.com/m", "1.21", "example.com/a@v1.0.0"), "module example.com/a\nrequire example.com/b/v3 v1.0.0\n", "example.com/a@v1.0.0 go.mod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(map[string]string{"example.com/a@v1.0.0": tc.dep})
			_, err := modgraph.FromGoMod(context.Background(), []byte(tc.main), r.fetch, modgraph.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("err has several lines: %q", err)
			}
		})
	}
}

// TestMaxModules: a graph larger than the bound is an error, found
// before fetching all of it.
func TestMaxModules(t *testing.T) {
	gomods := map[string]string{}
	var reqs []string
	for i := range 50 {
		p := fmt.Sprintf("example.com/m%d@v1.0.0", i)
		gomods[p] = gomod(strings.Split(p, "@")[0], "1.16")
		reqs = append(reqs, p)
	}
	r := newRepo(gomods)
	_, err := modgraph.FromGoMod(context.Background(), []byte(gomod("example.com/main", "1.21", reqs...)), r.fetch, modgraph.Options{MaxModules: 10})
	if err == nil || !strings.Contains(err.Error(), "more than 10") {
		t.Errorf("err = %v, want more than 10", err)
	}
	if n := len(r.fetched); n > 10 {
		t.Errorf("fetched %d go.mod files, want at most 10", n)
	}
}

// TestMaxModulesAcrossRoots: the bound is on the go.mod files a walk
// fetches, whatever the number of roots sharing it: a list of modules
// whose graphs are each under the bound is an error when together they
// are over it.
func TestMaxModulesAcrossRoots(t *testing.T) {
	gomods := map[string]string{}
	var roots []module.Version
	for i := range 5 {
		root := module.Version{Path: fmt.Sprintf("example.com/root%d", i), Version: "v1.0.0"}
		var reqs []string
		for k := range 4 {
			p := fmt.Sprintf("example.com/dep%d-%d@v1.0.0", i, k)
			gomods[p] = gomod(strings.Split(p, "@")[0], "1.21")
			reqs = append(reqs, p)
		}
		gomods[root.Path+"@"+root.Version] = gomod(root.Path, "1.21", reqs...)
		roots = append(roots, root)
	}
	r := newRepo(gomods)
	_, err := modgraph.FromModules(context.Background(), roots, r.fetch, modgraph.Options{MaxModules: 10})
	if err == nil || !strings.Contains(err.Error(), "more than 10") {
		t.Errorf("err = %v, want more than 10", err)
	}
	if n := len(r.fetched); n > 10 {
		t.Errorf("fetched %d go.mod files, want at most 10", n)
	}
}

// TestWorkers: go.mod files are fetched Workers at a time, never more;
// the test's fetcher holds the first ones until that many overlap.
func TestWorkers(t *testing.T) {
	const workers = 3
	var (
		mu             sync.Mutex
		inFlight, most int
		full           = make(chan struct{})
		fullOnce       sync.Once
	)
	fetch := func(ctx context.Context, m module.Version) ([]byte, error) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight == workers {
			fullOnce.Do(func() { close(full) })
		}
		mu.Unlock()
		defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		select {
		case <-full:
		case <-time.After(time.Minute): // a guard against a hang, not a timing
			return nil, errors.New("fetches never overlapped")
		}
		return []byte(gomod(m.Path, "1.16")), nil
	}
	var reqs []string
	for i := range 20 {
		reqs = append(reqs, fmt.Sprintf("example.com/m%d@v1.0.0", i))
	}
	g, err := modgraph.FromGoMod(context.Background(), []byte(gomod("example.com/main", "1.21", reqs...)), fetch, modgraph.Options{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.GoMods) != 20 || most != workers {
		t.Errorf("%d go.mod files with at most %d fetches at once, want 20 with %d", len(g.GoMods), most, workers)
	}
}

// TestCancel: a canceled walk returns the context's error and leaves no
// fetch running.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	started := make(chan struct{}, 100)
	fetch := func(ctx context.Context, m module.Version) ([]byte, error) {
		running.Add(1)
		defer running.Done()
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	done := make(chan error)
	go func() {
		_, err := modgraph.FromGoMod(ctx, []byte(gomod("example.com/main", "1.21", "example.com/a@v1.0.0", "example.com/b@v1.0.0")), fetch, modgraph.Options{})
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	running.Wait()
}

func TestFromGoSum(t *testing.T) {
	const h1 = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	const h2 = "h1:frcCV1k9oG9oKj3dpUqdJg1PxqT2RSN7XKdLCPjaYaY="
	gosum := "example.com/b v1.0.0 " + h1 + "\n" +
		"example.com/b v1.0.0/go.mod " + h2 + "\n" +
		"\n" +
		"example.com/a v0.9.0/go.mod " + h2 + "\n" +
		"example.com/a v1.0.0+incompatible " + h1 + "\n" +
		"example.com/a v1.0.0+incompatible " + h1 + "\n" // duplicates happen
	g, err := modgraph.FromGoSum([]byte(gosum))
	if err != nil {
		t.Fatal(err)
	}
	check(t, "GoMods", g.GoMods, "example.com/a@v0.9.0", "example.com/b@v1.0.0")
	check(t, "Zips", g.Zips, "example.com/a@v1.0.0+incompatible", "example.com/b@v1.0.0")
	want := map[module.Version]string{
		{Path: "example.com/b", Version: "v1.0.0"}:                                  h1,
		modgraph.GoModKey(module.Version{Path: "example.com/b", Version: "v1.0.0"}): h2,
		{Path: "example.com/a", Version: "v0.9.0/go.mod"}:                           h2,
		{Path: "example.com/a", Version: "v1.0.0+incompatible"}:                     h1,
	}
	if len(g.Sums) != len(want) {
		t.Errorf("Sums = %v, want %v", g.Sums, want)
	}
	for k, v := range want {
		if g.Sums[k] != v {
			t.Errorf("Sums[%v] = %q, want %q", k, g.Sums[k], v)
		}
	}

	for _, bad := range []string{
		"example.com/a v1.0.0\n",
		"example.com/a v1.0.0 " + h1 + " extra\n",
		"example.com/a v1.0 " + h1 + "\n",
		"example.com/a latest " + h1 + "\n",
		"../a v1.0.0 " + h1 + "\n",
		"example.com/a v1.0.0/go.mod/go.mod " + h1 + "\n",
		"example.com/a v1.0.0 h2:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
		"example.com/a v1.0.0 h1:abc\n",
		"example.com/a v1.0.0 " + h1 + "\nexample.com/a v1.0.0 " + h2 + "\n",
	} {
		if g, err := modgraph.FromGoSum([]byte(bad)); err == nil {
			t.Errorf("FromGoSum(%q) = %+v, want an error", bad, g)
		}
	}
}

func TestMerge(t *testing.T) {
	a, _ := modgraph.FromGoSum([]byte("example.com/a v1.0.0 h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	b := &modgraph.Graph{
		GoMods: []module.Version{{Path: "example.com/a", Version: "v1.0.0"}},
		Zips:   []module.Version{{Path: "example.com/a", Version: "v1.0.0"}, {Path: "example.com/0", Version: "v0.1.0"}},
	}
	b.Merge(a)
	check(t, "GoMods", b.GoMods, "example.com/a@v1.0.0")
	check(t, "Zips", b.Zips, "example.com/0@v0.1.0", "example.com/a@v1.0.0")
	if len(b.Sums) != 1 {
		t.Errorf("Sums = %v, want a's one hash", b.Sums)
	}
	b.Merge(nil)
}
