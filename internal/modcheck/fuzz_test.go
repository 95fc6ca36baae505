package modcheck

// Fuzz targets for the checks that stand between an upstream's bytes and
// storage. Each asserts two things: no input makes a check panic (a panic
// would take down the request, or the server), and whatever a check accepts
// is really valid by an oracle independent of the check's own code: the go
// command's own rules, re-derived here from golang.org/x/mod and the
// standard library. FuzzCheckZip also holds the one-pass zip checker to the
// verdicts and hashes of x/mod's CheckZip and dirhash.HashZip. The seeds are realistic answers of real proxies plus
// the broken shapes upstreams are known to send.
//
// Run one with: go test -run '^$' -fuzz FuzzCheckZip -fuzztime 60s -fuzzminimizetime 5s ./internal/modcheck/
// (minimizing a new input with the default 60s stalls the run for minutes).
// Without -fuzz, `go test` runs the seeds and testdata/fuzz/ as unit tests.

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/modgate/modgate/internal/testenv"
)

func FuzzParseInfo(f *testing.F) {
	const (
		pseudo = "v1.2.1-0.20240102030405-0123456789ab"
		t0     = `"Time":"2024-01-02T03:04:05Z"`
	)
	for _, s := range []struct{ data, path, want string }{
		// What proxies serve: with and without Origin, for canonical
		// requests and for queries (want empty).
		{`{"Version":"v1.2.3",` + t0 + `}`, "example.com/m", "v1.2.3"},
		{`{"Version":"v1.2.3",` + t0 + `,"Origin":{"VCS":"git","URL":"https://example.com/m","Ref":"refs/tags/v1.2.3","Hash":"0123456789abcdef0123456789abcdef01234567"}}`, "example.com/m", "v1.2.3"},
		{`{"Version":"` + pseudo + `",` + t0 + `}`, "example.com/m", ""},
		{`{"Version":"v2.0.0+incompatible",` + t0 + `}`, "example.com/inc", "v2.0.0+incompatible"},
		{`{"Version":"v2.1.0",` + t0 + `}`, "example.com/m/v2", "v2.1.0"},
		{`{"Version":"v3.0.1",` + t0 + `}`, "gopkg.in/yaml.v3", "v3.0.1"},
		{`{"Version":"v0.2.0-rc.1",` + t0 + `}`, "example.com/Upper/Mod", ""},
		// What a broken or lying upstream sends.
		{`{"Version":"v1.2",` + t0 + `}`, "example.com/m", ""},
		{`{"Version":"v2.0.0",` + t0 + `}`, "example.com/m", ""},
		{`{"Version":"v1.1.0",` + t0 + `}`, "example.com/m", "v1.0.0"},
		{`{"Version":"main"}`, "example.com/m", ""},
		{`{"Version":""}`, "example.com/m", ""},
		{`{"Version":"v1.0.0","Time":"yesterday"}`, "example.com/m", ""},
		{`{"version":"v1.0.0","VERSION":"v1.0.1"}`, "example.com/m", ""},
		{`null`, "example.com/m", ""},
		{`[]`, "example.com/m", ""},
		{`<html><body>502 Bad Gateway</body></html>`, "example.com/m", "v1.0.0"},
		{"", "example.com/m", ""},
	} {
		f.Add([]byte(s.data), s.path, s.want)
	}
	f.Fuzz(func(t *testing.T, data []byte, path, want string) {
		info, err := ParseInfo(data, path, want)
		if err != nil {
			if info != (Info{}) {
				t.Fatalf("ParseInfo failed (%v) but returned %+v", err, info)
			}
			return
		}
		v := info.Version
		if !semver.IsValid(v) || module.CanonicalVersion(v) != v {
			t.Fatalf("accepted .info %q names non-canonical version %q", data, v)
		}
		if err := module.Check(path, v); err != nil {
			t.Fatalf("accepted .info %q for %s: version %s invalid for the path: %v", data, path, v, err)
		}
		if want != "" && v != want {
			t.Fatalf("accepted .info naming %s for a request of %s", v, want)
		}
		// The go command reads .info with encoding/json into a struct with
		// the same fields: it must see the same version and time.
		var client struct {
			Version string
			Time    time.Time
		}
		if err := json.Unmarshal(data, &client); err != nil || client.Version != v || !client.Time.Equal(info.Time) {
			t.Fatalf("accepted .info %q: the go command would read %+v, %v; ParseInfo read %+v", data, client, err, info)
		}
	})
}

