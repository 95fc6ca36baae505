package modcheck

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/modgate/modgate/internal/testenv"
)

// oldCheckZip is CheckZip as it was before the one-pass checker: x/mod's
// own CheckZip, then dirhash.HashZip, each opening the file and reading its
// central directory. It is the reference the new checker's verdicts and
// hashes are compared with.
func oldCheckZip(file, path, version string) (h1 string, err error) {
	mv := module.Version{Path: path, Version: version}
	cf, err := modzip.CheckZip(mv, file)
	if err != nil {
		return "", fmt.Errorf("invalid module zip: %v", err)
	}
	if err := cf.Err(); err != nil {
		return "", fmt.Errorf("invalid module zip: %v", err)
	}
	h1, err = dirhash.HashZip(file, dirhash.Hash1)
	if err != nil {
		return "", fmt.Errorf("hashing module zip: %v", err)
	}
	return h1, nil
}

// compareWithOld checks every way of checking and hashing the zip in file
// against the old checker and against x/mod, and reports any difference.
func compareWithOld(t *testing.T, file, path, version string) {
	t.Helper()
	oldH1, oldErr := oldCheckZip(file, path, version)
	h1, err := CheckZip(file, path, version)
	if (err == nil) != (oldErr == nil) || h1 != oldH1 {
		t.Fatalf("CheckZip = %q, %v; the old checker %q, %v", h1, err, oldH1, oldErr)
	}
	if err != nil && h1 != "" {
		t.Fatalf("CheckZip failed (%v) but returned hash %s", err, h1)
	}

	// The structure check alone gives x/mod's verdict.
	mv := module.Version{Path: path, Version: version}
	cf, structErr := modzip.CheckZip(mv, file)
	if structErr == nil {
		structErr = cf.Err()
	}
	noHashErr := CheckZipNoHash(file, path, version)
	if (noHashErr == nil) != (structErr == nil) {
		t.Fatalf("CheckZipNoHash: %v; modzip.CheckZip: %v", noHashErr, structErr)
	}

	// HashZip is dirhash.HashZip, for any zip.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	wantHash, wantErr := dirhash.HashZip(file, dirhash.Hash1)
	gotHash, gotErr := HashZip(bytes.NewReader(data), int64(len(data)))
	if (gotErr == nil) != (wantErr == nil) || gotHash != wantHash {
		t.Fatalf("HashZip = %q, %v; dirhash.HashZip %q, %v", gotHash, gotErr, wantHash, wantErr)
	}

	// Checking with the hash is checking without it, then hashing.
	if accepted := noHashErr == nil && gotErr == nil; accepted != (h1 != "") || (accepted && gotHash != h1) {
		t.Fatalf("CheckZip = %q, %v; CheckZipNoHash: %v; HashZip = %q, %v", h1, err, noHashErr, gotHash, gotErr)
	}

	// The number of goroutines changes nothing, errors included.
	if zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data))); err == nil {
		h, err := hashEntries(zr.File, 1)
		for _, w := range []int{2, 3, 8} {
			hw, errw := hashEntries(zr.File, w)
			if hw != h || fmt.Sprint(errw) != fmt.Sprint(err) {
				t.Fatalf("hashEntries with %d workers = %q, %v; with 1: %q, %v", w, hw, errw, h, err)
			}
		}
	}
}

