package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/bundle"
	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/s3server"
	"github.com/modgate/modgate/internal/testenv/sumdbtest"
)

// The bundle commands, offline: fixture modules from a fixture upstream,
// proved by a test checksum database.

const bundleDBName = "sumdb.cmd-bundle.example"

func bundleFixture(t *testing.T) (*testenv.Upstream, *sumdbtest.DB) {
	t.Helper()
	dir := t.TempDir()
	testenv.BuildTree(t, dir, []testenv.Module{
		{Path: "example.com/hello", Version: "v1.2.0", Files: map[string]string{
			"go.mod":   "module example.com/hello\n\ngo 1.21\n\nrequire example.com/World v0.3.0\n",
			"hello.go": "package hello\n\nimport \"example.com/World\"\n\n// Hello greets.\nfunc Hello() string { return \"hello, \" + world.Name }\n",
		}},
		{Path: "example.com/World", Version: "v0.3.0", Files: map[string]string{
			"world.go": "package world\n\n// Name is whom to greet.\nconst Name = \"world\"\n",
		}},
	})
	up := testenv.NewUpstream(t, dir)
	return up, sumdbtest.New(t, bundleDBName, sumdbtest.FixtureGoSum(up))
}

func runBundle(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = bundleCmd(args, &o, &e, func(string) string { return "" })
	return o.String(), e.String(), err
}

const helloApp = "module example.com/app\n\ngo 1.21\n\nrequire example.com/hello v1.2.0\n\nrequire example.com/World v0.3.0 // indirect\n"

const helloMain = "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/hello\"\n)\n\nfunc main() { fmt.Println(hello.Hello()) }\n"