// h1GoMod computes the go.sum hash of a go.mod from its definition (the
// dirhash.Hash1 summary of a one-file tree named go.mod), independently of
// the dirhash package that HashGoMod uses.
func h1GoMod(data []byte) string {
	sum := sha256.Sum256(data)
	summary := sha256.Sum256([]byte(fmt.Sprintf("%x  go.mod\n", sum)))
	return "h1:" + base64.StdEncoding.EncodeToString(summary[:])
}

func FuzzGoMod(f *testing.F) {
	for _, s := range []string{
		"module example.com/m\n",
		"module example.com/m\n\ngo 1.21\n",
		"module example.com/m/v2\n\ngo 1.22.0\n\ntoolchain go1.22.5\n\nrequire (\n\tgolang.org/x/mod v0.17.0\n\tgolang.org/x/sync v0.7.0 // indirect\n)\n",
		"// Deprecated: use example.com/n instead.\nmodule example.com/m\n\ngo 1.21\n",
		"module \"example.com/quoted\"\n",
		"module example.com/m\n\nreplace example.com/a => ../a\n\nreplace example.com/b v1.0.0 => example.com/c v1.1.0\n\nexclude example.com/d v0.1.0\n",
		"module example.com/m\n\nretract (\n\tv1.0.0 // published by mistake\n\t[v1.1.0, v1.2.0]\n)\n",
		"module example.com/m\n\ngo 1.24\n\ntool golang.org/x/tools/cmd/stringer\n\ngodebug default=go1.21\n\nignore ./node_modules\n",
		"module example.com/m\r\n\r\ngo 1.21\r\n",
		"\ufeffmodule example.com/m\n",
		"module example.com/m\n\ngo 1.999\n",
		"module example.com/m\n\nfuture-directive x y z\n", // ParseLax ignores unknown verbs
		"module golang.org/x/text\n",                       // the synthesized go.mod of a +incompatible version
		// Broken.
		"",
		"go 1.21\n",
		"<html>oops</html>",
		"module \"unterminated\n",
		"module example.com/m\nmodule example.com/n\n",
		"module example.com/m\nrequire example.com/a\n",
		"module\n",
		"module example.com/m\x00\n",
	} {
		f.Add([]byte(s), "example.com/m", "v1.0.0")
	}
	f.Fuzz(func(t *testing.T, data []byte, path, version string) {
		h, err := HashGoMod(data)
		if err != nil {
			t.Fatalf("HashGoMod: %v", err)
		}
		if want := h1GoMod(data); h != want {
			t.Fatalf("HashGoMod(%q) = %s, want %s", data, h, want)
		}

		if err := CheckGoMod(data, path, version); err != nil {
			return
		}
		// The go command reads a dependency's go.mod with ParseLax and
		// refuses one without a module line (modload's rawGoModSummary):
		// what passes here must pass there.
		mf, err := modfile.ParseLax("go.mod", data, nil)
		if err != nil {
			t.Fatalf("accepted go.mod %q does not parse: %v", data, err)
		}
		if mf.Module == nil {
			t.Fatalf("accepted go.mod %q has no module line", data)
		}
	})
}

// seedZip is one module zip file for the corpus.
type seedZip struct {
	path, version string
	data          []byte
}

