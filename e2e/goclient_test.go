package e2e

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// allVersions is every module version of the standard fixture the go
// command can download, with the fixture's package name.
var allVersions = []struct{ path, version string }{
	{"example.com/m", "v1.0.0"},
	{"example.com/m", "v1.1.0"},
	{"example.com/m", "v1.2.0-beta.1"},
	{"example.com/m", pseudoM},
	{"example.com/m/v2", "v2.1.0"},
	{"example.com/m/nested/sub", "v0.1.0"},
	{"example.com/Upper/Mod", "v1.0.0"},
	{"example.com/pseudo", pseudoOnly},
	{"example.com/inc", incompat},
}

// TestGoModDownload checks that `go mod download -json` through modgate
// gets every kind of version, with go.sum hashes equal to the ones
// computed locally over the fixture files, and byte-identical zips.
func TestGoModDownload(t *testing.T) {
	e := newStdEnv(t)
	work := t.TempDir()
	goenv := goEnv(work, e.proc.URL)

	args := []string{"mod", "download", "-json"}
	for _, mv := range allVersions {
		args = append(args, mv.path+"@"+mv.version)
	}
	out := mustGo(t, work, goenv, args...)

	type dl struct {
		Path, Version, Error, Info, GoMod, Zip, Sum, GoModSum string
	}
	got := map[string]dl{}
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var d dl
		if err := dec.Decode(&d); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding go mod download output: %v\n%s", err, out)
		}
		got[d.Path+"@"+d.Version] = d
	}
	for _, mv := range allVersions {
		d, ok := got[mv.path+"@"+mv.version]
		if !ok {
			t.Errorf("%s@%s: not in go mod download output", mv.path, mv.version)
			continue
		}
		if d.Error != "" {
			t.Errorf("%s@%s: error %s", mv.path, mv.version, d.Error)
			continue
		}
		zipData := e.fixture(mv.path, mv.version, "zip")
		modData := e.fixture(mv.path, mv.version, "mod")
		if want := h1Zip(t, zipData); d.Sum != want {
			t.Errorf("%s@%s: Sum %s, want %s", mv.path, mv.version, d.Sum, want)
		}
		if want := h1Mod(t, modData); d.GoModSum != want {
			t.Errorf("%s@%s: GoModSum %s, want %s", mv.path, mv.version, d.GoModSum, want)
		}
		if b, err := os.ReadFile(d.Zip); err != nil || string(b) != string(zipData) {
			t.Errorf("%s@%s: downloaded zip %s differs from the fixture (err %v)", mv.path, mv.version, d.Zip, err)
		}
		if b, err := os.ReadFile(d.GoMod); err != nil || string(b) != string(modData) {
			t.Errorf("%s@%s: downloaded go.mod differs from the fixture (err %v)", mv.path, mv.version, err)
		}
	}
	// The uppercase path is stored case-encoded.
	if _, err := os.Stat(e.storedFile("example.com/Upper/Mod", "v1.0.0", "zip")); err != nil {
		t.Errorf("uppercase module zip not stored case-encoded: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.dataDir, "mod", "example.com", "!upper", "!mod", "@v", "v1.0.0.zip")); err != nil {
		t.Errorf("uppercase module not stored under example.com/!upper/!mod: %v", err)
	}
}

