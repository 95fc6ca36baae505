package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"

	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/progress"
	"github.com/modgate/modgate/internal/store"
	isumdb "github.com/modgate/modgate/internal/sumdb"
	"github.com/modgate/modgate/internal/testenv"
)

const vtDBName = "verify.test.example"

// vtTree is a built GOPROXY tree of fixture modules.
type vtTree struct{ dir string }

func vtBuild(t *testing.T, mods []testenv.Module) vtTree {
	t.Helper()
	dir := t.TempDir()
	testenv.BuildTree(t, dir, mods)
	return vtTree{dir}
}

func (tr vtTree) file(t *testing.T, path, version, ext string) []byte {
	t.Helper()
	ep, _ := module.EscapePath(path)
	ev, _ := module.EscapeVersion(version)
	data, err := os.ReadFile(filepath.Join(tr.dir, filepath.FromSlash(ep), "@v", ev+"."+ext))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// gosum returns the go.sum lines of a module version in tr.
func (tr vtTree) gosum(t *testing.T, path, version string) string {
	t.Helper()
	ep, _ := module.EscapePath(path)
	ev, _ := module.EscapeVersion(version)
	zh, err := dirhash.HashZip(filepath.Join(tr.dir, filepath.FromSlash(ep), "@v", ev+".zip"), dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	mh, err := modcheck.HashGoMod(tr.file(t, path, version, "mod"))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, version, zh, path, version, mh)
}

func vtPut(t *testing.T, st store.Store, path, version, ext string, data []byte) string {
	t.Helper()
	key, err := store.VersionKey(path, version, ext)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return key
}

func vtMod(path, content string) testenv.Module {
	return testenv.Module{Path: path, Version: "v1.0.0", Files: map[string]string{"a.go": "package a\n\n// " + content + "\n"}}
}

func TestVerifyStore(t *testing.T) {
	const (
		good1  = "example.com/good"
		good2  = "example.com/Upper/good" // case-escaped in storage
		badZip = "example.com/badzip"
		badMod = "example.com/badmod"
		corp   = "corp.example.com/secret"
		absent = "example.com/absent" // not in the database
	)
	// What the database knows: the genuine modules.
	genuine := vtBuild(t, []testenv.Module{vtMod(good1, "one"), vtMod(good2, "two"), vtMod(badZip, "genuine"), vtMod(badMod, "genuine")})
	// What was stored: the same, except for a zip with other content and
	// a go.mod with an extra line.
	tampered := vtBuild(t, []testenv.Module{vtMod(badZip, "tampered")})
	others := vtBuild(t, []testenv.Module{vtMod(corp, "corp"), vtMod(absent, "absent")})

	recs := map[string]string{}
	for _, p := range []string{good1, good2, badZip, badMod} {
		recs[p+"@v1.0.0"] = genuine.gosum(t, p, "v1.0.0")
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, vtDBName)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reqs []string
	dbops := sumdb.NewTestServer(skey, func(path, vers string) ([]byte, error) {
		if lines, ok := recs[path+"@"+vers]; ok {
			return []byte(lines), nil
		}
		return nil, os.ErrNotExist
	})
	dbsrv := sumdb.NewServer(dbops)
	db := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.URL.Path)
		mu.Unlock()
		dbsrv.ServeHTTP(w, r)
	}))
	defer db.Close()

	st, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{good1, good2, badMod} {
		vtPut(t, st, p, "v1.0.0", "info", genuine.file(t, p, "v1.0.0", "info"))
		vtPut(t, st, p, "v1.0.0", "zip", genuine.file(t, p, "v1.0.0", "zip"))
		vtPut(t, st, p, "v1.0.0", "ziphash", []byte("h1:whatever\n"))
	}
	for _, p := range []string{good1, good2, badZip} {
		vtPut(t, st, p, "v1.0.0", "mod", genuine.file(t, p, "v1.0.0", "mod"))
	}
	tamperedMod := append(genuine.file(t, badMod, "v1.0.0", "mod"), "// extra line\n"...)
	vtPut(t, st, badMod, "v1.0.0", "mod", tamperedMod)
	tamperedZip := tampered.file(t, badZip, "v1.0.0", "zip")
	badZipKey := vtPut(t, st, badZip, "v1.0.0", "zip", tamperedZip)
	vtPut(t, st, badZip, "v1.0.0", "ziphash", []byte("h1:whatever\n"))
	for _, p := range []string{corp, absent} {
		vtPut(t, st, p, "v1.0.0", "mod", others.file(t, p, "v1.0.0", "mod"))
		vtPut(t, st, p, "v1.0.0", "zip", others.file(t, p, "v1.0.0", "zip"))
	}
	// Objects that are not module files are left alone.
	if err := st.Put(context.Background(), "meta/example.com/good/@/list", strings.NewReader("v1.0.0\n")); err != nil {
		t.Fatal(err)
	}

	dbDesc := isumdb.DB{Name: vtDBName, Key: vkey, URL: db.URL}
	var logs bytes.Buffer
	newVerifier := func() *isumdb.Verifier {
		return isumdb.NewVerifier(isumdb.Config{
			DB: dbDesc, Store: st, NoSumDB: "corp.example.com",
			Remote: isumdb.NewRemote(dbDesc, nil, &http.Client{Timeout: 10 * time.Second}),
			Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
	}
	defer func() {
		if t.Failed() {
			t.Logf("verifier logs:\n%s", logs.String())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	run := func(quarantine bool) (verifySummary, string) {
		t.Helper()
		var out, bar bytes.Buffer
		sum, err := verifyStore(ctx, st, newVerifier(), quarantine, &out, progress.New(&bar, "verifying"))
		if err != nil {
			t.Fatalf("verifyStore: %v\noutput:\n%s", err, out.String())
		}
		if !strings.Contains(bar.String(), "verifying:") {
			t.Errorf("no progress was reported: %q", bar.String())
		}
		return sum, out.String()
	}

	// 1. Report only.
	sum, out := run(false)
	want := verifySummary{checked: 12, ok: 6, skipped: 2, mismatched: 2, errors: 2}
	if sum != want {
		t.Errorf("summary = %+v, want %+v\noutput:\n%s", sum, want, out)
	}
	wantZipHash, _ := dirhash.HashZip(filepath.Join(genuine.dir, "example.com", "badzip", "@v", "v1.0.0.zip"), dirhash.Hash1)
	gotZipHash, _ := dirhash.HashZip(filepath.Join(tampered.dir, "example.com", "badzip", "@v", "v1.0.0.zip"), dirhash.Hash1)
	wantModHash, _ := modcheck.HashGoMod(genuine.file(t, badMod, "v1.0.0", "mod"))
	gotModHash, _ := modcheck.HashGoMod(tamperedMod)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Errorf("want 4 problem lines (2 mismatches, 2 not in the database), got:\n%s", out)
	}
	wantLines := map[string][]string{
		badZip + "@v1.0.0 .zip: ": {"checksum mismatch", badZip + "@v1.0.0", gotZipHash, wantZipHash},
		badMod + "@v1.0.0 .mod: ": {"checksum mismatch", badMod + "@v1.0.0/go.mod", gotModHash, wantModHash},
		absent + "@v1.0.0 .mod: ": {"not in checksum database"},
		absent + "@v1.0.0 .zip: ": {"not in checksum database"},
	}
	for prefix, subs := range wantLines {
		var line string
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				line = l
			}
		}
		if line == "" {
			t.Errorf("no line starting %q in:\n%s", prefix, out)
			continue
		}
		for _, s := range subs {
			if !strings.Contains(line, s) {
				t.Errorf("line %q does not contain %q", line, s)
			}
		}
	}
	for _, s := range []string{good1, "example.com/!upper", corp} {
		if strings.Contains(out, s) {
			t.Errorf("output mentions %s, which has no problem:\n%s", s, out)
		}
	}
	mu.Lock()
	for _, r := range reqs {
		if strings.Contains(r, "corp.example.com") {
			t.Errorf("a --nosumdb path reached the database: %s", r)
		}
	}
	mu.Unlock()
	if _, err := st.Stat(ctx, badZipKey); err != nil {
		t.Fatalf("without --quarantine the mismatching zip must stay: %v", err)
	}

	// 2. With --quarantine: the mismatching files move to quarantine/.
	sum, out = run(true)
	want.quarantined = 2
	if sum != want {
		t.Errorf("summary with quarantine = %+v, want %+v\noutput:\n%s", sum, want, out)
	}
	for _, key := range []string{badZipKey, strings.TrimSuffix(badZipKey, ".zip") + ".ziphash", "mod/example.com/badmod/@v/v1.0.0.mod"} {
		if _, err := st.Stat(ctx, key); err == nil {
			t.Errorf("%s is still in place after --quarantine", key)
		}
	}
	for key, data := range map[string][]byte{
		"quarantine/" + badZipKey:                         tamperedZip,
		"quarantine/mod/example.com/badmod/@v/v1.0.0.mod": tamperedMod,
	} {
		rc, _, err := st.Open(ctx, key)
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data) {
			t.Errorf("%s does not hold the quarantined file", key)
		}
	}
	// The rest of the module is untouched.
	for _, key := range []string{"mod/example.com/badzip/@v/v1.0.0.mod", "mod/example.com/badmod/@v/v1.0.0.zip", "mod/example.com/good/@v/v1.0.0.zip"} {
		if _, err := st.Stat(ctx, key); err != nil {
			t.Errorf("%s was removed: %v", key, err)
		}
	}

	// 3. Again: the quarantined files are no longer checked.
	sum, out = run(true)
	want = verifySummary{checked: 10, ok: 6, skipped: 2, errors: 2}
	if sum != want {
		t.Errorf("summary after quarantine = %+v, want %+v\noutput:\n%s", sum, want, out)
	}
}