// TestBundleExportImportServe: export from a proxy, import into an empty
// data dir, then, with the database and the upstream gone and every
// outside connection refused, a modgate over that data dir serves the go
// command, which verifies everything against its checksum database (the
// test's) through modgate and builds. The data dir then exports again,
// offline.
func TestBundleExportImportServe(t *testing.T) {
	up, db := bundleFixture(t)
	work := t.TempDir()
	goModFile := filepath.Join(work, "go.mod")
	if err := os.WriteFile(goModFile, []byte(helloApp), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "app.bundle")
	// Credentials in the proxy URL are used, and never shown.
	u, _ := url.Parse(up.URL())
	u.User = url.UserPassword("bundler", "s3cret-pw")
	stdout, stderr, err := runBundle(t, "export", "--proxy", u.String(), "--go-mod", goModFile, "--sumdb", db.Spec(), "-o", out)
	if err != nil {
		t.Fatalf("export: %v\n%s%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "wrote "+out+": 2 module versions (2 with zips)") {
		t.Errorf("export said %q", stdout)
	}
	if strings.Contains(stdout+stderr, "s3cret") {
		t.Errorf("the proxy's password was shown:\n%s%s", stdout, stderr)
	}
	if !strings.Contains(stderr, "exporting") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	if matches, _ := filepath.Glob(filepath.Join(work, ".app.bundle.tmp-*")); len(matches) != 0 {
		t.Errorf("temporary files left: %q", matches)
	}

	dataDir := filepath.Join(t.TempDir(), "data")
	stdout, stderr, err = runBundle(t, "import", out, "--data-dir", dataDir, "--sumdb", db.Spec())
	if err != nil {
		t.Fatalf("import: %v\n%s%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "2 module versions (2 with zips): 6 files stored") {
		t.Errorf("import said %q", stdout)
	}

	// Nothing outside is reachable any more.
	db.Close()
	up.Server.Close()
	refused := testenv.RefusedURL(t)
	p := testenv.StartEnv(t, []string{"HTTPS_PROXY=" + refused, "HTTP_PROXY=" + refused, "NO_PROXY="},
		"--data-dir", dataDir, "--upstream", "off", "--sumdb", db.Spec())
	defer p.Stop(t)
	home := t.TempDir()
	app := filepath.Join(home, "app")
	os.MkdirAll(app, 0o755)
	os.WriteFile(filepath.Join(app, "go.mod"), []byte(helloApp), 0o644)
	os.WriteFile(filepath.Join(app, "main.go"), []byte(helloMain), 0o644)
	env := append(testenv.GoEnv(home, p.URL), "GOSUMDB="+db.Key)
	if _, stderr, err := testenv.GoRun(t, app, env, "mod", "download", "all"); err != nil {
		t.Fatalf("go mod download through the offline modgate: %v\n%s\nmodgate:\n%s", err, stderr, p.Logs())
	}
	if _, stderr, err := testenv.GoRun(t, app, env, "build", "-o", "app.bin", "."); err != nil {
		t.Fatalf("go build: %v\n%s", err, stderr)
	}
	gosum, err := os.ReadFile(filepath.Join(app, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range [][2]string{{"example.com/hello", "v1.2.0"}, {"example.com/World", "v0.3.0"}} {
		z, err := os.ReadFile(up.FilePath(m[0], m[1], "zip"))
		if err != nil {
			t.Fatal(err)
		}
		zh, _ := modcheck.HashZip(bytes.NewReader(z), int64(len(z)))
		gm, _ := os.ReadFile(up.FilePath(m[0], m[1], "mod"))
		mh, _ := modcheck.HashGoMod(gm)
		for _, line := range []string{m[0] + " " + m[1] + " " + zh, m[0] + " " + m[1] + "/go.mod " + mh} {
			if !strings.Contains(string(gosum), line+"\n") {
				t.Errorf("go.sum lacks %q:\n%s", line, gosum)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(home, "gopath", "pkg", "mod", "cache", "download", "sumdb", bundleDBName, "lookup")); err != nil {
		t.Errorf("the go command did not verify through modgate's checksum database proxy: %v", err)
	}

	// The data dir exports again, offline (the database is gone): a bundle
	// that imports into another data dir.
	out2 := filepath.Join(work, "again.bundle")
	stdout, stderr, err = runBundle(t, "export", "--data-dir", dataDir, "--modules", "example.com/hello@v1.2.0", "--sumdb", db.Spec(), "-o", out2)
	if err != nil {
		t.Fatalf("export from the data dir: %v\n%s%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "2 module versions (2 with zips)") || !strings.Contains(stdout, "from data dir "+dataDir) {
		t.Errorf("export from the data dir said %q", stdout)
	}
	if _, _, err := runBundle(t, "import", "--data-dir", filepath.Join(t.TempDir(), "d2"), "--sumdb", db.Spec(), out2); err != nil {
		t.Errorf("import of the data dir's bundle: %v", err)
	}
	// A version the data dir does not hold cannot be exported from it.
	_, _, err = runBundle(t, "export", "--data-dir", dataDir, "--modules", "example.com/hello@v1.3.0", "--sumdb", db.Spec(), "-o", filepath.Join(work, "none.bundle"))
	if err == nil || !strings.Contains(err.Error(), "example.com/hello@v1.3.0") {
		t.Errorf("export of a version the data dir lacks: %v", err)
	}
	if _, err := os.Stat(filepath.Join(work, "none.bundle")); err == nil {
		t.Error("a failed export left its bundle")
	}
}

// TestBundleCommandErrors: refusals are one line each, and say what to do;
// a truncated bundle stores nothing; a proxy's credentials never show.
func TestBundleCommandErrors(t *testing.T) {
	up, db := bundleFixture(t)
	work := t.TempDir()
	dataDir := filepath.Join(work, "data")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "say export or import"},
		{[]string{"pack"}, `unknown command "pack"`},
		{[]string{"export", "--modules", "example.com/hello@v1.2.0", "-o", "x"}, "--proxy URL or --data-dir DIR"},
		{[]string{"export", "--proxy", up.URL(), "--data-dir", work, "--modules", "example.com/hello@v1.2.0", "-o", "x"}, "one of them"},
		{[]string{"export", "--proxy", up.URL(), "--modules", "example.com/hello@v1.2.0"}, "-o BUNDLE is required"},
		{[]string{"export", "--proxy", up.URL(), "-o", "x"}, "--go-mod, --go-sum or --modules"},
		{[]string{"export", "--proxy", up.URL(), "--modules", "example.com/hello@latest", "-o", "x"}, "invalid version"},
		{[]string{"export", "--proxy", up.URL(), "--modules", "example.com/hello", "-o", "x"}, "module@version"},
		{[]string{"export", "--proxy", up.URL(), "--modules", "example.com/hello@v1.2.0", "--sumdb", "off", "-o", "x"}, "--sumdb off"},
		{[]string{"export", "--data-dir", filepath.Join(work, "nowhere"), "--modules", "example.com/hello@v1.2.0", "-o", "x"}, "--data-dir"},
		{[]string{"import", "--data-dir", dataDir}, "name one BUNDLE"},
		{[]string{"import", "x.bundle"}, "--data-dir DIR is required"},
		{[]string{"import", work, "--data-dir", dataDir}, "not a regular file"},
	} {
		_, _, err := runBundle(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("modgate bundle %q: %v, want one line with %q", c.args, err, c.want)
		}
	}

	// An error of the proxy names it without its credentials.
	u, _ := url.Parse(up.URL())
	u.User = url.UserPassword("bundler", "s3cret-pw")
	stdout, stderr, err := runBundle(t, "export", "--proxy", u.String(), "--modules", "example.com/nowhere@v1.0.0", "--sumdb", db.Spec(), "-o", filepath.Join(work, "x"))
	if err == nil || !strings.Contains(err.Error(), "example.com/nowhere@v1.0.0") {
		t.Errorf("export of a missing module: %v", err)
	}
	if all := stdout + stderr + err.Error(); strings.Contains(all, "s3cret") || testenv.ShownUserinfo(all) != "" {
		t.Errorf("credentials shown: %q", all)
	}

	// A truncated bundle is refused, and the data dir gets nothing.
	goMod := filepath.Join(work, "go.mod")
	os.WriteFile(goMod, []byte(helloApp), 0o644)
	good := filepath.Join(work, "good.bundle")
	if _, _, err := runBundle(t, "export", "--proxy", up.URL(), "--go-mod", goMod, "--sumdb", db.Spec(), "-o", good); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	cut := filepath.Join(work, "cut.bundle")
	os.WriteFile(cut, data[:len(data)/2], 0o644)
	_, _, err = runBundle(t, "import", cut, "--data-dir", dataDir, "--sumdb", db.Spec())
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("import of a truncated bundle: %v", err)
	}
	if files := gcFiles(t, dataDir); len(files) != 0 {
		t.Errorf("a refused import stored %q", files)
	}
	// The bundle's tree can be the base of the next one.
	base, err := readBaseTree(good)
	if m, merr := bundle.ReadManifest(bytes.NewReader(data)); err != nil || merr != nil || string(base) != m.SumDB.Tree {
		t.Errorf("--base-tree of a bundle: %q, %v, %v", base, err, merr)
	}
}

// TestBundleImportIntoS3: an air-gapped installation on S3 imports with
// --config, the same file its replicas serve with; a modgate over that
// bucket with the upstream off then answers the module files and the
// checksum database's lookups, and the secret key shows nowhere.
func TestBundleImportIntoS3(t *testing.T) {
	up, db := bundleFixture(t)
	s3 := s3server.Start(t)
	s3.CreateBucket(t, "airgap")
	work := t.TempDir()
	goModFile := filepath.Join(work, "go.mod")
	if err := os.WriteFile(goModFile, []byte(helloApp), 0o644); err != nil {
		t.Fatal(err)
	}
	bundleFile := filepath.Join(work, "app.bundle")
	if stdout, stderr, err := runBundle(t, "export", "--proxy", up.URL(), "--go-mod", goModFile, "--sumdb", db.Spec(), "-o", bundleFile); err != nil {
		t.Fatalf("export: %v\n%s%s", err, stdout, stderr)
	}

	cfgFile := filepath.Join(work, "modgate.yaml")
	cfg := fmt.Sprintf("data-dir: %s\nstorage: s3\ns3-endpoint: %s\ns3-bucket: airgap\ns3-prefix: modgate/\ns3-path-style: true\nsumdb: %q\nupstream: \"off\"\n",
		filepath.Join(work, "scratch"), s3.Endpoint, db.Spec())
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{"MODGATE_S3_ACCESS_KEY": s3.AccessKey, "MODGATE_S3_SECRET_KEY": s3.SecretKey}
	var o, e bytes.Buffer
	if err := bundleCmd([]string{"import", bundleFile, "--config", cfgFile}, &o, &e, func(k string) string { return creds[k] }); err != nil {
		t.Fatalf("import into S3: %v\n%s%s", err, o.String(), e.String())
	}
	if !strings.Contains(o.String(), "into the storage of "+cfgFile+": 2 module versions (2 with zips): 6 files stored") {
		t.Errorf("import said %q", o.String())
	}
	if strings.Contains(o.String()+e.String(), s3.SecretKey) {
		t.Errorf("the secret key was shown")
	}
	// Without the credentials the bucket refuses, and the error says so
	// without a secret.
	var o2, e2 bytes.Buffer
	err := bundleCmd([]string{"import", bundleFile, "--config", cfgFile}, &o2, &e2, func(string) string { return "" })
	if err == nil {
		t.Errorf("import without S3 credentials succeeded:\n%s", o2.String())
	}

	refused := testenv.RefusedURL(t)
	p := testenv.StartEnv(t, []string{"HTTPS_PROXY=" + refused, "HTTP_PROXY=" + refused, "NO_PROXY=",
		"MODGATE_S3_ACCESS_KEY=" + s3.AccessKey, "MODGATE_S3_SECRET_KEY=" + s3.SecretKey},
		"--config", cfgFile, "--sumdb", db.Spec()) // testenv turns verification off unless told
	defer p.Stop(t)
	for _, path := range []string{
		"/example.com/hello/@v/v1.2.0.zip",
		"/example.com/!world/@v/v0.3.0.mod",
		"/sumdb/" + bundleDBName + "/lookup/example.com/hello@v1.2.0",
	} {
		resp, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s from the bucket, offline: %s\n%s", path, resp.Status, p.Logs())
		}
	}
}
