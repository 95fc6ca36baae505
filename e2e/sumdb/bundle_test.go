package sumdbe2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// bundleSet is the build list of a module requiring rsc.io/quote v1.5.2:
// three modules, one of them (x/text) of some size.
const bundleApp = `module example.com/bundleapp

go 1.21

require rsc.io/quote v1.5.2

require (
	golang.org/x/text v0.0.0-20170915032832-14c0d48ead0c // indirect
	rsc.io/sampler v1.3.0 // indirect
)
`

const bundleMain = `package main

import (
	"fmt"

	"rsc.io/quote"
)

func main() { fmt.Println(quote.Hello()) }
`

// TestBundleRealUpstream: a bundle of a real build list is exported from
// the real module proxy, proved by the go command's default checksum
// database; a tampered copy is refused by import; the bundle imports into
// an empty data dir; and a modgate over it with no upstream and every
// outside connection refused serves the go command, with its default
// GOSUMDB, which gets, verifies and builds the module.
func TestBundleRealUpstream(t *testing.T) {
	real := testenv.RealUpstream(t)
	bin := testenv.Binary(t)
	work := t.TempDir()
	goMod := filepath.Join(work, "go.mod")
	if err := os.WriteFile(goMod, []byte(bundleApp), 0o644); err != nil {
		t.Fatal(err)
	}
	bundleFile := filepath.Join(work, "app.bundle")
	refused := testenv.RefusedURL(t)
	noOutside := []string{"HTTPS_PROXY=" + refused, "HTTP_PROXY=" + refused, "NO_PROXY=", "MODGATE_SUMDB="}

	start := time.Now()
	out := runModgate(t, bin, nil, "bundle", "export", "--proxy", real, "--go-mod", goMod, "-o", bundleFile)
	exportTime := time.Since(start)
	if !strings.Contains(out, "3 module versions (3 with zips)") || !strings.Contains(out, "checksum database "+defaultDB) {
		t.Errorf("export said %q", out)
	}
	data, err := os.ReadFile(bundleFile)
	if err != nil {
		t.Fatal(err)
	}
	man := bundleManifest(t, data)

	// A copy whose sampler go.mod was changed is refused; nothing stored.
	tampered := filepath.Join(work, "tampered.bundle")
	os.WriteFile(tampered, changeEntry(t, data, "mod/rsc.io/sampler/@v/v1.3.0.mod", func(b []byte) []byte {
		return append(b, []byte("\n// changed\n")...)
	}), 0o644)
	badDir := filepath.Join(t.TempDir(), "bad")
	cmd := exec.Command(bin, "bundle", "import", tampered, "--data-dir", badDir)
	cmd.Env = append(os.Environ(), noOutside...)
	if msg, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(msg), "mod/rsc.io/sampler/@v/v1.3.0.mod has been changed") {
		t.Errorf("import of a tampered bundle: %v\n%s", err, msg)
	}
	if files := filesUnder(t, badDir); len(files) != 0 {
		t.Errorf("the refused import stored %q", files)
	}

	// The real import, with nothing outside reachable.
	dataDir := filepath.Join(t.TempDir(), "data")
	start = time.Now()
	out = runModgate(t, bin, noOutside, "bundle", "import", bundleFile, "--data-dir", dataDir)
	importTime := time.Since(start)
	if !strings.Contains(out, "3 module versions (3 with zips): 9 files stored") {
		t.Errorf("import said %q", out)
	}
	t.Logf("bundle of %d modules: %d bytes; export %.1fs (from the real proxy), import %.1fs",
		len(man.Modules), len(data), exportTime.Seconds(), importTime.Seconds())

	p := testenv.StartEnv(t, noOutside, "--data-dir", dataDir, "--upstream", "off", "--sumdb", defaultDB)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("modgate logs:\n%s", p.Logs())
		}
	})
	home := t.TempDir()
	env := append(testenv.GoEnv(home, p.URL), noOutside[:3]...)
	checkGoEnv(t, home, env, p.URL)
	app := filepath.Join(home, "app")
	os.MkdirAll(app, 0o755)
	os.WriteFile(filepath.Join(app, "go.mod"), []byte("module example.com/bundleapp\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(app, "main.go"), []byte(bundleMain), 0o644)
	for _, args := range [][]string{{"get", "rsc.io/quote@v1.5.2"}, {"mod", "download", "all"}, {"build", "-o", "app.bin", "."}, {"mod", "verify"}} {
		if stdout, stderr, err := testenv.GoRun(t, app, env, args...); err != nil {
			t.Fatalf("go %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
		}
	}
	if out, err := exec.Command(filepath.Join(app, "app.bin")).CombinedOutput(); err != nil || !strings.Contains(string(out), "world") {
		t.Errorf("the built program: %v %q", err, out)
	}
	gosum, err := os.ReadFile(filepath.Join(app, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range man.Modules {
		for _, line := range []string{m.Path + " " + m.Version + " " + m.Zip, m.Path + " " + m.Version + "/go.mod " + m.Mod} {
			if !strings.Contains(string(gosum), line+"\n") {
				t.Errorf("go.sum lacks %q:\n%s", line, gosum)
			}
		}
		// The go command keeps a lookup once it has verified it.
		if !exists(filepath.Join(home, "gopath", "pkg", "mod", "cache", "download", "sumdb", defaultDB, "lookup", m.Path+"@"+m.Version)) {
			t.Errorf("%s@%s: the go command did not verify it with the checksum database", m.Path, m.Version)
		}
	}
	// The tree head too is answered offline: the imported one.
	stored, err := os.ReadFile(filepath.Join(dataDir, "sumdb", defaultDB, "latest"))
	if r := get(t, p.URL+"/sumdb/"+defaultDB+"/latest"); err != nil || r.status != 200 || r.body != string(stored) {
		t.Errorf("/sumdb/%s/latest offline: %d %q, want the imported tree %q (%v)", defaultDB, r.status, r.body, stored, err)
	}
	if n := metric(t, p, "modgate_http_requests_total", `{code="200",endpoint="sumdb"}`); n < 3 {
		t.Errorf("modgate answered %v checksum database requests, want supported, lookups and tiles", n)
	}
}

// bundleModule is a module version as a bundle's manifest lists it.
type bundleModule struct {
	Path, Version, Mod, Zip string
}

func bundleManifest(t *testing.T, data []byte) struct{ Modules []bundleModule } {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	hdr, err := tr.Next()
	if err != nil || hdr.Name != "manifest.json" {
		t.Fatalf("bundle starts with %v, %v", hdr, err)
	}
	var m struct{ Modules []bundleModule }
	if err := json.NewDecoder(tr).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// changeEntry returns the bundle data with the content of entry name
// changed by fn.
func changeEntry(t *testing.T, data []byte, name string, fn func([]byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(data)), tar.NewWriter(&out)
	found := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == name {
			body, found = fn(body), true
			hdr.Size = int64(len(body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if !found {
		t.Fatalf("the bundle has no %s", name)
	}
	tw.Close()
	return out.Bytes()
}

// runModgate runs the modgate binary and returns its standard output.
func runModgate(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("modgate %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// filesUnder lists the files under dir (none when it does not exist).
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}
