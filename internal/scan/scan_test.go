package scan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/modgate/modgate/internal/policy"
	"github.com/modgate/modgate/internal/scan"
	"github.com/modgate/modgate/internal/scan/scantest"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
)

// wantReport is what the fixture's app module violates, as Report prints
// it (the go command sorts the build list by path).
const wantReport = `example.com/denied@v1.0.0: denied (deny): v1.0 is not approved; use v1.1.0
example.com/retracted@v1.1.0: retracted (retracted): retracted by the module's author: loses data on restart
example.com/vuln@v1.2.0: vulnerable (vuln): GO-2099-0101 (fixed in v1.2.3)
`

func TestLoad(t *testing.T) {
	f := scantest.New(t)
	bl, err := scan.Load(context.Background(), f.Dir, scan.Options{Env: f.Env})
	if err != nil {
		t.Fatal(err)
	}
	if bl.Main != "example.com/app" {
		t.Errorf("main %q", bl.Main)
	}
	var got []string
	for _, m := range bl.Modules {
		got = append(got, m.Path+"@"+m.Version)
		if !strings.HasPrefix(m.Sum, "h1:") || m.Time.IsZero() {
			t.Errorf("%s@%s: sum %q, time %v", m.Path, m.Version, m.Sum, m.Time)
		}
	}
	want := "example.com/denied@v1.0.0 example.com/fine@v1.0.0 example.com/retracted@v1.1.0 example.com/vuln@v1.2.0 example.com/young@v1.1.0"
	if strings.Join(got, " ") != want {
		t.Errorf("build list %v, want %s", got, want)
	}
}

