package policy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/policy"
)

func postCheck(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestCheckHandler: the check API gives the verdicts the wrapper enforces
// on downloads (deny, vuln, min-age from the .info time, retracted), in
// the request's order.
func TestCheckHandler(t *testing.T) {
	e := newEnv(t, false)
	db, _ := filepath.Abs("../vulndb/testdata/db")
	e.write(strings.Replace(policyYAML, "%s", db, 1) + "block-retracted: true\n")
	if err := e.engine.Reload(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.engine.CheckHandler(e.cache))
	t.Cleanup(srv.Close)

	var mods []string
	for _, mv := range []string{"example.com/denied@v1.0.0", "example.com/denied@v1.1.0", "example.com/vuln@v1.2.0",
		"example.com/young@v1.1.0", "example.com/young@v1.0.0", "example.com/retracted@v1.1.0", "example.com/fine@v1.0.0"} {
		p, v, _ := strings.Cut(mv, "@")
		mods = append(mods, fmt.Sprintf(`{"path":%q,"version":%q}`, p, v))
	}
	status, body := postCheck(t, srv.URL, `{"modules":[`+strings.Join(mods, ",")+`]}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var resp policy.CheckResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	want := []policy.CheckResult{
		{Path: "example.com/denied", Version: "v1.0.0", Rule: "deny", Reason: "v1.0 is not approved; use v1.1.0"},
		{Path: "example.com/denied", Version: "v1.1.0", Allowed: true},
		{Path: "example.com/vuln", Version: "v1.2.0", Rule: "vuln", Reason: "GO-2099-0001 (fixed in v1.2.3)"},
		{Path: "example.com/young", Version: "v1.1.0", Rule: "min-age", Reason: "published 2025-01-09T23:00:00Z, younger than 72h"},
		{Path: "example.com/young", Version: "v1.0.0", Allowed: true},
		{Path: "example.com/retracted", Version: "v1.1.0", Rule: "retracted", Reason: "retracted by the module's author: loses data on restart"},
		{Path: "example.com/fine", Version: "v1.0.0", Allowed: true},
	}
	if !reflect.DeepEqual(resp.Results, want) {
		t.Errorf("results:\n%+v\nwant\n%+v", resp.Results, want)
	}
	if resp.DryRun {
		t.Error("dry_run set on an enforcing server")
	}
}

// TestCheckHandlerUnknownVersion: a version whose .info cannot be read
// is allowed as far as the other rules go, with a note saying min-age was
// not checked.
func TestCheckHandlerUnknownVersion(t *testing.T) {
	e := newEnv(t, false)
	srv := httptest.NewServer(e.engine.CheckHandler(e.cache))
	t.Cleanup(srv.Close)
	status, body := postCheck(t, srv.URL, `{"modules":[{"path":"example.com/young","version":"v1.9.9"}]}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var resp policy.CheckResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || !resp.Results[0].Allowed || len(resp.Results[0].Notes) != 1 ||
		!strings.HasPrefix(resp.Results[0].Notes[0], "min-age not checked: ") {
		t.Errorf("results: %+v", resp.Results)
	}
}

// TestCheckHandlerRejects: bad requests are refused with one line, and
// nothing is decided for them.
func TestCheckHandlerRejects(t *testing.T) {
	e := newEnv(t, false)
	srv := httptest.NewServer(e.engine.CheckHandler(e.cache))
	t.Cleanup(srv.Close)
	many := strings.Repeat(`{"path":"example.com/fine","version":"v1.0.0"},`, policy.MaxCheckModules)
	for _, c := range []struct{ name, body, want string }{
		{"not JSON", `modules`, "invalid JSON body"},
		{"unknown field", `{"modules":[],"x":1}`, "invalid JSON body"},
		{"two values", `{"modules":[]} {}`, "more than one value"},
		{"bad path", `{"modules":[{"path":"../x","version":"v1.0.0"}]}`, "modules[0]"},
		{"query", `{"modules":[{"path":"example.com/fine","version":"latest"}]}`, "not a module path with a canonical version"},
		{"too many", `{"modules":[` + many + `{"path":"example.com/fine","version":"v1.0.0"}]}`, "at most 10000"},
		{"too big", `{"modules":[{"path":"example.com/fine","version":"` + strings.Repeat("x", 5<<20) + `"}]}`, "body larger than"},
	} {
		status, body := postCheck(t, srv.URL, c.body)
		if status != http.StatusBadRequest || !strings.HasPrefix(body, "modgate: policy check: ") || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want 400 with %q", c.name, status, body, c.want)
		}
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
}
