package explain

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func explainString(t *testing.T, s string) []Explanation {
	t.Helper()
	exps, err := Explain(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return exps
}

// TestHandWritten covers errors hard to provoke in a test: each line is
// the go command's (or modgate's) text, with the rule it must hit, the
// subject it must name and a setting the fix must mention.
func TestHandWritten(t *testing.T) {
	cases := []struct {
		name, input, id, subject, fix string
	}{
		{"410 from sumdb",
			"go: corp.example.com/lib@v1.2.0: verifying module: corp.example.com/lib@v1.2.0: reading https://sum.golang.example/lookup/corp.example.com/lib@v1.2.0: 410 Gone\n\tserver response: not found: corp.example.com/lib@v1.2.0: unrecognized import path",
			"sumdb-unknown", "corp.example.com/lib", "GONOSUMDB='corp.example.com'"},
		{"404 from sumdb through a proxy",
			"go: example.com/x@v1.0.0: verifying go.mod: example.com/x@v1.0.0/go.mod: reading http://127.0.0.1:8080/sumdb/sum.golang.org/lookup/example.com/x@v1.0.0: 404 Not Found",
			"sumdb-unknown", "example.com/x", "GONOSUMDB"},
		{"go.sum mismatch",
			"verifying example.com/x@v1.0.0: checksum mismatch\n\tdownloaded: h1:AAAA=\n\tgo.sum:     h1:BBBB=\n\nSECURITY ERROR\nThis download does NOT match an earlier download recorded in go.sum.\nThe bits may have been replaced on the origin server, or an attacker may\nhave intercepted the download attempt.\n\nFor more information, see 'go help module-auth'.\n",
			"checksum-mismatch", "example.com/x", "go clean -modcache"},
		{"modgate's checksum refusal",
			"go: example.com/x@v1.0.0: reading https://modgate.example/example.com/x/@v/v1.0.0.zip: 403 Forbidden\n\tserver response: modgate: example.com/x@v1.0.0: SECURITY ERROR: checksum mismatch for example.com/x@v1.0.0: file has h1:A, checksum database sum.golang.org has h1:B",
			"modgate-checksum", "example.com/x@v1.0.0", "GOSUMDB=off"},
		{"terminal prompts",
			"go: git.corp.example.com/team/lib@v1.0.0: git ls-remote -q origin in /tmp/gopath/pkg/mod/cache/vcs/abc: exit status 128:\n\tfatal: could not read Username for 'https://git.corp.example.com': terminal prompts disabled\nConfirm the import path was typed correctly.",
			"terminal-prompts", "git.corp.example.com", "--private"},
		{"toolchain not available",
			"go: downloading go1.99.0 (linux/amd64)\ngo: download go1.99.0 for linux/amd64: toolchain not available",
			"toolchain-download", "", "GOTOOLCHAIN"},
		{"go.mod requires a newer go",
			"go: go.mod requires go >= 1.99 (running go 1.26.8; GOTOOLCHAIN=local)",
			"toolchain-required", "", "GOTOOLCHAIN=auto"},
		{"x509 name mismatch",
			`go: example.com/x@v1.0.0: Get "https://proxy.corp.example/example.com/x/@v/v1.0.0.info": tls: failed to verify certificate: x509: certificate is valid for other.corp.example, not proxy.corp.example`,
			"x509-name-mismatch", "proxy.corp.example", "GOPROXY"},
		{"x509 expired",
			`go: example.com/x@v1.0.0: Get "https://proxy.corp.example/example.com/x/@v/v1.0.0.info": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2030-01-01T00:00:00Z is after 2029-01-01T00:00:00Z`,
			"x509-expired", "proxy.corp.example", "clock"},
		{"TLS handshake timeout",
			`go: example.com/x@v1.0.0: Get "https://proxy.example/example.com/x/@v/v1.0.0.info": net/http: TLS handshake timeout`,
			"tls-handshake-timeout", "proxy.example", "HTTPS_PROXY"},
		{"i/o timeout",
			`go: example.com/x@v1.0.0: Get "https://proxy.example/example.com/x/@v/v1.0.0.info": dial tcp 192.0.2.1:443: i/o timeout`,
			"unreachable", "proxy.example", "HTTPS_PROXY"},
		{"vulnerable version",
			"go: example.com/vuln@v1.0.0: reading https://m.example/example.com/vuln/@v/v1.0.0.info: 403 Forbidden\n\tserver response: modgate: example.com/vuln@v1.0.0 blocked by policy: vuln: GO-2099-0001 (fixed in v1.0.1)",
			"policy-vuln", "example.com/vuln@v1.0.0", "go get example.com/vuln@v1.0.1"},
		{"too young",
			"go: example.com/young@v1.2.0: reading https://m.example/example.com/young/@v/v1.2.0.info: 403 Forbidden\n\tserver response: modgate: example.com/young@v1.2.0 blocked by policy: min-age: released 2h ago, the minimum is 72h",
			"policy-min-age", "example.com/young@v1.2.0", "go list -m -versions example.com/young"},
		{"retracted",
			"\tserver response: modgate: example.com/r@v1.0.1 blocked by policy: retracted: retracted by the module's author: broken build",
			"policy-retracted", "example.com/r@v1.0.1", "@latest"},
		{"allow list",
			"\tserver response: modgate: example.com/other@v1.0.0 blocked by policy: allow: not on the allow list",
			"policy-allow", "example.com/other", `"allow" list`},
		{"upstream timed out",
			"go: example.com/x@v1.2.3: reading https://m.example/example.com/x/@v/v1.2.3.info: 504 Gateway Timeout\n\tserver response: modgate: example.com/x@v1.2.3: upstream timed out (context deadline exceeded); try again, or check modgate's --upstream and network",
			"modgate-upstream-timeout", "example.com/x", "--upstream"},
		{"upstream failed",
			"\tserver response: modgate: example.com/x@v1.2.3: upstream failed (502 Bad Gateway); try again later, or check modgate's --upstream and network",
			"modgate-upstream-failed", "example.com/x", "--upstream"},
		{"rate limit",
			"\tserver response: modgate: example.com/x@v1.2.3: too many lookups of modules not stored in modgate from 10.0.0.7 (limit 20 per second); retry in 1s, or ask modgate's operator to raise --upstream-rate",
			"modgate-rate-limit", "", "--upstream-rate"},
		{"git authentication",
			"\tserver response: modgate: git.corp.example.com/t/lib@v1.0.0: upstream failed (git.corp.example.com: authentication failed (check the credentials for this host)); try again later, or check the credentials for this host",
			"modgate-git-auth", "git.corp.example.com", "--netrc"},
		{"missing go.sum entry for go.mod",
			"go: example.com/a@v1.0.0: missing go.sum entry for go.mod file; to add it:\n\tgo mod download example.com/a",
			"missing-go-sum", "example.com/a", "go mod download example.com/a"},
		{"internal error",
			"\tserver response: modgate: internal error in modgate (request id 7f3a) serving example.com/x@v1.0.0; ask its operator to check the logs for that request id",
			"modgate-internal", "", "7f3a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exps := explainString(t, c.input)
			if len(exps) != 1 {
				t.Fatalf("got %d explanations, want 1: %+v", len(exps), exps)
			}
			e := exps[0]
			if e.ID != c.id || e.Subject != c.subject || !strings.Contains(e.Fix, c.fix) {
				t.Errorf("got id %q subject %q fix %q\nwant id %q subject %q fix containing %q", e.ID, e.Subject, e.Fix, c.id, c.subject, c.fix)
			}
			if strings.Contains(e.Cause+e.Fix, "{") {
				t.Errorf("placeholder left in %q / %q", e.Cause, e.Fix)
			}
		})
	}
}