// localResults scans dir with the fixture's policy file in this process.
func localResults(t *testing.T, f *scantest.Fixture, dir string) []policy.CheckResult {
	t.Helper()
	e, err := policy.New(policy.Config{File: f.Policy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	bl, err := scan.Load(context.Background(), dir, scan.Options{Env: f.Env, Retracted: e.BlocksRetracted()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := scan.Local{Engine: e}.Check(context.Background(), bl.Modules)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestLocal(t *testing.T) {
	f := scantest.New(t)
	var out bytes.Buffer
	n := scan.Report(&out, localResults(t, f, f.Dir))
	young := "example.com/young@v1.1.0: too young (min-age): published "
	got := out.String()
	if n != 4 || !strings.Contains(got, young) || !strings.Contains(got, ", younger than 72h\n") {
		t.Fatalf("%d violations:\n%s", n, got)
	}
	// Without the min-age line (its time is the fixture's clock), the rest
	// is exact.
	var rest []string
	for _, l := range strings.SplitAfter(got, "\n") {
		if !strings.HasPrefix(l, young) {
			rest = append(rest, l)
		}
	}
	if strings.Join(rest, "") != wantReport {
		t.Errorf("report:\n%s\nwant\n%s", strings.Join(rest, ""), wantReport)
	}
	var clean bytes.Buffer
	if n := scan.Report(&clean, localResults(t, f, f.Clean)); n != 0 || clean.Len() != 0 {
		t.Errorf("clean module: %d violations:\n%s", n, clean.String())
	}
}

// TestRemote: the server's check API, over HTTP, gives the same report
// as the policy file applied locally.
func TestRemote(t *testing.T) {
	f := scantest.New(t)
	c, _ := cachetest.New(t, f.Upstream.URL(), testenv.Logger(t, "cache"))
	e, err := policy.New(policy.Config{File: f.Policy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	srv := httptest.NewServer(e.CheckHandler(c))
	t.Cleanup(srv.Close)
	zips := f.Upstream.CountContaining(".zip")

	bl, err := scan.Load(context.Background(), f.Dir, scan.Options{Env: f.Env})
	if err != nil {
		t.Fatal(err)
	}
	// The server's handler is mounted at /policy/check; here it answers
	// every path.
	res, err := scan.Remote{URL: srv.URL}.Check(context.Background(), bl.Modules)
	if err != nil {
		t.Fatal(err)
	}
	var remote bytes.Buffer
	scan.Report(&remote, res)
	var local bytes.Buffer
	scan.Report(&local, localResults(t, f, f.Dir))
	if remote.String() != local.String() {
		t.Errorf("remote report:\n%s\nlocal:\n%s", remote.String(), local.String())
	}
	if n := f.Upstream.CountContaining(".zip"); n != zips {
		t.Errorf("the check fetched %d zips", n-zips)
	}
}

func TestRemoteRefused(t *testing.T) {
	_, err := scan.Remote{URL: testenv.RefusedURL(t)}.Check(context.Background(), []scan.Module{{Path: "example.com/fine", Version: "v1.0.0"}})
	var ne *scan.NetworkError
	if !errors.As(err, &ne) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want a NetworkError (connection refused)", err)
	}
}

func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		url   string
		token bool
		ok    bool
	}{
		{"https://modgate.example.com", true, true},
		{"http://127.0.0.1:8080", true, true},
		{"http://modgate.example.com", false, true},
		{"http://modgate.example.com", true, false},
		{"https://user:secret@modgate.example.com", false, false},
		{"ftp://modgate.example.com", false, false},
		{"modgate.example.com", false, false},
	} {
		_, err := scan.CheckURL(c.url, c.token)
		if (err == nil) != c.ok {
			t.Errorf("CheckURL(%q, token %v) = %v", c.url, c.token, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error quotes the password: %v", err)
		}
	}
}

// TestSBOM validates the SBOM against the CycloneDX JSON schema that the
// cyclonedx-go module carries (in the module cache once it is built).
func TestSBOM(t *testing.T) {
	f := scantest.New(t)
	bl, err := scan.Load(context.Background(), f.Dir, scan.Options{Env: f.Env})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := scan.WriteSBOM(&buf, bl, "modgate", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := validate(t, buf.Bytes()); err != nil {
		t.Fatalf("SBOM does not validate: %v\n%s", err, buf.String())
	}
	// The validation can fail: a component without its type does not pass.
	broken := bytes.Replace(buf.Bytes(), []byte(`"type": "library",`), nil, 1)
	if err := validate(t, broken); err == nil {
		t.Fatal("a component without a type validates")
	}

	var doc struct {
		SpecVersion  string
		Dependencies []struct {
			Ref       string
			DependsOn []string
		}
		Metadata   struct{ Component struct{ Name string } }
		Components []struct {
			Type, Name, Version, Purl string
			Hashes                    []struct{ Alg, Content string }
			Properties                []struct{ Name, Value string }
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SpecVersion != "1.6" || doc.Metadata.Component.Name != "example.com/app" || len(doc.Components) != len(bl.Modules) {
		t.Fatalf("SBOM: %s", buf.String())
	}
	for i, c := range doc.Components {
		m := bl.Modules[i]
		if c.Type != "library" || c.Name != m.Path || c.Version != m.Version || c.Purl != "pkg:golang/"+m.Path+"@"+m.Version {
			t.Errorf("component %+v for %s@%s", c, m.Path, m.Version)
		}
		if len(c.Hashes) != 1 || c.Hashes[0].Alg != "SHA-256" || len(c.Hashes[0].Content) != 64 ||
			len(c.Properties) != 1 || c.Properties[0].Name != scan.PropertyH1 || c.Properties[0].Value != m.Sum {
			t.Errorf("component %s: hashes %+v, properties %+v, go.sum %s", c.Name, c.Hashes, c.Properties, m.Sum)
		}
	}

	// The module graph between the selected versions: the main module
	// requires its five dependencies; vuln v1.2.0 requires young, at the
	// version the build selected; the others require nothing.
	deps := map[string]string{}
	for _, d := range doc.Dependencies {
		deps[d.Ref] = strings.Join(d.DependsOn, " ")
	}
	want := map[string]string{
		"pkg:golang/example.com/app":              "pkg:golang/example.com/denied@v1.0.0 pkg:golang/example.com/fine@v1.0.0 pkg:golang/example.com/retracted@v1.1.0 pkg:golang/example.com/vuln@v1.2.0 pkg:golang/example.com/young@v1.1.0",
		"pkg:golang/example.com/vuln@v1.2.0":      "pkg:golang/example.com/young@v1.1.0",
		"pkg:golang/example.com/fine@v1.0.0":      "",
		"pkg:golang/example.com/young@v1.1.0":     "",
		"pkg:golang/example.com/denied@v1.0.0":    "",
		"pkg:golang/example.com/retracted@v1.1.0": "",
	}
	if len(doc.Dependencies) != len(want) {
		t.Errorf("dependencies: %d entries, want %d: %+v", len(doc.Dependencies), len(want), doc.Dependencies)
	}
	for ref, on := range want {
		if got, ok := deps[ref]; !ok || got != on {
			t.Errorf("dependencies of %s: %q (listed %v), want %q", ref, got, ok, on)
		}
	}
}

func validate(t *testing.T, sbom []byte) error {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/CycloneDX/cyclonedx-go")
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("finding the cyclonedx-go module: %v", err)
	}
	schemas := filepath.Join(strings.TrimSpace(string(out)), "schema")
	c := jsonschema.NewCompiler()
	// The schema refers to its neighbours by their published URLs; load
	// them from the module instead (the JSF one is shipped as .schemax).
	for url, file := range map[string]string{
		"http://cyclonedx.org/schema/bom-1.6.schema.json":  "bom-1.6.schema.json",
		"http://cyclonedx.org/schema/spdx.schema.json":     "spdx.schema.json",
		"http://cyclonedx.org/schema/jsf-0.82.schema.json": "jsf-0.82.schemax.json",
	} {
		doc, err := jsonschema.UnmarshalJSON(openFile(t, filepath.Join(schemas, file)))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
	}
	c.AssertFormat()
	sch, err := c.Compile("http://cyclonedx.org/schema/bom-1.6.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(sbom))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst)
}

func openFile(t *testing.T, name string) *bytes.Reader {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(data)
}
