package auth_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/auth"
)

var secretRE = regexp.MustCompile(`^mgt_[A-Za-z0-9_-]{43}$`)

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestFileFormat: Add creates the file 0600 with exactly the documented
// keys, the SHA-256 of the token and never the token; the token is
// "mgt_" and 43 base64url characters (32 bytes, no padding).
func TestFileFormat(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.json")
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("X", 3600))
	ci, err := auth.Add(file, "ci", []string{"corp.example.com", "golang.org/x/*"}, false, now)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := auth.Add(file, "ops.team_1-a", []string{"*"}, true, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{ci, ops} {
		if !secretRE.MatchString(s) {
			t.Errorf("token %q is not mgt_ + base64url of 32 bytes", s)
		}
	}
	if ci == ops {
		t.Fatal("two tokens are equal")
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("tokens file mode = %v, want 0600", info.Mode().Perm())
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), ci) || strings.Contains(string(data), ops) {
		t.Fatalf("tokens file holds a token:\n%s", data)
	}
	var raw struct {
		Tokens []map[string]any `json:"tokens"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"name": "ci", "hash": hashOf(ci), "allow": []any{"corp.example.com", "golang.org/x/*"}, "admin": false, "created": "2026-01-02T02:04:05Z"},
		{"name": "ops.team_1-a", "hash": hashOf(ops), "allow": []any{"*"}, "admin": true, "created": "2026-01-02T02:04:05Z"},
	}
	if got, wantJSON := fmt.Sprint(raw.Tokens), fmt.Sprint(want); got != wantJSON {
		t.Errorf("tokens file =\n%s\nwant %s", data, wantJSON)
	}

	tokens, err := auth.List(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 2 || tokens[0].Name != "ci" || tokens[0].AllowString() != "corp.example.com,golang.org/x/*" || tokens[0].Admin ||
		tokens[1].Name != "ops.team_1-a" || !tokens[1].Admin || !tokens[1].Created.Equal(now.Truncate(time.Second)) {
		t.Errorf("List = %+v", tokens)
	}

	if _, err := auth.Add(file, "ci", []string{"*"}, false, now); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("second Add of ci: err = %v, want exists already", err)
	}
	if err := auth.Revoke(file, "nobody"); !errors.Is(err, auth.ErrUnknownToken) {
		t.Errorf("Revoke(nobody) = %v, want ErrUnknownToken", err)
	}
	if err := auth.Revoke(file, "ci"); err != nil {
		t.Fatal(err)
	}
	if tokens, err := auth.List(file); err != nil || len(tokens) != 1 || tokens[0].Name != "ops.team_1-a" {
		t.Errorf("List after revoking ci = %+v, %v", tokens, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(file))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"tokens.json", "tokens.json.lock"}) {
		t.Errorf("directory holds %v, want the file and its lock (no temporary files left)", names)
	}
}

func TestAddRefusesBadInput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.json")
	for _, tc := range []struct {
		name  string
		allow []string
	}{
		{"", []string{"*"}},
		{"has space", []string{"*"}},
		{"slash/y", []string{"*"}},
		{strings.Repeat("a", 65), []string{"*"}},
		{"anonymous", []string{"*"}},
		{"ok", nil},
		{"ok", []string{"[a-"}},
		{"ok", []string{"a,b"}},
	} {
		if _, err := auth.Add(file, tc.name, tc.allow, false, time.Now()); err == nil {
			t.Errorf("Add(%q, %q) succeeded", tc.name, tc.allow)
		}
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused Adds created the file: %v", err)
	}
	if _, err := auth.Add(file, strings.Repeat("a", 64), []string{"*"}, false, time.Now()); err != nil {
		t.Errorf("Add of a 64-character name: %v", err)
	}
	if p, err := auth.ParsePatterns(" corp.example.com/* , ,*"); err != nil || !slices.Equal(p, []string{"corp.example.com/*", "*"}) {
		t.Errorf("ParsePatterns = %q, %v", p, err)
	}
	if _, err := auth.ParsePatterns("ok,[x"); err == nil {
		t.Error("ParsePatterns accepted a bad glob")
	}
}

// TestConcurrentAdd: many Adds at once, each opening the file on its own
// as separate `modgate token` processes would, lose no entry.
func TestConcurrentAdd(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.json")
	const n = 16
	var wg sync.WaitGroup
	secrets := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			secrets[i], errs[i] = auth.Add(file, fmt.Sprintf("t%d", i), []string{"*"}, false, time.Now())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Add t%d: %v", i, err)
		}
	}
	tokens, err := auth.List(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != n {
		t.Fatalf("file holds %d tokens after %d concurrent Adds", len(tokens), n)
	}
	data, _ := os.ReadFile(file)
	for i, s := range secrets {
		if !strings.Contains(string(data), hashOf(s)) {
			t.Errorf("hash of t%d missing", i)
		}
	}
}

// TestFileErrors: a broken file is refused with an error naming the
// problem (and the line of a syntax error), never quoting a hash or a
// token.
func TestFileErrors(t *testing.T) {
	const secret = "mgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	h := hashOf(secret)
	entry := func(name, hash string) string {
		return fmt.Sprintf(`{"name": %q, "hash": %q, "allow": ["*"], "admin": false, "created": "2026-01-02T03:04:05Z"}`, name, hash)
	}
	for _, tc := range []struct{ content, want string }{
		{"{\n\"tokens\": [\n" + entry("a", h) + ",\n}", "line 4"},
		{`{"tokens": [` + entry("a", h) + "," + entry("a", hashOf("x")) + `]}`, "appears twice"},
		{`{"tokens": [` + entry("a", h) + "," + entry("b", h) + `]}`, "hash of an earlier token"},
		{`{"tokens": [` + entry("a", "md5:"+h[7:]) + `]}`, `does not start with "sha256:"`},
		{`{"tokens": [` + entry("a", h[:20]) + `]}`, "64 hexadecimal digits"},
		{`{"tokens": [` + entry("a b", h) + `]}`, "outside [A-Za-z0-9._-]"},
		{`{"tokens": [{"name": "a", "hash": "` + h + `", "alow": ["*"]}]}`, `unknown field "alow"`},
		{`{"tokens": [{"name": "a", "hash": "` + h + `", "allow": ["*"], "created": "yesterday"}]}`, "RFC 3339"},
		{`{"` + secret + `": 1}`, "unknown field"},
	} {
		file := filepath.Join(t.TempDir(), "tokens.json")
		if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := auth.List(file)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("List of %s: err = %v, want %q", tc.content, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), h[7:]) || strings.Contains(err.Error(), secret) {
			t.Errorf("error quotes a hash or a token: %v", err)
		}
	}
}