// rawZip builds a zip with archive/zip directly, so that it can break the
// rules that modzip.Create enforces.
func rawZip(t testing.TB, names ...string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "package p // %s\n", n)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipSeeds(t testing.TB) []seedZip {
	const pseudo = "v0.0.0-20240102030405-abcdefabcdef"
	good := []seedZip{
		{"example.com/m", "v1.0.0", testenv.MakeZip(t, "example.com/m", "v1.0.0", map[string]string{
			"go.mod": "module example.com/m\n\ngo 1.21\n", "m.go": "package m\n", "LICENSE": "MIT\n",
			"internal/x/x.go": "package x\n", "testdata/a.txt": "data\n"})},
		{"example.com/m/v2", "v2.1.0", testenv.MakeZip(t, "example.com/m/v2", "v2.1.0", map[string]string{
			"go.mod": "module example.com/m/v2\n", "m.go": "package m\n"})},
		{"example.com/Upper/Mod", "v1.0.0", testenv.MakeZip(t, "example.com/Upper/Mod", "v1.0.0", map[string]string{
			"go.mod": "module example.com/Upper/Mod\n", "mod.go": "package mod\n"})},
		{"example.com/inc", "v2.0.0+incompatible", testenv.MakeZip(t, "example.com/inc", "v2.0.0+incompatible", map[string]string{
			"inc.go": "package inc\n"})},
		{"example.com/pseudo", pseudo, testenv.MakeZip(t, "example.com/pseudo", pseudo, map[string]string{
			"go.mod": "module example.com/pseudo\n", "p.go": "package pseudo\n"})},
		{"gopkg.in/yaml.v3", "v3.0.1", testenv.MakeZip(t, "gopkg.in/yaml.v3", "v3.0.1", map[string]string{
			"go.mod": "module gopkg.in/yaml.v3\n", "yaml.go": "package yaml\n"})},
		{"example.com/empty", "v0.1.0", testenv.MakeZip(t, "example.com/empty", "v0.1.0", map[string]string{})},
	}
	seeds := append([]seedZip(nil), good...)
	m := good[0].data
	seeds = append(seeds,
		seedZip{"example.com/m", "v1.0.0", m[:len(m)/2]},                                     // truncated download
		seedZip{"example.com/m", "v1.0.0", append(append([]byte(nil), m...), "trailing"...)}, // junk after the directory
		seedZip{"example.com/m", "v1.0.1", m},                                                // another version's zip
		seedZip{"example.com/n", "v1.0.0", m},                                                // another module's zip
		seedZip{"example.com/m", "v1.0", m},                                                  // non-canonical version
		seedZip{"example.com/m", "v2.0.0", m},                                                // version invalid for the path
		seedZip{"example.com/m", "v1.0.0", []byte("<html><body>502 Bad Gateway</body></html>")},
		seedZip{"example.com/m", "v1.0.0", nil},
		seedZip{"example.com/m", "v1.0.0", rawZip(t, "example.com/m@v1.0.0/a.go", "example.com/m@v1.0.0/a.go")},           // duplicate
		seedZip{"example.com/m", "v1.0.0", rawZip(t, "example.com/m@v1.0.0/A.go", "example.com/m@v1.0.0/a.go")},           // case-fold collision
		seedZip{"example.com/m", "v1.0.0", rawZip(t, "example.com/m@v1.0.0/../../etc/passwd")},                            // path traversal
		seedZip{"example.com/m", "v1.0.0", rawZip(t, "example.com/m@v1.0.0/x/", "example.com/m@v1.0.0/x/a.go")},           // directory entry
		seedZip{"example.com/m", "v1.0.0", rawZip(t, "example.com/m@v1.0.0/sub/go.mod", "example.com/m@v1.0.0/sub/a.go")}, // nested module
		seedZip{"example.com/m", "v1.0.0", rawZip(t, "example.com/m@v1.0.0/vendor/modules.txt", "example.com/m@v1.0.0/a.go")},
		seedZip{"example.com/m", "v1.0.0", rawZip(t, "example.com/m@v1.0.0/a.go", "/abs.go")},
		seedZip{"example.com/m", "v1.0.0", rawZip(t, "example.com/m@v1.0.0/a\n.go")},                                             // a name dirhash refuses
		seedZip{"example.com/m", "v1.0.0", storedZip(t, "example.com/m@v1.0.0/a.go", "one", "example.com/m@v1.0.0/a.go", "two")}, // duplicate, contents differ
	)
	// A damaged file shadowed by a later one of the same name, which is
	// the one dirhash.HashZip reads.
	shadowed := storedZip(t, "example.com/m@v1.0.0/a.go", "// MARKER\n", "example.com/m@v1.0.0/a.go", "two")
	seeds = append(seeds, seedZip{"example.com/m", "v1.0.0", bytes.Replace(shadowed, []byte("MARKER"), []byte("MARKES"), 1)})
	seeds = append(seeds, damagedZips(t)...)
	// Declared sizes over the limits, and one that lies about the content.
	seeds = append(seeds,
		seedZip{"example.com/m", "v1.0.0", lyingZip(t, "example.com/m@v1.0.0/go.mod", "module example.com/m\n", modzip.MaxGoMod+1)},
		seedZip{"example.com/m", "v1.0.0", lyingZip(t, "example.com/m@v1.0.0/a.go", "package m\n", modzip.MaxZipFile+1)},
		seedZip{"example.com/m", "v1.0.0", lyingZip(t, "example.com/m@v1.0.0/a.go", "package m\n", 100)},
	)
	return seeds
}

