package sumdbe2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/sumdbtest"
)

// These tests run offline: fixture modules from a fixture upstream, and
// in-process checksum databases whose records are the real hashes of those
// modules, signed with a key generated for the test.

const fixtureDB = "sumdb.e2e.example"

func fixtureMods() []testenv.Module {
	var mods []testenv.Module
	for _, p := range []string{"example.com/a", "example.com/b", "example.com/c", "example.com/tz", "example.com/tm", "corp.example.com/secret"} {
		name := p[strings.LastIndexByte(p, '/')+1:]
		mods = append(mods, testenv.Module{Path: p, Version: "v1.0.0", Files: map[string]string{
			name + ".go": "package " + name + "\n\n// Name is the fixture's name.\nconst Name = \"" + p + "\"\n",
		}})
	}
	return mods
}

func fixtureUpstream(t *testing.T) *testenv.Upstream {
	t.Helper()
	dir := t.TempDir()
	testenv.BuildTree(t, dir, fixtureMods())
	return testenv.NewUpstream(t, dir)
}

// TestForkDetectedAcrossRestart: modgate verifies against database 1 and
// stores its tree; restarted against database 2, signed with the same key
// but with another history, it must refuse modules with a SECURITY ERROR,
// report not ready, and count the error, without overwriting the stored
// tree; back on database 1 everything works again.
func TestForkDetectedAcrossRestart(t *testing.T) {
	up := fixtureUpstream(t)
	skey, vkey := genKey(t, fixtureDB)
	db1 := sumdbtest.NewSigned(t, skey, vkey, sumdbtest.FixtureGoSum(up))
	db2 := sumdbtest.NewSigned(t, skey, vkey, sumdbtest.FixtureGoSum(up))
	// Database 2 saw b first: its record 0 differs from database 1's.
	if r := get(t, db2.URL+"/lookup/example.com/b@v1.0.0"); r.status != 200 {
		t.Fatalf("seeding database 2: %d %s", r.status, r.body)
	}
	dataDir := t.TempDir()
	args := func(db *sumdbtest.DB) []string {
		return []string{"--data-dir", dataDir, "--upstream", up.URL(), "--sumdb", vkey + " " + db.URL, "--nosumdb", "corp.example.com"}
	}
	latestFile := filepath.Join(dataDir, "sumdb", fixtureDB, "latest")

	// 1. Database 1: a verifies and is served; the tree is stored.
	p1 := start(t, args(db1)...)
	for _, ext := range []string{"mod", "zip"} {
		r := get(t, fileURL(t, p1.URL, "example.com/a", "v1.0.0", ext))
		want, _ := os.ReadFile(up.FilePath("example.com/a", "v1.0.0", ext))
		if r.status != 200 || r.body != string(want) {
			t.Fatalf("a .%s through modgate on database 1: %d %q", ext, r.status, r.body)
		}
	}
	if n := verifications(t, p1, "ok"); n != 2 {
		t.Errorf("verifications{result=ok} = %v, want 2", n)
	}
	if r := get(t, p1.URL+"/readyz"); r.status != 200 || !strings.Contains(r.body, "verifying against checksum database "+fixtureDB) {
		t.Errorf("readyz: %d %q", r.status, r.body)
	}
	if db1.Count("/lookup/example.com/a@v1.0.0") != 1 {
		t.Errorf("database 1 requests: %v", db1.Requests())
	}
	p1.Stop(t)
	tree1, err := os.ReadFile(latestFile)
	if err != nil {
		t.Fatalf("no stored tree after verifying: %v", err)
	}
	if n := treeSize(t, tree1); n != 1 {
		t.Fatalf("stored tree has %d records, want 1", n)
	}

	// 2. Restarted against database 2: the fork is detected.
	p2 := start(t, args(db2)...)
	r := get(t, fileURL(t, p2.URL, "example.com/c", "v1.0.0", "mod"))
	checkRefusal(t, "c .mod on a forked database", r, 403, "SECURITY ERROR", "example.com/c@v1.0.0", fixtureDB)
	if exists(storedFile(t, dataDir, "example.com/c", "v1.0.0", "mod")) {
		t.Error("c's go.mod was stored although it could not be verified")
	}
	if db2.Count("/lookup/example.com/c@v1.0.0") == 0 {
		t.Errorf("modgate never asked database 2 about c: %v", db2.Requests())
	}
	ready := get(t, p2.URL+"/readyz")
	checkRefusal(t, "readyz after the fork", ready, 503, "security error", "misbehavior")
	if n := securityErrors(t, p2); n < 1 {
		t.Errorf("modgate_sumdb_security_errors_total = %v, want >= 1", n)
	}
	if n := verifications(t, p2, "security_error"); n < 1 {
		t.Errorf("verifications{result=security_error} = %v, want >= 1", n)
	}
	// Still stopped for the next module, whose lookup is not cached either.
	r = get(t, fileURL(t, p2.URL, "example.com/b", "v1.0.0", "zip"))
	checkRefusal(t, "b .zip on a forked database", r, 403, "SECURITY ERROR")
	// What was verified before the fork is still served from storage.
	if r := get(t, fileURL(t, p2.URL, "example.com/a", "v1.0.0", "zip")); r.status != 200 {
		t.Errorf("stored a .zip after the fork: %d %q", r.status, r.body)
	}
	p2.Stop(t)
	if tree, _ := os.ReadFile(latestFile); string(tree) != string(tree1) {
		t.Errorf("the stored tree changed while talking to the forked database:\nbefore %q\nafter  %q", tree1, tree)
	}

	// 3. Back on database 1: consistent again, c verifies.
	t.Run("honest database after the fork attempt", func(t *testing.T) {
		p3 := start(t, args(db1)...)
		r := get(t, fileURL(t, p3.URL, "example.com/c", "v1.0.0", "mod"))
		if r.status != 200 {
			t.Errorf("c .mod back on database 1: %d %q", r.status, r.body)
		}
		if r := get(t, p3.URL+"/readyz"); r.status != 200 {
			t.Errorf("readyz back on database 1: %d %q", r.status, r.body)
		}
		if n := securityErrors(t, p3); n != 0 {
			t.Errorf("modgate_sumdb_security_errors_total = %v back on database 1", n)
		}
		p3.Stop(t)
		if tree, _ := os.ReadFile(latestFile); treeSize(t, tree) != 2 {
			t.Errorf("stored tree after c: %q, want 2 records", tree)
		}
	})
}

