package modgraph_test

import (
	"context"
	"slices"
	"testing"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/modgraph"
)

// wellFormed checks what every Graph promises: sorted lists without
// duplicates of valid, canonical module versions.
func wellFormed(t *testing.T, g *modgraph.Graph) {
	t.Helper()
	for _, vs := range [][]module.Version{g.GoMods, g.Zips} {
		sorted := slices.Clone(vs)
		module.Sort(sorted)
		if !slices.Equal(sorted, vs) || len(slices.Compact(sorted)) != len(vs) {
			t.Fatalf("not sorted or duplicated: %v", vs)
		}
		for _, m := range vs {
			if err := module.Check(m.Path, m.Version); err != nil || module.CanonicalVersion(m.Version) != m.Version {
				t.Fatalf("invalid version in graph: %v (%v)", m, err)
			}
		}
	}
}

func FuzzFromGoSum(f *testing.F) {
	f.Add([]byte("example.com/a v1.0.0 h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nexample.com/a v1.0.0/go.mod h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	f.Add([]byte("golang.org/x/text v0.14.0/go.mod h1:18ZOQIKpY8NJVqYksKHtTdi31H5itFRjB5/qKTNYzSU=\n\n\r\n"))
	f.Add([]byte("example.com/!a v2.0.0+incompatible h1:x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := modgraph.FromGoSum(data)
		if err != nil {
			return
		}
		wellFormed(t, g)
		if len(g.Sums) < max(len(g.GoMods), len(g.Zips)) {
			t.Fatalf("%d hashes for %d go.mod and %d zips", len(g.Sums), len(g.GoMods), len(g.Zips))
		}
	})
}

// FuzzFromGoMod parses a main go.mod and, for every version it reaches,
// one dependency go.mod: nothing panics, and a graph is well formed.
func FuzzFromGoMod(f *testing.F) {
	f.Add([]byte("module example.com/m\n\ngo 1.21\n\nrequire example.com/a v1.0.0\n"), []byte("module example.com/a\n\ngo 1.16\n\nrequire example.com/b v1.2.3\n"))
	f.Add([]byte("module example.com/m\nrequire (\n\texample.com/a v1.0.0\n)\nreplace example.com/a => example.com/b v1.0.0\nexclude example.com/a v1.1.0\n"), []byte("module example.com/b\nrequire example.com/a v1.1.0\nreplace example.com/a => ./a\n"))
	f.Add([]byte("module example.com/m\nreplace example.com/a v1.0.0 => ../a\nrequire example.com/a v1.0.0\n"), []byte(""))
	f.Fuzz(func(t *testing.T, main, dep []byte) {
		fetch := func(ctx context.Context, m module.Version) ([]byte, error) { return dep, nil }
		g, err := modgraph.FromGoMod(context.Background(), main, fetch, modgraph.Options{MaxModules: 100, Workers: 2})
		if err != nil {
			return
		}
		wellFormed(t, g)
	})
}