// storedZip builds a zip whose files are stored uncompressed, so that
// their content can be damaged in place.
func storedZip(t testing.TB, files ...string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < len(files); i += 2 {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: files[i], Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[i+1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// damagedZips are zips whose central directory is sound and whose content
// is not: CheckZipNoHash accepts them, CheckZip and HashZip must not.
func damagedZips(t testing.TB) []seedZip {
	const p = "example.com/m@v1.0.0/"
	good := storedZip(t, p+"go.mod", "module example.com/m\n", p+"a.go", "package m // MARKER\n", p+"b.go", "package m\n")
	crc := bytes.Replace(good, []byte("MARKER"), []byte("MARKES"), 1)

	// A deflated file whose stream is cut short: its compressed size says
	// so, the central directory is intact.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create(p + "a.go")
	w.Write(bytes.Repeat([]byte("package m // deflated\n"), 200))
	zw.Close()
	deflated := buf.Bytes()
	cut := bytes.Clone(deflated)
	// Zero the middle of the compressed stream.
	body := 30 + len(p+"a.go")
	for i := body + 5; i < body+15; i++ {
		cut[i] = 0
	}
	return []seedZip{
		{"example.com/m", "v1.0.0", crc},
		{"example.com/m", "v1.0.0", cut},
	}
}

// lyingZip builds a zip of one stored file whose central directory
// declares size bytes for its content: the size checks see size, and
// reading the content fails unless it really has that many bytes.
func lyingZip(t testing.TB, name, content string, size uint64) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: name, Method: zip.Store, CRC32: crc32.ChecksumIEEE([]byte(content)),
		CompressedSize64: uint64(len(content)), UncompressedSize64: size,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(content))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeZipData(t *testing.T, data []byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "m.zip")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestCheckZipMatchesOld runs the fuzz seeds and the damaged zips through
// compareWithOld: each is a case where the verdict or the hash could drift.
func TestCheckZipMatchesOld(t *testing.T) {
	const p = "example.com/m@v1.0.0/"
	seeds := append(zipSeeds(t), damagedZips(t)...)
	seeds = append(seeds,
		// At and over the limits of go.mod and LICENSE, as declared in
		// the central directory (the structure checks read no more).
		seedZip{"example.com/m", "v1.0.0", lyingZip(t, p+"go.mod", "module example.com/m\n", modzip.MaxGoMod)},
		seedZip{"example.com/m", "v1.0.0", lyingZip(t, p+"go.mod", "module example.com/m\n", modzip.MaxGoMod+1)},
		seedZip{"example.com/m", "v1.0.0", lyingZip(t, p+"LICENSE", "MIT\n", modzip.MaxLICENSE)},
		seedZip{"example.com/m", "v1.0.0", lyingZip(t, p+"LICENSE", "MIT\n", modzip.MaxLICENSE+1)},
		seedZip{"example.com/m", "v1.0.0", lyingZip(t, p+"a.go", "package m\n", modzip.MaxZipFile+1)},
	)
	for i, s := range seeds {
		t.Run(fmt.Sprintf("%d-%s", i, s.path), func(t *testing.T) {
			compareWithOld(t, writeZipData(t, s.data), s.path, s.version)
		})
	}
}

func TestCheckZipDamagedContent(t *testing.T) {
	for i, s := range damagedZips(t) {
		file := writeZipData(t, s.data)
		if err := CheckZipNoHash(file, s.path, s.version); err != nil {
			t.Errorf("%d: CheckZipNoHash: %v (the central directory is sound)", i, err)
		}
		if h, err := CheckZip(file, s.path, s.version); err == nil || !strings.Contains(err.Error(), "invalid module zip: example.com/m@v1.0.0/a.go: ") {
			t.Errorf("%d: CheckZip = %q, %v; want an error naming the damaged file", i, h, err)
		}
		if h, err := HashZip(bytes.NewReader(s.data), int64(len(s.data))); err == nil {
			t.Errorf("%d: HashZip = %q, want an error", i, h)
		}
	}
}

// TestCheckZipModuleCache compares the checkers on real module zips: those
// under MODCHECK_ZIPS when it names a module cache's download directory (see
// BenchmarkCheckZip), else the zips of modgate's own dependencies, which
// every machine that builds modgate has in its module cache.
func TestCheckZipModuleCache(t *testing.T) {
	zips := zipsFromEnv(t)
	if zips == nil {
		zips = dependencyZips(t)
	}
	for _, z := range zips {
		t.Run(z.path+"@"+z.version, func(t *testing.T) {
			compareWithOld(t, writeZipData(t, z.data), z.path, z.version)
		})
	}
}

// synthModule is a module zip of realistic shape, big enough to be hashed
// by several goroutines: n files of compressible Go-like text.
func synthModule(t testing.TB, n, fileSize int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("func return if err != nil { } package import type struct interface for range := var const string int error byte ctx context fmt")
	files := map[string]string{"go.mod": "module example.com/synth\n\ngo 1.21\n"}
	for i := range n {
		var b strings.Builder
		for b.Len() < fileSize {
			b.WriteString(words[r.IntN(len(words))])
			if r.IntN(8) == 0 {
				b.WriteString("\n\t")
			} else {
				b.WriteByte(' ')
			}
		}
		files[fmt.Sprintf("pkg%d/f%d.go", i%17, i)] = b.String()
	}
	return testenv.MakeZip(t, "example.com/synth", "v1.0.0", files)
}

func TestCheckZipParallel(t *testing.T) {
	data := synthModule(t, 60, 20<<10) // 1.2 MB of files
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w := hashWorkers(zr.File); w != min(runtime.GOMAXPROCS(0), maxHashWorkers) {
		t.Fatalf("hashWorkers = %d for %d files of 1.2 MB", w, len(zr.File))
	}
	compareWithOld(t, writeZipData(t, data), "example.com/synth", "v1.0.0")

	// Damaged files among many: whatever the number of goroutines and
	// their timing, the error names the first damaged file in the zip.
	const p = "example.com/m@v1.0.0/"
	var files []string
	for i := range 100 {
		content := strings.Repeat(fmt.Sprintf("package m // %d\n", i), 1000)
		if i == 40 || i == 70 {
			content = "// MARKER\n" + content
		}
		files = append(files, fmt.Sprintf("%sf%03d.go", p, i), content)
	}
	damaged := storedZip(t, files...)
	damaged = bytes.ReplaceAll(damaged, []byte("// MARKER\n"), []byte("// MARKES\n"))
	file := writeZipData(t, damaged)
	compareWithOld(t, file, "example.com/m", "v1.0.0")
	for range 10 {
		_, err := CheckZip(file, "example.com/m", "v1.0.0")
		if err == nil || !strings.Contains(err.Error(), p+"f040.go: zip: checksum error") {
			t.Fatalf("CheckZip: %v; want the checksum error of f040.go", err)
		}
	}
}

// zipsFromEnv returns the module zips under $MODCHECK_ZIPS, a module
// cache's download directory (GOMODCACHE/cache/download), named by their
// module path and version; nil when it is not set.
// dependencyZips returns the zips of the modules modgate's go.mod requires,
// from the module cache. It fails the test when none is there: `go mod
// download` (run by .ci/run) puts them there.
func dependencyZips(t testing.TB) []seedZip {
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.ParseLax("go.mod", gomod, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	root := filepath.Join(strings.TrimSpace(string(out)), "cache", "download")
	var zips []seedZip
	for _, r := range f.Require {
		ep, err1 := module.EscapePath(r.Mod.Path)
		ev, err2 := module.EscapeVersion(r.Mod.Version)
		if err1 != nil || err2 != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(ep), "@v", ev+".zip"))
		if err != nil {
			continue // a dependency whose packages the build does not need has only its go.mod
		}
		zips = append(zips, seedZip{r.Mod.Path, r.Mod.Version, data})
	}
	if len(zips) == 0 {
		t.Fatalf("no zip of modgate's dependencies under %s; run go mod download", root)
	}
	return zips
}

func zipsFromEnv(t testing.TB) []seedZip {
	root := os.Getenv("MODCHECK_ZIPS")
	if root == "" {
		return nil
	}
	var zips []seedZip
	err := filepath.WalkDir(root, func(file string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(file, ".zip") {
			return err
		}
		rel, _ := filepath.Rel(root, file)
		ep, ev, ok := strings.Cut(filepath.ToSlash(rel), "/@v/")
		if !ok {
			return nil
		}
		path, err1 := module.UnescapePath(ep)
		version, err2 := module.UnescapeVersion(strings.TrimSuffix(ev, ".zip"))
		if err1 != nil || err2 != nil {
			return nil
		}
		data, err := os.ReadFile(file)
		zips = append(zips, seedZip{path, version, data})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(zips) == 0 {
		t.Fatalf("no module zips under MODCHECK_ZIPS=%s", root)
	}
	return zips
}

// BenchmarkCheckZip compares the old two-pass checker with the one-pass
// one, on one goroutine and on the default number, and with the structure
// check alone. cpu-ms/op is the process's CPU time per check, steadier than
// ns/op when other work shares the machine. It runs on the zips under
// MODCHECK_ZIPS=$(go env GOMODCACHE)/cache/download (or a smaller module
// cache filled with `go mod download`), else on a synthetic 8 MB module.
func BenchmarkCheckZip(b *testing.B) {
	zips := zipsFromEnv(b)
	if zips == nil {
		zips = []seedZip{{"example.com/synth", "v1.0.0", synthModule(b, 400, 20<<10)}}
	}
	for _, z := range zips {
		file := filepath.Join(b.TempDir(), "m.zip")
		if err := os.WriteFile(file, z.data, 0o644); err != nil {
			b.Fatal(err)
		}
		name := strings.ReplaceAll(z.path, "/", "_") + "@" + z.version
		run := func(what string, check func() error) {
			b.Run(name+"/"+what, func(b *testing.B) {
				b.SetBytes(int64(len(z.data)))
				cpu := processCPU()
				for b.Loop() {
					if err := check(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(processCPU()-cpu)/1e6/float64(b.N), "cpu-ms/op")
			})
		}
		run("old", func() error { _, err := oldCheckZip(file, z.path, z.version); return err })
		run("onepass-1", func() error {
			zc, err := openZip(file, z.path, z.version)
			if err != nil {
				return err
			}
			defer zc.close()
			_, err = hashEntries(zc.File, 1)
			return err
		})
		run("onepass", func() error { _, err := CheckZip(file, z.path, z.version); return err })
		run("nohash", func() error { return CheckZipNoHash(file, z.path, z.version) })
	}
}

// A zip file that cannot be opened is the checker's problem, not the zip's:
// the error keeps the *fs.PathError, so that the caller can tell it from an
// invalid zip and keep the file's path from clients.
func TestUnreadableZipIsLocalError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.zip")
	for name, check := range map[string]func() error{
		"CheckZip":       func() error { _, err := CheckZip(missing, "example.com/m", "v1.0.0"); return err },
		"CheckZipNoHash": func() error { return CheckZipNoHash(missing, "example.com/m", "v1.0.0") },
	} {
		err := check()
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			t.Errorf("%s of a missing file: %v, want an *fs.PathError", name, err)
		}
		if err != nil && strings.HasPrefix(err.Error(), "invalid module zip") {
			t.Errorf("%s of a missing file blames the zip: %v", name, err)
		}
	}
}
