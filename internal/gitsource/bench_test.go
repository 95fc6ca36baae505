package gitsource

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/testenv/gitserver"
)

// benchRepo serves "team/bench": a module of 300 files in 30 packages,
// v1.0.0 and, one commit later, v1.1.0.
func benchRepo(b *testing.B) (*gitserver.Server, staticLookup) {
	b.Helper()
	r := gitserver.NewRepo(b, "team/bench")
	r.Write("go.mod", "module git.corp.test/team/bench\n\ngo 1.21\n")
	r.Write("LICENSE", strings.Repeat("license text\n", 100))
	for p := range 30 {
		for f := range 10 {
			var body strings.Builder
			fmt.Fprintf(&body, "package p%d\n\n", p)
			for l := range 100 {
				fmt.Fprintf(&body, "const C%d_%d = %d // some text to make the file a few kilobytes\n", f, l, p*l)
			}
			r.Write(fmt.Sprintf("p%d/f%d.go", p, f), body.String())
		}
	}
	r.Commit("one")
	r.Tag("v1.0.0")
	r.Write("p0/extra.go", "package p0\n")
	r.Commit("two")
	r.Tag("v1.1.0")
	srv := gitserver.Start(b, gitserver.Options{Repos: []*gitserver.Repo{r}, User: fixtureUser, Password: fixturePassword})
	lookup := staticLookup{}
	lookup.add(srv, r)
	return srv, lookup
}

const benchPath = host + "/team/bench"

func readZip(b *testing.B, src *Source, version string) {
	b.Helper()
	rc, err := src.Zip(context.Background(), benchPath, version)
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkColdZip: the first version of a repository: a new mirror
// (clone) and its zip.
func BenchmarkColdZip(b *testing.B) {
	srv, lookup := benchRepo(b)
	e := newEnv(b, srv, lookup)
	for b.Loop() {
		b.StopTimer()
		dir, err := os.MkdirTemp(e.mirrors, "cold-")
		if err != nil {
			b.Fatal(err)
		}
		e.mirrors = dir
		src := e.newSource(b)
		b.StartTimer()
		readZip(b, src, "v1.0.0")
	}
}

// BenchmarkSecondVersion: another version of a repository already
// mirrored: no clone, just its zip.
func BenchmarkSecondVersion(b *testing.B) {
	srv, lookup := benchRepo(b)
	e := newEnv(b, srv, lookup)
	readZip(b, e.src, "v1.0.0")
	for b.Loop() {
		readZip(b, e.src, "v1.1.0")
	}
}

// BenchmarkGoDirectCold: `go mod download` of the first version in direct
// mode with a fresh module cache, for comparison with BenchmarkColdZip.
func BenchmarkGoDirectCold(b *testing.B) {
	srv, _ := benchRepo(b)
	for b.Loop() {
		b.StopTimer()
		g := gitserver.GoDirect(b, srv)
		b.StartTimer()
		goDownload(b, g, benchPath+"@v1.0.0")
	}
}

func goDownload(b *testing.B, g *gitserver.Go, query string) gitserver.Download {
	b.Helper()
	d := g.Download(query)
	if d[0].Error != "" {
		b.Fatal(d[0].Error)
	}
	return d[0]
}

// BenchmarkGoDirectSecondVersion: `go mod download` of another version
// once the go command has the repository (its vcs cache) and the first
// version, for comparison with BenchmarkSecondVersion. The version is
// removed from the module cache between runs.
func BenchmarkGoDirectSecondVersion(b *testing.B) {
	srv, _ := benchRepo(b)
	g := gitserver.GoDirect(b, srv)
	goDownload(b, g, benchPath+"@v1.0.0")
	for b.Loop() {
		d := goDownload(b, g, benchPath+"@v1.1.0")
		b.StopTimer()
		for _, f := range []string{d.Info, d.GoMod, d.Zip, strings.TrimSuffix(d.Zip, ".zip") + ".ziphash", strings.TrimSuffix(d.Zip, ".zip") + ".lock"} {
			os.Remove(f)
		}
		if err := os.RemoveAll(d.Dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