// TestGoGetAndListVersions runs `go get` (explicit version, then upgrade to
// latest) and `go list -m -versions` through modgate.
func TestGoGetAndListVersions(t *testing.T) {
	e := newStdEnv(t)
	work := t.TempDir()
	app := filepath.Join(work, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(app, "go.mod"), []byte("module example.com/app\n\ngo 1.21\n"))
	goenv := goEnv(work, e.proc.URL)

	mustGo(t, app, goenv, "get", "example.com/m@v1.0.0", "example.com/Upper/Mod@v1.0.0")
	mustGo(t, app, goenv, "get", "example.com/m", "example.com/m/v2", "example.com/inc@"+incompat, "example.com/pseudo@"+pseudoOnly)
	gomod, err := os.ReadFile(filepath.Join(app, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"example.com/m v1.1.0", // highest release, not the v1.2.0-beta.1 pre-release nor the pseudo-version
		"example.com/m/v2 v2.1.0",
		"example.com/Upper/Mod v1.0.0",
		"example.com/inc " + incompat,
		"example.com/pseudo " + pseudoOnly,
	} {
		if !strings.Contains(string(gomod), want) {
			t.Errorf("go.mod lacks %q:\n%s", want, gomod)
		}
	}
	checkGoSum(t, e, filepath.Join(app, "go.sum"), []string{
		"example.com/m@v1.1.0", "example.com/m/v2@v2.1.0", "example.com/Upper/Mod@v1.0.0",
		"example.com/inc@" + incompat, "example.com/pseudo@" + pseudoOnly,
	})

	// go list -m -versions: releases and pre-releases, never pseudo-versions.
	for _, tc := range []struct{ path, want string }{
		{"example.com/m", "example.com/m v1.0.0 v1.1.0 v1.2.0-beta.1"},
		{"example.com/m/v2", "example.com/m/v2 v2.0.0 v2.1.0"},
		{"example.com/Upper/Mod", "example.com/Upper/Mod v1.0.0"},
		{"example.com/pre", "example.com/pre v0.1.0-alpha v0.2.0-rc.1"},
		{"example.com/pseudo", "example.com/pseudo"},
	} {
		out := strings.TrimSpace(mustGo(t, app, goenv, "list", "-m", "-versions", tc.path))
		if out != tc.want {
			t.Errorf("go list -m -versions %s = %q, want %q", tc.path, out, tc.want)
		}
	}
	// Fetching a pseudo-version must not make it appear in the list.
	mustGet(t, e.url(vPath("example.com/m", pseudoM, "zip")))
	list := string(mustGet(t, e.url(modPath("example.com/m", "@v/list"))))
	if strings.Contains(list, pseudoM) || strings.Fields(list) == nil {
		t.Errorf("@v/list after fetching a pseudo-version = %q", list)
	}
}

// TestGoModTidy runs `go mod tidy` in a module importing packages of every
// kind of fixture module, resolving the missing ones through modgate.
func TestGoModTidy(t *testing.T) {
	e := newStdEnv(t)
	work := t.TempDir()
	app := filepath.Join(work, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	// The +incompatible and pseudo-version modules have no @latest a plain
	// static upstream could serve, so they are required explicitly; the
	// others are resolved by tidy.
	mustWrite(t, filepath.Join(app, "go.mod"), []byte(`module example.com/app

go 1.21

require (
	example.com/inc `+incompat+`
	example.com/pseudo `+pseudoOnly+`
)
`))
	mustWrite(t, filepath.Join(app, "app.go"), []byte(`package app

import (
	mod "example.com/Upper/Mod"
	"example.com/inc"
	"example.com/m"
	m2 "example.com/m/v2"
	"example.com/m/nested/sub"
	"example.com/pseudo"
)

var All = []string{mod.Version, inc.Version, m.Version, m2.Version, sub.Version, pseudo.Version}
`))
	goenv := goEnv(work, e.proc.URL)
	mustGo(t, app, goenv, "mod", "tidy")
	gomod, err := os.ReadFile(filepath.Join(app, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"example.com/Upper/Mod v1.0.0",
		"example.com/inc " + incompat,
		"example.com/m v1.1.0",
		"example.com/m/v2 v2.1.0",
		"example.com/m/nested/sub v0.1.0",
		"example.com/pseudo " + pseudoOnly,
	} {
		if !strings.Contains(string(gomod), want) {
			t.Errorf("go.mod after tidy lacks %q:\n%s", want, gomod)
		}
	}
	checkGoSum(t, e, filepath.Join(app, "go.sum"), []string{
		"example.com/Upper/Mod@v1.0.0", "example.com/inc@" + incompat, "example.com/m@v1.1.0",
		"example.com/m/v2@v2.1.0", "example.com/m/nested/sub@v0.1.0", "example.com/pseudo@" + pseudoOnly,
	})
	// The module builds against what modgate served.
	mustGo(t, app, goenv, "vet", ".")
}

// checkGoSum checks that go.sum has both lines of each path@version, with
// hashes equal to the ones computed over the fixture.
func checkGoSum(t *testing.T, e *env, file string, mvs []string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			sum[f[0]+" "+f[1]] = f[2]
		}
	}
	for _, mv := range mvs {
		path, version, _ := strings.Cut(mv, "@")
		if got, want := sum[path+" "+version], h1Zip(t, e.fixture(path, version, "zip")); got != want {
			t.Errorf("go.sum %s %s = %q, want %q", path, version, got, want)
		}
		if got, want := sum[path+" "+version+"/go.mod"], h1Mod(t, e.fixture(path, version, "mod")); got != want {
			t.Errorf("go.sum %s %s/go.mod = %q, want %q", path, version, got, want)
		}
	}
}
