package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGraphFixtures checks that the projects in testdata are what the graph
// mode and docs/benchmarks.md say: a go.mod the go command accepts as is
// and a complete go.sum of a graph of a few dozen modules.
func TestGraphFixtures(t *testing.T) {
	for _, name := range []string{"webservice", "cli"} {
		p, err := loadGraphProject(filepath.Join("testdata", name, "go.mod"), filepath.Join("testdata", name, "go.sum"))
		if err != nil {
			t.Fatal(err)
		}
		if p.name != name {
			t.Errorf("name %q, want %q", p.name, name)
		}
		if p.zips < 30 || p.zips > 80 || p.mods < p.zips || len(p.zipPaths) != p.zips {
			t.Errorf("%s: go.sum lists %d zips of %d modules and %d go.mod files; want 30 to 80 zips, one version each, and their go.mod files", name, p.zips, len(p.zipPaths), p.mods)
		}
	}
}

func TestLoadGraphProjectRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	sum := write("go.sum", "example.com/a v1.0.0 h1:AAAA=\nexample.com/a v1.0.0/go.mod h1:BBBB=\n")
	for _, tc := range []struct{ gomod, gosum, why string }{
		{"module example.com/m\nreplace example.com/a => ../a\n", sum, "a directory replacement"},
		{"go 1.21\n", sum, "no module line"},
		{"module example.com/m\n", write("bad.sum", "example.com/a v1.0.0\n"), "a malformed go.sum"},
		{"module example.com/m\n", write("mods.sum", "example.com/a v1.0.0/go.mod h1:BBBB=\n"), "no zip in go.sum"},
	} {
		if _, err := loadGraphProject(write("go.mod", tc.gomod), tc.gosum); err == nil {
			t.Errorf("accepted %s", tc.why)
		}
	}
}
