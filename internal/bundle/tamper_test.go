package bundle

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/testenv"
)

// TestTamperedBundleRefused: every change to a bundle (a file, the
// manifest, a checksum database answer, its signature, the tar structure)
// fails the import with one line naming what is wrong, and the data dir
// gets nothing, not even a staging file.
func TestTamperedBundleRefused(t *testing.T) {
	f := newFixture(t)
	good, _ := f.export(t, f.options())

	bZip := func(n string) bool { return n == "mod/example.com/b/@v/v1.0.0.zip" }
	bMod := func(n string) bool { return n == "mod/example.com/b/@v/v1.0.0.mod" }
	bInfo := func(n string) bool { return n == "mod/example.com/b/@v/v1.0.0.info" }
	bLookup := func(n string) bool { return n == "sumdb/"+testDBName+"/lookup/example.com/b@v1.0.0" }
	aTile := func(n string) bool { return strings.HasPrefix(n, "sumdb/"+testDBName+"/tile/") }
	otherZip := testenv.MakeZip(t, modB.Path, modB.Version, map[string]string{
		"go.mod": "module example.com/b\n\ngo 1.21\n\nrequire example.com/c v1.1.0\n",
		"b.go":   "package b\n\n// Name has been changed.\nconst Name = \"evil\"\n",
	})
	otherZipH1 := zipH1(t, otherZip, modB.Path, modB.Version)
	otherMod := []byte("module example.com/b\n\ngo 1.21\n\nrequire example.com/c v1.0.0\n")
	otherModH1, _ := modcheck.HashGoMod(otherMod)

	setModule := func(t *testing.T, es []tarEntry, path string, fn func(*Module)) {
		m := manifestOf(t, es)
		for i := range m.Modules {
			if m.Modules[i].Path == path {
				fn(&m.Modules[i])
			}
		}
		setManifest(t, es, m)
	}

	cases := []struct {
		name   string
		change func(t *testing.T, es []tarEntry) []tarEntry
		want   []string // substrings of the error
	}{
		{"changed zip", func(t *testing.T, es []tarEntry) []tarEntry {
			es[entryNamed(t, es, bZip)].data = otherZip
			return es
		}, []string{"mod/example.com/b/@v/v1.0.0.zip", "has been changed"}},
		{"changed zip and manifest", func(t *testing.T, es []tarEntry) []tarEntry {
			es[entryNamed(t, es, bZip)].data = otherZip
			setModule(t, es, modB.Path, func(m *Module) { m.Zip = otherZipH1 })
			return es
		}, []string{"SECURITY ERROR", "zip of example.com/b@v1.0.0", otherZipH1}},
		{"damaged zip", func(t *testing.T, es []tarEntry) []tarEntry {
			// A byte of a file's compressed content: the h1 covers it.
			i := entryNamed(t, es, bZip)
			z := bytes.Clone(es[i].data)
			zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
			if err != nil {
				t.Fatal(err)
			}
			off, err := zr.File[0].DataOffset()
			if err != nil {
				t.Fatal(err)
			}
			z[off+2] ^= 0xff
			es[i].data = z
			return es
		}, []string{"mod/example.com/b/@v/v1.0.0.zip"}},
		{"changed go.mod", func(t *testing.T, es []tarEntry) []tarEntry {
			es[entryNamed(t, es, bMod)].data = otherMod
			return es
		}, []string{"mod/example.com/b/@v/v1.0.0.mod", "has been changed"}},
		{"changed go.mod and manifest", func(t *testing.T, es []tarEntry) []tarEntry {
			es[entryNamed(t, es, bMod)].data = otherMod
			setModule(t, es, modB.Path, func(m *Module) { m.Mod = otherModH1 })
			return es
		}, []string{"SECURITY ERROR", "go.mod of example.com/b@v1.0.0", otherModH1}},
		{"info of another version", func(t *testing.T, es []tarEntry) []tarEntry {
			es[entryNamed(t, es, bInfo)].data = []byte(`{"Version":"v1.0.1","Time":"2024-01-02T03:04:05Z"}`)
			return es
		}, []string{"mod/example.com/b/@v/v1.0.0.info", "v1.0.1"}},
		{"changed record", func(t *testing.T, es []tarEntry) []tarEntry {
			i := entryNamed(t, es, bLookup)
			m := manifestOf(t, es)
			for _, mod := range m.Modules {
				if mod.Path == modB.Path {
					es[i].data = bytes.Replace(es[i].data, []byte(mod.Zip), []byte(otherZipH1), 1)
				}
			}
			es[entryNamed(t, es, bZip)].data = otherZip
			setModule(t, es, modB.Path, func(m *Module) { m.Zip = otherZipH1 })
			return es
		}, []string{"proof of example.com/b@v1.0.0 does not verify", "nothing was imported"}},
		{"changed tile", func(t *testing.T, es []tarEntry) []tarEntry {
			i := entryNamed(t, es, aTile)
			d := bytes.Clone(es[i].data)
			d[0] ^= 1
			es[i].data = d
			return es
		}, []string{"does not verify", "nothing was imported"}},
		{"bad signature", func(t *testing.T, es []tarEntry) []tarEntry {
			i := entryNamed(t, es, bLookup)
			d := bytes.Clone(es[i].data)
			sig := bytes.LastIndex(d, []byte(testDBName+" ")) + len(testDBName) + 10
			d[sig] ^= 'A' ^ 'B'
			es[i].data = d
			return es
		}, []string{"example.com/b@v1.0.0", "nothing was imported"}},
		{"manifest tree not signed", func(t *testing.T, es []tarEntry) []tarEntry {
			m := manifestOf(t, es)
			m.SumDB.Tree = strings.Replace(m.SumDB.Tree, "\n4\n", "\n5\n", 1)
			setManifest(t, es, m)
			return es
		}, []string{"bundle's tree"}},
		{"answer missing", func(t *testing.T, es []tarEntry) []tarEntry {
			return removeEntry(t, es, aTile)
		}, []string{"truncated or incomplete", "sumdb/" + testDBName + "/tile/"}},
		{"answer missing from the manifest too", func(t *testing.T, es []tarEntry) []tarEntry {
			i := entryNamed(t, es, aTile)
			m := manifestOf(t, es)
			name := strings.TrimPrefix(es[i].hdr.Name, "sumdb/"+testDBName+"/")
			for j, p := range m.Proofs {
				if p == name {
					m.Proofs = append(m.Proofs[:j], m.Proofs[j+1:]...)
					break
				}
			}
			setManifest(t, es, m)
			return removeEntry(t, es, aTile)
		}, []string{"lacks the checksum database answer tile/", "nothing was imported"}},
		{"module file missing", func(t *testing.T, es []tarEntry) []tarEntry {
			return removeEntry(t, es, bInfo)
		}, []string{"incomplete", "mod/example.com/b/@v/v1.0.0.info"}},
		{"entry not in the manifest", func(t *testing.T, es []tarEntry) []tarEntry {
			return append(es, regular("mod/example.com/evil/@v/v1.0.0.info", `{"Version":"v1.0.0"}`))
		}, []string{"mod/example.com/evil/@v/v1.0.0.info", "not in its manifest"}},
		{"parent directory", func(t *testing.T, es []tarEntry) []tarEntry {
			return append(es, regular("../evil", "x"))
		}, []string{`"../evil"`, "unsafe"}},
		{"climbing name", func(t *testing.T, es []tarEntry) []tarEntry {
			return append(es, regular("mod/../../evil", "x"))
		}, []string{`"mod/../../evil"`, "unsafe"}},
		{"absolute name", func(t *testing.T, es []tarEntry) []tarEntry {
			return append(es, regular("/etc/evil", "x"))
		}, []string{`"/etc/evil"`, "unsafe"}},
		{"symlink", func(t *testing.T, es []tarEntry) []tarEntry {
			i := entryNamed(t, es, bInfo)
			es[i] = tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: es[i].hdr.Name, Linkname: "/etc/passwd"}}
			return es
		}, []string{"mod/example.com/b/@v/v1.0.0.info", "not a regular file"}},
		{"directory", func(t *testing.T, es []tarEntry) []tarEntry {
			return append(es[:1], append([]tarEntry{{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "mod/", Mode: 0o755}}}, es[1:]...)...)
		}, []string{`"mod/"`, "not a regular file"}},
		{"duplicate entry", func(t *testing.T, es []tarEntry) []tarEntry {
			return append(es, es[entryNamed(t, es, bInfo)])
		}, []string{"mod/example.com/b/@v/v1.0.0.info", "appears twice"}},
		{"oversize info", func(t *testing.T, es []tarEntry) []tarEntry {
			es[entryNamed(t, es, bInfo)].data = bytes.Repeat([]byte(" "), maxInfoSize+1)
			return es
		}, []string{"mod/example.com/b/@v/v1.0.0.info", "the limit for it is 65536"}},
		{"oversize answer", func(t *testing.T, es []tarEntry) []tarEntry {
			es[entryNamed(t, es, bLookup)].data = bytes.Repeat([]byte("x"), maxProofSize+1)
			return es
		}, []string{"lookup/example.com/b@v1.0.0", "the limit for it is 1048576"}},
		{"manifest not first", func(t *testing.T, es []tarEntry) []tarEntry {
			es[0], es[1] = es[1], es[0]
			return es
		}, []string{"not a bundle", "manifest.json"}},
		{"manifest of another format", func(t *testing.T, es []tarEntry) []tarEntry {
			m := manifestOf(t, es)
			m.Format = 2
			setManifest(t, es, m)
			return es
		}, []string{"format 2"}},
		{"manifest with an unknown field", func(t *testing.T, es []tarEntry) []tarEntry {
			es[0].data = append([]byte(`{"extra":1,`), es[0].data[1:]...)
			return es
		}, []string{"manifest", "extra"}},
		{"too many modules", func(t *testing.T, es []tarEntry) []tarEntry {
			m := manifestOf(t, es)
			for i := len(m.Modules); i <= maxModules; i++ {
				m.Modules = append(m.Modules, Module{Path: fmt.Sprintf("example.com/m%d", i), Version: "v1.0.0", Mod: otherModH1})
			}
			setManifest(t, es, m)
			return es
		}, []string{"modules, the limit is 100000"}},
		{"too many answers", func(t *testing.T, es []tarEntry) []tarEntry {
			m := manifestOf(t, es)
			for i := range maxProofs(len(m.Modules)) {
				m.Proofs = append(m.Proofs, fmt.Sprintf("tile/8/0/%03d", i))
			}
			setManifest(t, es, m)
			return es
		}, []string{"checksum database answers for 4 modules, the limit is"}},
		{"invalid answer name", func(t *testing.T, es []tarEntry) []tarEntry {
			m := manifestOf(t, es)
			m.Proofs = append(m.Proofs, "latest")
			setManifest(t, es, m)
			return es
		}, []string{`invalid checksum database answer "latest"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := rewrite(t, good, func(es []tarEntry) []tarEntry { return c.change(t, es) })
			refused(t, f, b, c.want...)
		})
	}

	// Cut anywhere, a bundle is refused, whatever the cut hits.
	for _, n := range []int{0, 100, 511, 512, 700, len(good) / 3, len(good) / 2, len(good) - 1024 - 600} {
		t.Run(fmt.Sprintf("truncated to %d bytes", n), func(t *testing.T) {
			refused(t, f, good[:n])
		})
	}
}

// refused imports b into an empty data dir, and checks that it fails with
// one line mentioning each of want, and that nothing was stored.
func refused(t *testing.T, f *fixture, b []byte, want ...string) {
	t.Helper()
	st := newStore(t)
	_, err := importInto(t, st, f.sdb, b)
	if err == nil {
		t.Fatal("import succeeded")
	}
	msg := err.Error()
	t.Logf("refused: %s", msg)
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
	if files := storedFiles(t, st); len(files) != 0 {
		t.Errorf("a refused import stored %q", files)
	}
}

func regular(name, data string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data: []byte(data)}
}

func removeEntry(t *testing.T, es []tarEntry, match func(string) bool) []tarEntry {
	i := entryNamed(t, es, match)
	return append(es[:i], es[i+1:]...)
}

func zipH1(t *testing.T, z []byte, path, version string) string {
	t.Helper()
	h1, err := modcheck.HashZip(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	return h1
}

// TestBundleChangedBetweenPasses: a bundle file that changes after it was
// checked fails the import at the first changed file, which is not stored;
// what was stored before passed both passes.
func TestBundleChangedBetweenPasses(t *testing.T) {
	f := newFixture(t)
	good, _ := f.export(t, f.options())
	otherZip := testenv.MakeZip(t, modB.Path, modB.Version, map[string]string{"go.mod": "module example.com/b\n", "b.go": "package b\n"})
	bad := rewrite(t, good, func(es []tarEntry) []tarEntry {
		es[entryNamed(t, es, func(n string) bool { return n == "mod/example.com/b/@v/v1.0.0.zip" })].data = otherZip
		return es
	})
	r := &swappingReader{first: good, then: bad}
	st := newStore(t)
	_, err := Import(context.Background(), r, int64(len(good)), ImportOptions{DB: f.sdb, Store: st, ScratchDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "bundle changed during the import") {
		t.Fatalf("import of a bundle changed between the passes: %v", err)
	}
	if readStored(t, st, "mod/example.com/b/@v/v1.0.0.zip") != nil || readStored(t, st, "mod/example.com/b/@v/v1.0.0.ziphash") != nil {
		t.Error("the changed zip (or its hash) was stored")
	}
	if readStored(t, st, "mod/example.com/a/@v/v1.0.0.zip") == nil {
		t.Error("a's zip, before the change, was not stored")
	}
	for _, name := range storedFiles(t, st) {
		if strings.HasPrefix(name, ".tmp/") {
			t.Errorf("staging file left behind: %s", name)
		}
	}
}

// swappingReader serves first until it is read from the start a second
// time, then.
type swappingReader struct {
	first, then []byte
	mu          sync.Mutex
	starts      int
}

func (r *swappingReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	if off == 0 {
		r.starts++
	}
	b := r.first
	if r.starts > 1 {
		b = r.then
	}
	r.mu.Unlock()
	return bytes.NewReader(b).ReadAt(p, off)
}