func FuzzCheckZip(f *testing.F) {
	for _, s := range zipSeeds(f) {
		f.Add(s.data, s.path, s.version)
	}
	// One file, rewritten for each input: a fuzz worker calls the target
	// sequentially, and a fresh temporary directory per input would cost
	// more than the checks.
	dir := f.TempDir()
	file := filepath.Join(dir, "m.zip")
	f.Fuzz(func(t *testing.T, data []byte, path, version string) {
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// The one-pass checker gives the verdict and the hash of the old
		// two-pass one (x/mod's CheckZip, then dirhash.HashZip), its
		// structure check alone x/mod's verdict, and HashZip the hash of
		// dirhash.HashZip, for any input.
		compareWithOld(t, file, path, version)
		h1, err := CheckZip(file, path, version)
		if err != nil {
			return
		}
		mv := module.Version{Path: path, Version: version}
		if err := module.Check(path, version); err != nil {
			t.Fatalf("accepted a zip for an invalid module version %s: %v", mv, err)
		}
		cf, err := modzip.CheckZip(mv, file)
		if err == nil {
			err = cf.Err()
		}
		if err != nil {
			t.Fatalf("accepted zip fails modzip.CheckZip: %v", err)
		}
		if want, err := dirhash.HashZip(file, dirhash.Hash1); err != nil || h1 != want {
			t.Fatalf("CheckZip hash %s, dirhash.HashZip %s, %v", h1, want, err)
		}
		// The go command extracts a downloaded zip with modzip.Unzip...
		out := filepath.Join(t.TempDir(), "x")
		if err := modzip.Unzip(out, mv, file); err != nil {
			t.Fatalf("accepted zip does not extract: %v", err)
		}
		// ...and `go mod verify` hashes the extracted tree, which must
		// agree with the hash of the zip's files.
		//
		// Directory entries are the one known exception: modzip allows
		// them (the go command downloads and extracts such a zip), and
		// dirhash.HashZip counts them, but they leave no file behind, so
		// `go mod verify` then reports the untouched tree as modified.
		// CheckZip accepts them as the go command does (zips made by the
		// go command never have any; see TestCheckZipDirectoryEntries), so
		// the tree is compared with the files only.
		prefix := path + "@" + version
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("accepted zip does not open: %v", err)
		}
		var names []string
		files := map[string]*zip.File{}
		for _, zf := range zr.File {
			if !strings.HasPrefix(zf.Name, prefix+"/") {
				t.Fatalf("accepted zip holds %q, outside %s/", zf.Name, prefix)
			}
			if !strings.HasSuffix(zf.Name, "/") {
				names = append(names, zf.Name)
				files[zf.Name] = zf
			}
		}
		hFiles, err := dirhash.Hash1(names, func(name string) (io.ReadCloser, error) { return files[name].Open() })
		if err != nil {
			t.Fatalf("hashing the files of an accepted zip: %v", err)
		}
		if len(names) == len(zr.File) && hFiles != h1 {
			t.Fatalf("zip without directory entries: files hash to %s, zip to %s", hFiles, h1)
		}
		if hd, err := dirhash.HashDir(out, prefix, dirhash.Hash1); err != nil || hd != hFiles {
			t.Fatalf("extracted tree hashes to %s (%v), the zip's files to %s", hd, err, hFiles)
		}
	})
}