// TestPrivateLookupsNeverLeave: lookups of --nosumdb paths are refused
// without being passed on; their modules are served unverified; and the go
// command, told by the refusal to set GONOSUMDB, then succeeds. Nothing
// about them reaches the database.
func TestPrivateLookupsNeverLeave(t *testing.T) {
	up := fixtureUpstream(t)
	skey, vkey := genKey(t, fixtureDB)
	db := sumdbtest.NewSigned(t, skey, vkey, sumdbtest.FixtureGoSum(up))
	p := start(t, "--data-dir", t.TempDir(), "--upstream", up.URL(), "--sumdb", vkey+" "+db.URL, "--nosumdb", "corp.example.com,*.corp.example.net")

	for _, path := range []string{
		"corp.example.com/secret@v1.0.0",
		"corp.example.com/other/deep@v0.1.0",
		"git.corp.example.net/team/lib@v1.2.3",
	} {
		r := get(t, p.URL+"/sumdb/"+fixtureDB+"/lookup/"+path)
		checkRefusal(t, "lookup "+path, r, 403, "GONOSUMDB")
	}
	// The module itself is served, unverified.
	if r := get(t, fileURL(t, p.URL, "corp.example.com/secret", "v1.0.0", "zip")); r.status != 200 {
		t.Errorf("private zip: %d %q", r.status, r.body)
	}
	if n := verifications(t, p, "skipped"); n != 1 {
		t.Errorf("verifications{result=skipped} = %v, want 1", n)
	}

	// The go command, with the fixture database as GOSUMDB and modgate as
	// its only proxy (and so also the database's proxy).
	home := t.TempDir()
	env := append(testenv.GoEnv(home, p.URL), "GOSUMDB="+vkey)
	_, out, err := testenv.GoRun(t, home, env, "mod", "download", "example.com/a@v1.0.0")
	if err != nil {
		t.Fatalf("go mod download of a public fixture: %v\n%s", err, out)
	}
	_, out, err = testenv.GoRun(t, home, env, "mod", "download", "corp.example.com/secret@v1.0.0")
	if err == nil {
		t.Errorf("go mod download of a private module without GONOSUMDB succeeded:\n%s", out)
	} else if !strings.Contains(out, "403") || !strings.Contains(out, "GONOSUMDB") {
		t.Errorf("the go command does not show modgate's reason:\n%s", out)
	}
	_, out, err = testenv.GoRun(t, home, append(env, "GONOSUMDB=corp.example.com"), "mod", "download", "corp.example.com/secret@v1.0.0")
	if err != nil {
		t.Errorf("go mod download of a private module with GONOSUMDB: %v\n%s", err, out)
	}

	if n := db.Count("corp.example"); n != 0 {
		t.Errorf("private paths reached the database: %v", db.Requests())
	}
	if n := db.Count("/lookup/example.com/a@v1.0.0"); n != 1 {
		t.Errorf("database lookups of a: %d, want 1 (the go command's lookup is served from modgate's store): %v", n, db.Requests())
	}
	if n := up.Count("/corp.example.com/secret/@v/v1.0.0.zip"); n != 1 {
		t.Errorf("private zip fetched %d times from the upstream, want 1", n)
	}
}

// TestTamperingFixtureUpstream is TestTamperingUpstream offline: the
// tampering proxy forwards to the fixture upstream, and the database is an
// in-process one with the fixtures' real hashes.
func TestTamperingFixtureUpstream(t *testing.T) {
	up := fixtureUpstream(t)
	skey, vkey := genKey(t, fixtureDB)
	db := sumdbtest.NewSigned(t, skey, vkey, sumdbtest.FixtureGoSum(up))
	runTampering(t, tamperSetup{
		upstream: up.URL(),
		sumdb:    vkey + " " + db.URL,
		dbName:   fixtureDB,
		goEnv: func(t *testing.T, home, proxy string) []string {
			return append(testenv.GoEnv(home, proxy), "GOSUMDB="+vkey)
		},
		zipMod: module.Version{Path: "example.com/tz", Version: "v1.0.0"},
		modMod: module.Version{Path: "example.com/tm", Version: "v1.0.0"},
	})
	if n := db.Count("corp.example"); n != 0 {
		t.Errorf("private paths reached the database: %v", db.Requests())
	}
}
