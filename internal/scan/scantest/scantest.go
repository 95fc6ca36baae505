// Package scantest builds what the tests of "modgate scan" run against: a
// fixture upstream of module versions that a policy blocks for every
// reason, a vulnerability database, a policy file, and two main modules
// (one requiring the blocked versions, one clean) whose go.sum the real go
// command wrote.
package scantest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/vulndb/vulndbtest"
)

// Fixture is a scan fixture.
type Fixture struct {
	Upstream *testenv.Upstream
	// Dir is a main module requiring a denied, a vulnerable, a too young
	// and a retracted version, and a fine one; Clean requires only fine
	// versions.
	Dir, Clean string
	// Policy is the policy file (deny, min-age, vulndb, block-retracted).
	Policy string
	// Env runs the go command against the upstream, checksum database off.
	Env []string
}

// Policy file of the fixture; %s is the vulnerability database.
const policyYAML = `deny:
  - module: example.com/denied
    versions: "<v1.1.0"
    reason: "v1.0 is not approved; use v1.1.0"
min-age:
  - module: example.com/young
    age: 72h
vulndb: %s
block-retracted: true
`

// New builds the fixture; young versions are an hour old by the real
// clock, as the scan uses it.
func New(t *testing.T) *Fixture {
	t.Helper()
	root := t.TempDir()
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	young := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	src := map[string]string{"x.go": "package x\n"}
	mods := []testenv.Module{
		{Path: "example.com/denied", Version: "v1.0.0", Time: old, Files: src},
		{Path: "example.com/denied", Version: "v1.1.0", Time: old, Files: src},
		// vuln v1.2.0 requires an older young: app's build list has an
		// edge between two of its dependencies (scan's SBOM shows it).
		{Path: "example.com/vuln", Version: "v1.2.0", Time: old, Files: map[string]string{
			"x.go":   "package x\n",
			"go.mod": "module example.com/vuln\n\ngo 1.21\n\nrequire example.com/young v1.0.0\n",
		}},
		{Path: "example.com/vuln", Version: "v1.2.3", Time: old, Files: src},
		{Path: "example.com/young", Version: "v1.0.0", Time: old, Files: src},
		{Path: "example.com/young", Version: "v1.1.0", Time: young, Files: src},
		{Path: "example.com/fine", Version: "v1.0.0", Time: old, Files: src},
		{Path: "example.com/retracted", Version: "v1.1.0", Time: old, Files: src},
		{Path: "example.com/retracted", Version: "v1.2.0", Time: old, Files: map[string]string{
			"x.go":   "package x\n",
			"go.mod": "module example.com/retracted\n\ngo 1.21\n\nretract v1.1.0 // loses data on restart\n",
		}},
	}
	tree := filepath.Join(root, "tree")
	testenv.BuildTree(t, tree, mods)
	f := &Fixture{Upstream: testenv.NewUpstream(t, tree)}

	db := filepath.Join(root, "vulndb")
	vulndbtest.Write(t, db, "2024-06-01T00:00:00Z", []vulndbtest.Entry{
		{ID: "GO-2099-0101", Module: "example.com/vuln", Summary: "crash on input", Ranges: [][2]string{{"", "v1.2.3"}}},
	})
	f.Policy = filepath.Join(root, "policy.yaml")
	write(t, f.Policy, strings.Replace(policyYAML, "%s", db, 1))

	f.Env = append(testenv.GoEnv(root, f.Upstream.URL()), "GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw")
	f.Dir = mainModule(t, f, filepath.Join(root, "app"), "example.com/app",
		"example.com/denied v1.0.0", "example.com/vuln v1.2.0", "example.com/young v1.1.0",
		"example.com/retracted v1.1.0", "example.com/fine v1.0.0")
	f.Clean = mainModule(t, f, filepath.Join(root, "clean"), "example.com/clean",
		"example.com/denied v1.1.0", "example.com/vuln v1.2.3", "example.com/fine v1.0.0")
	return f
}

// mainModule writes a module importing each requirement and lets the go
// command write its go.sum.
func mainModule(t *testing.T, f *Fixture, dir, path string, reqs ...string) string {
	t.Helper()
	var gomod, imports strings.Builder
	gomod.WriteString("module " + path + "\n\ngo 1.21\n\nrequire (\n")
	imports.WriteString("package main\n\nimport (\n")
	for _, r := range reqs {
		gomod.WriteString("\t" + r + "\n")
		p, _, _ := strings.Cut(r, " ")
		imports.WriteString("\t_ \"" + p + "\"\n")
	}
	gomod.WriteString(")\n")
	imports.WriteString(")\n\nfunc main() {}\n")
	write(t, filepath.Join(dir, "go.mod"), gomod.String())
	write(t, filepath.Join(dir, "main.go"), imports.String())
	if out, err := testenv.Go(t, dir, f.Env, "mod", "tidy"); err != nil {
		t.Fatalf("go mod tidy: %v\n%s", err, out)
	}
	return dir
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
