package gitsource

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"

	"github.com/modgate/modgate/internal/testenv/gitserver"
)

// infoDoc is a .info document, Origin included.
type infoDoc struct {
	Version string
	Time    time.Time
	Origin  *gitserver.Origin
}

func parseInfo(t *testing.T, data []byte) infoDoc {
	t.Helper()
	var d infoDoc
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("bad .info %q: %v", data, err)
	}
	return d
}

// TestMatchesGoCommand asks the source and the real go command (direct
// mode, fresh module cache) the same questions about every module of the
// corpus and wants the same answers: the version lists, @latest, each
// query's version, time and origin, and for each version the go.mod bytes
// and the zip bytes (and so its h1). A query the go command cannot
// resolve must be not found here, with the go command's wording.
func TestMatchesGoCommand(t *testing.T) {
	c := buildCorpus(t)
	e := newEnv(t, c.srv, c.lookup)

	// The source answers while the go command runs, once per
	// repository (each with a fresh module cache), a few at a time: they
	// are independent, and the go command is slow.
	mineDone := make(chan *answers)
	go func() { mineDone <- ask(e.src, c.mods) }()
	theirs := askGo(t, c)
	mine := <-mineDone

	var args, paths []string
	for _, m := range c.mods {
		paths = append(paths, m.path)
		for _, q := range m.queries {
			args = append(args, m.path+"@"+q)
		}
	}
	checked := map[string]bool{} // module@version whose files were compared
	for _, arg := range args {
		path, _, _ := strings.Cut(arg, "@")
		d := theirs.downloads[arg]
		t.Run(arg, func(t *testing.T) {
			if d.Path != path {
				t.Fatalf("the go command's answer to %s is for %s", arg, d.Path)
			}
			got, err := mine.info[arg].data, mine.info[arg].err
			if d.Error != "" {
				if !isNotFound(err) {
					t.Fatalf("Info = %s, %v; the go command: %s; want a not-found error", got, err, d.Error)
				}
				if err.Error() != d.Error {
					t.Errorf("error wording\n got: %s\nwant: %s", err, d.Error)
				}
				return
			}
			if err != nil {
				t.Fatalf("Info: %v; the go command answers %s", err, d.Version)
			}
			compareInfo(t, got, d)

			key := path + "@" + d.Version
			if checked[key] {
				return
			}
			checked[key] = true
			f, ok := mine.files[key]
			if !ok {
				t.Fatalf("no files asked for %s", key)
			}
			compareFiles(t, f, d)
		})
	}

	for _, path := range paths {
		t.Run(path+"/list", func(t *testing.T) {
			want := theirs.lists[path]
			if want.Path != path {
				t.Fatalf("no go list answer for %s", path)
			}
			got, err := mine.lists[path].list, mine.lists[path].err
			if want.Error != nil {
				if !isNotFound(err) {
					t.Fatalf("List = %v, %v; the go command: %s", got, err, want.Error.Err)
				}
				return
			}
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			semver.Sort(got)
			if !slices.Equal(got, want.Versions) && len(got)+len(want.Versions) > 0 {
				t.Errorf("List = %q, the go command lists %q", got, want.Versions)
			}
		})
		t.Run(path+"/latest", func(t *testing.T) {
			want := theirs.latest[path]
			if want.Path != path {
				t.Fatalf("no go list answer for %s@latest", path)
			}
			got, err := mine.latest[path].data, mine.latest[path].err
			if want.Error != nil {
				if !isNotFound(err) {
					t.Fatalf("Latest = %s, %v; the go command: %s", got, err, want.Error.Err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Latest: %v; the go command answers %s", err, want.Version)
			}
			info := parseInfo(t, got)
			if info.Version != want.Version || want.Time == nil || !info.Time.Equal(*want.Time) {
				t.Errorf("Latest = %s %s, the go command answers %s %v", info.Version, info.Time, want.Version, want.Time)
			}
			if want.Origin == nil || info.Origin == nil || info.Origin.Hash != want.Origin.Hash {
				t.Errorf("Latest origin = %+v, the go command's %+v", info.Origin, want.Origin)
			}
		})
	}
}

// goAnswers are the go command's answers to the corpus' questions.
type goAnswers struct {
	downloads map[string]gitserver.Download // by "path@query"
	lists     map[string]gitserver.Module   // by path
	latest    map[string]gitserver.Module   // by path
}

// askGo runs the go command for the corpus: for each repository, one `go
// mod download` of every query of its modules (in order: the go command
// answers some queries differently once it has the repository), one `go
// list -versions` and one `go list @latest`, with a fresh module cache.
func askGo(t *testing.T, c *corpus) *goAnswers {
	t.Helper()
	var repos []string
	byRepo := map[string][]modQueries{}
	for _, m := range c.mods {
		if byRepo[m.repo] == nil {
			repos = append(repos, m.repo)
		}
		byRepo[m.repo] = append(byRepo[m.repo], m)
	}
	type result struct {
		args      []string
		paths     []string
		downloads []gitserver.Download
		lists     []gitserver.Module
		latest    []gitserver.Module
		err       error
	}
	results := make([]result, len(repos))
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	for i, repo := range repos {
		g := gitserver.GoDirect(t, c.srv)
		res := &results[i]
		for _, m := range byRepo[repo] {
			res.paths = append(res.paths, m.path)
			for _, q := range m.queries {
				res.args = append(res.args, m.path+"@"+q)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if res.downloads, res.err = g.TryDownload(res.args...); res.err != nil {
				return
			}
			if res.lists, res.err = g.TryVersions(res.paths...); res.err != nil {
				return
			}
			res.latest, res.err = g.TryLatest(res.paths...)
		}()
	}
	wg.Wait()
	a := &goAnswers{downloads: map[string]gitserver.Download{}, lists: map[string]gitserver.Module{}, latest: map[string]gitserver.Module{}}
	for _, res := range results {
		if res.err != nil {
			t.Fatal(res.err)
		}
		for i, arg := range res.args {
			a.downloads[arg] = res.downloads[i]
		}
		for _, m := range res.lists {
			a.lists[m.Path] = m
		}
		for _, m := range res.latest {
			a.latest[m.Path] = m
		}
	}
	return a
}

// answers are the source's answers to the corpus' questions.
type answers struct {
	info   map[string]answer // by "path@query"
	files  map[string]answer // by "path@version": go.mod in data, zip in zip
	lists  map[string]answer // by path
	latest map[string]answer // by path
}

type answer struct {
	data, zip []byte
	list      []string
	err       error
}

// ask asks src everything about mods: each query's .info, the go.mod and
// zip of every version an .info names, each module's list and @latest.
func ask(src *Source, mods []modQueries) *answers {
	ctx := context.Background()
	a := &answers{info: map[string]answer{}, files: map[string]answer{}, lists: map[string]answer{}, latest: map[string]answer{}}
	for _, m := range mods {
		for _, q := range m.queries {
			data, err := src.Info(ctx, m.path, q)
			a.info[m.path+"@"+q] = answer{data: data, err: err}
			var doc infoDoc
			if err != nil || json.Unmarshal(data, &doc) != nil {
				continue
			}
			key := m.path + "@" + doc.Version
			if _, ok := a.files[key]; ok {
				continue
			}
			var f answer
			f.data, f.err = src.GoMod(ctx, m.path, doc.Version)
			if f.err == nil {
				var rc io.ReadCloser
				if rc, f.err = src.Zip(ctx, m.path, doc.Version); f.err == nil {
					f.zip, f.err = io.ReadAll(rc)
					if cerr := rc.Close(); f.err == nil {
						f.err = cerr
					}
				}
			}
			a.files[key] = f
		}
		list, err := src.List(ctx, m.path)
		a.lists[m.path] = answer{list: list, err: err}
		data, err := src.Latest(ctx, m.path)
		a.latest[m.path] = answer{data: data, err: err}
	}
	return a
}

// compareInfo compares an .info with the go command's answer to the same
// query: the version, the time it wrote into its module cache, and the
// origin it reported (less what describes the tag set, which the source
// does not compute, and the ref of a pseudo-version, which the go command
// does not store).
func compareInfo(t *testing.T, gotData []byte, d gitserver.Download) {
	t.Helper()
	got := parseInfo(t, gotData)
	if got.Version != d.Version {
		t.Fatalf("Version = %s, the go command's %s", got.Version, d.Version)
	}
	data, err := os.ReadFile(d.Info)
	if err != nil {
		t.Fatal(err)
	}
	want := parseInfo(t, data)
	if !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
		t.Errorf("Time = %v, the go command's %v", got.Time, want.Time)
	}
	if d.Origin == nil || got.Origin == nil {
		t.Fatalf("Origin = %+v, the go command's %+v", got.Origin, d.Origin)
	}
	wantOrigin := *d.Origin
	wantOrigin.TagPrefix, wantOrigin.TagSum, wantOrigin.RepoSum = "", "", ""
	if module.IsPseudoVersion(d.Version) {
		wantOrigin.Ref = ""
	}
	if *got.Origin != wantOrigin {
		t.Errorf("Origin = %+v, the go command's %+v", *got.Origin, wantOrigin)
	}
	// Where the go command stored this very answer (the first query of
	// the version), the bytes are the same too.
	if want.Origin != nil && *want.Origin == wantOrigin && !bytes.Equal(gotData, data) {
		t.Errorf(".info = %s, the go command stored %s", gotData, data)
	}
}

// compareFiles compares the go.mod and the zip of d's version, byte for
// byte, with the files the go command put into its module cache.
func compareFiles(t *testing.T, f answer, d gitserver.Download) {
	t.Helper()
	if f.err != nil {
		t.Fatalf("GoMod or Zip: %v", f.err)
	}
	wantMod, err := os.ReadFile(d.GoMod)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.data, wantMod) {
		t.Errorf("go.mod = %q, the go command's %q", f.data, wantMod)
	}
	wantZip, err := os.ReadFile(d.Zip)
	if err != nil {
		t.Fatal(err)
	}
	h1, err := dirhash.HashZip(writeTemp(t, f.zip), dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	if h1 != d.Sum {
		t.Errorf("zip h1 = %s, the go command's %s", h1, d.Sum)
	}
	if !bytes.Equal(f.zip, wantZip) {
		t.Errorf("zip differs from the go command's (%d bytes, want %d)", len(f.zip), len(wantZip))
	}
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "*.zip")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// TestZipShapes checks that the corpus holds the shapes the comparison
// with the go command is about, as the go command treats them, so that
// TestMatchesGoCommand cannot pass on a corpus that lost them: CRLF kept,
// eol attributes applied, export-ignore and export-subst not, vendored
// packages, nested modules and symlinks left out, the root LICENSE
// added to a module in a subdirectory.
func TestZipShapes(t *testing.T) {
	c := buildCorpus(t)
	e := newEnv(t, c.srv, c.lookup)
	want := map[string]map[string]string{
		host + "/team/basic@v1.2.0": {
			".gitattributes":     "ignored.txt export-ignore\nsubst.txt export-subst\neol.txt text eol=crlf\n",
			"LICENSE":            "basic license\n",
			"a.go":               "package basic\n",
			"b.go":               "package basic\n\nconst B = 1\n",
			"crlf.go":            "package basic\r\n\r\nconst CRLF = 1\r\n",
			"crlf.txt":           "line one\r\nline two\r\n",
			"eol.txt":            "stored with LF, archived with CRLF\r\n",
			"go.mod":             "module git.corp.test/team/basic\n\ngo 1.21\n",
			"ignored.txt":        "export-ignore is disabled by the go command\n",
			"sub/s.go":           "package sub\n",
			"subst.txt":          "$Format:%H$\n",
			"vendor/modules.txt": "# example.com/dep v1.0.0\n## explicit\nexample.com/dep\n",
		},
		host + "/team/mono/sub/dir@v1.2.3": {
			"d.go":    "package dir\n",
			"go.mod":  "module git.corp.test/team/mono/sub/dir\n",
			"LICENSE": "mono license\n",
		},
		host + "/team/legacy@v2.0.0+incompatible": {
			"a.go": "package legacy\n",
			"b.go": "package legacy\n",
		},
	}
	for mv, files := range want {
		path, version, _ := strings.Cut(mv, "@")
		rc, err := e.src.Zip(context.Background(), path, version)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range zr.File {
			r, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			got[strings.TrimPrefix(f.Name, mv+"/")] = string(b)
		}
		if !maps.Equal(got, files) {
			t.Errorf("%s zip holds %q\nwant %q", mv, got, files)
		}
	}
}