// TestDedupAndOrder: one explanation per cause and subject, in order of
// first appearance; unrecognised lines are not mentioned.
func TestDedupAndOrder(t *testing.T) {
	in := `go: downloading example.com/a v1.0.0
go: example.com/a@v1.0.0: Get "http://127.0.0.1:9/example.com/a/@v/v1.0.0.info": dial tcp 127.0.0.1:9: connect: connection refused
go: example.com/b@v1.0.0: Get "http://127.0.0.1:9/example.com/b/@v/v1.0.0.info": dial tcp 127.0.0.1:9: connect: connection refused
go: example.com/c@v1.0.0: module lookup disabled by GOPROXY=off
go: example.com/a@v1.0.0: module lookup disabled by GOPROXY=off
something else entirely
go: example.com/d@v1.0.0: Get "http://127.0.0.2:9/example.com/d/@v/v1.0.0.info": dial tcp 127.0.0.2:9: connect: connection refused
`
	exps := explainString(t, in)
	var got []string
	for _, e := range exps {
		got = append(got, e.ID+" "+e.Subject)
	}
	want := []string{"unreachable 127.0.0.1:9", "goproxy-off ", "unreachable 127.0.0.2:9"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNothingRecognised(t *testing.T) {
	exps := explainString(t, "go: downloading example.com/a v1.0.0\nok\n")
	if len(exps) != 0 {
		t.Fatalf("got %+v", exps)
	}
	var b bytes.Buffer
	WriteText(&b, exps)
	if b.String() != NothingRecognised+"\n" {
		t.Errorf("text: %q", b.String())
	}
	b.Reset()
	WriteJSON(&b, exps)
	var doc struct{ Explanations []Explanation }
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil || doc.Explanations == nil || len(doc.Explanations) != 0 {
		t.Errorf("json: %s (%v)", b.String(), err)
	}
}

// TestCredentialsRedacted: a URL with a password in the output does not
// reach the explanation.
func TestCredentialsRedacted(t *testing.T) {
	exps := explainString(t, `go: example.com/a@v1.0.0: Get "https://user:s3cret@proxy.example/example.com/a/@v/v1.0.0.info": dial tcp 192.0.2.1:443: connect: connection refused`)
	if len(exps) != 1 {
		t.Fatalf("got %+v", exps)
	}
	var b bytes.Buffer
	WriteJSON(&b, exps)
	WriteText(&b, exps)
	if strings.Contains(b.String(), "s3cret") {
		t.Errorf("credential shown:\n%s", b.String())
	}
}

// TestStreamed: input split at arbitrary points, and a huge line, give the
// same result as whole lines.
func TestStreamed(t *testing.T) {
	in := "go: example.com/c@v1.0.0: module lookup disabled by GOPROXY=off\n" + strings.Repeat("x", 1<<20) + "\ngo: go.mod requires go >= 1.99 (running go 1.21.0; GOTOOLCHAIN=local)"
	c := NewCollector(Default())
	s := c.Stream()
	for i := 0; i < len(in); i += 7 {
		s.Write([]byte(in[i:min(i+7, len(in))]))
	}
	s.Close()
	exps := c.Explanations()
	if len(exps) != 2 || exps[0].ID != "goproxy-off" || exps[1].ID != "toolchain-required" {
		t.Errorf("got %+v", exps)
	}
}

// TestCatalogTemplates: every placeholder of a template is one the engine
// fills (a named group of the rule, or a built-in one).
func TestCatalogTemplates(t *testing.T) {
	builtin := map[string]bool{"module": true, "version": true, "host": true, "modver": true, "root": true}
	for _, r := range Default() {
		names := map[string]bool{}
		for _, n := range r.Match.SubexpNames() {
			names[n] = true
		}
		for _, p := range regexp.MustCompile(`\{([a-z]+)\}`).FindAllStringSubmatch(r.Cause+r.Fix, -1) {
			if !builtin[p[1]] && !names[p[1]] {
				t.Errorf("rule %s: placeholder {%s} is never filled", r.ID, p[1])
			}
		}
	}
}
