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

// TestOfflineVerificationFromStoredState: modgate stores modules it
// verified; then the upstream and the checksum database become
// unreachable, modgate restarts, and go commands with the default kind of
// checksum database settings (GOSUMDB names the database, reached through
// GOPROXY=modgate; nothing in GONOSUMDB), a fresh module cache and a new
// go.sum, still get and verify every stored module. The go command then
// asks modgate's /sumdb/ for lookups and tiles it never asked before: they
// come from what modgate's verifier stored, not from answers modgate
// relayed to an earlier client (the warm-up client does not use the
// database at all).
func TestOfflineVerificationFromStoredState(t *testing.T) {
	up := fixtureUpstream(t)
	skey, vkey := genKey(t, fixtureDB)
	gosum := sumdbtest.FixtureGoSum(up)
	db := sumdbtest.NewSigned(t, skey, vkey, gosum)
	dataDir := t.TempDir()
	args := []string{"--data-dir", dataDir, "--upstream", up.URL(), "--sumdb", vkey + " " + db.URL, "--nosumdb", "corp.example.com"}
	var mods []module.Version
	for _, m := range fixtureMods() {
		if !strings.HasPrefix(m.Path, "corp.") {
			mods = append(mods, module.Version{Path: m.Path, Version: m.Version})
		}
	}

	// 1. Warm-up: a client that does not use the checksum database makes
	// modgate fetch, verify and store the modules.
	p1 := start(t, args...)
	warm := t.TempDir()
	dl := []string{"mod", "download"}
	for _, m := range mods {
		dl = append(dl, m.String())
	}
	if _, out, err := testenv.GoRun(t, warm, append(testenv.GoEnv(warm, p1.URL), "GOSUMDB=off"), dl...); err != nil {
		t.Fatalf("warm-up download: %v\n%s", err, out)
	}
	if n := verifications(t, p1, "ok"); n != float64(2*len(mods)) {
		t.Errorf("verifications{result=ok} = %v, want %d", n, 2*len(mods))
	}
	for _, m := range mods {
		if n := db.Count("/lookup/" + m.String()); n != 1 {
			t.Errorf("database lookups of %s: %d, want 1 (by modgate's verifier): %v", m, n, db.Requests())
		}
	}
	p1.Stop(t)

	// 2. The outside world goes away.
	up.Server.Close()
	db.Close()
	p2 := start(t, args...)

	// 3. Fresh module cache and GOPATH; the go command's own verification.
	home := t.TempDir()
	env := append(testenv.GoEnv(home, p2.URL), "GOSUMDB="+vkey)
	out, _, err := testenv.GoRun(t, home, env, "env", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOFLAGS")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Split(strings.TrimSpace(out), "\n"), []string{vkey, "", "", "-modcacherw"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("go env GOSUMDB GONOSUMDB GOPRIVATE GOFLAGS = %q, want %q", got, want)
	}
	for _, m := range mods {
		dir := filepath.Join(t.TempDir(), "app")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, serr, err := testenv.GoRun(t, dir, env, "mod", "init", "example.com/app"); err != nil {
			t.Fatalf("go mod init: %v\n%s", err, serr)
		}
		if _, serr, err := testenv.GoRun(t, dir, env, "get", m.String()); err != nil {
			t.Errorf("offline go get %s: %v\n%s", m, err, serr)
			continue
		}
		sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
		if err != nil {
			t.Fatal(err)
		}
		// The go command checked the lookup against the database's tree
		// (through modgate), as it keeps it in its cache only then.
		if !exists(filepath.Join(home, "gopath", "pkg", "mod", "cache", "download", "sumdb", fixtureDB, "lookup", m.String())) {
			t.Errorf("go get %s: the go command did not verify it with the checksum database", m)
		}
		want, err := gosum(m.Path, m.Version)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
			if !strings.Contains(string(sum), line+"\n") {
				t.Errorf("go get %s: go.sum lacks %q:\n%s", m, line, sum)
			}
		}
	}
	if !exists(filepath.Join(home, "gopath", "pkg", "sumdb", fixtureDB, "latest")) {
		t.Error("the go command stored no tree of the checksum database")
	}
	if n := securityErrors(t, p2); n != 0 {
		t.Errorf("modgate_sumdb_security_errors_total = %v", n)
	}
	if r := get(t, p2.URL+"/sumdb/"+fixtureDB+"/latest"); r.status != 200 || treeSize(t, []byte(r.body)) != int64(len(mods)) {
		t.Errorf("offline latest: %d %q, want the verified tree of %d records", r.status, r.body, len(mods))
	}
}
