package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/store"
)

func TestVersionKeyRoundtrip(t *testing.T) {
	for _, tt := range []struct {
		path, version, ext string
		key                string
	}{
		{"golang.org/x/mod", "v0.43.0", "mod", "mod/golang.org/x/mod/@v/v0.43.0.mod"},
		{"github.com/Foo/Bar", "v1.2.3", "zip", "mod/github.com/!foo/!bar/@v/v1.2.3.zip"},
		{"github.com/foo/bar", "v1.2.3", "zip", "mod/github.com/foo/bar/@v/v1.2.3.zip"},
		{"github.com/BurntSushi/toml", "v2.0.0+incompatible", "info", "mod/github.com/!burnt!sushi/toml/@v/v2.0.0+incompatible.info"},
		{"github.com/foo/bar/v2", "v2.0.0-RC1", "ziphash", "mod/github.com/foo/bar/v2/@v/v2.0.0-!r!c1.ziphash"},
		{"example.com/m", "v0.0.0-20240101120000-abcdef123456", "info", "mod/example.com/m/@v/v0.0.0-20240101120000-abcdef123456.info"},
		{"gopkg.in/yaml.v3", "v3.0.1", "mod", "mod/gopkg.in/yaml.v3/@v/v3.0.1.mod"},
		{"example.com/a.b-c_d~e", "v1.0.0", "zip", "mod/example.com/a.b-c_d~e/@v/v1.0.0.zip"},
	} {
		key, err := store.VersionKey(tt.path, tt.version, tt.ext)
		if err != nil {
			t.Errorf("VersionKey(%q, %q, %q): %v", tt.path, tt.version, tt.ext, err)
			continue
		}
		if key != tt.key {
			t.Errorf("VersionKey(%q, %q, %q) = %q, want %q", tt.path, tt.version, tt.ext, key, tt.key)
		}
		if err := store.CheckKey(key); err != nil {
			t.Errorf("CheckKey(%q): %v", key, err)
		}
		if key != strings.ToLower(key) {
			t.Errorf("key %q is not lower case", key)
		}
		p, v, e, err := store.ParseVersionKey(key)
		if err != nil || p != tt.path || v != tt.version || e != tt.ext {
			t.Errorf("ParseVersionKey(%q) = %q, %q, %q, %v; want %q, %q, %q",
				key, p, v, e, err, tt.path, tt.version, tt.ext)
		}
		prefix, err := store.VersionPrefix(tt.path)
		if err != nil || !strings.HasPrefix(key, prefix) {
			t.Errorf("VersionPrefix(%q) = %q, %v; not a prefix of %q", tt.path, prefix, err, key)
		}
	}
}

func TestVersionKeyCaseDistinct(t *testing.T) {
	a, _ := store.VersionKey("github.com/Foo/bar", "v1.0.0", "zip")
	b, _ := store.VersionKey("github.com/foo/bar", "v1.0.0", "zip")
	if a == b || strings.EqualFold(a, b) {
		t.Errorf("keys for Foo and foo are equal (ignoring case): %q, %q", a, b)
	}
}

func TestVersionKeyInvalid(t *testing.T) {
	for _, tt := range []struct{ path, version string }{
		{"", "v1.0.0"},
		{"example.com/../x", "v1.0.0"},
		{"example.com/a!b", "v1.0.0"},
		{"example.com/m", "v1.0.0/../../x"},
		{"example.com/m", "v1.0.0!"},
	} {
		if key, err := store.VersionKey(tt.path, tt.version, "zip"); err == nil {
			t.Errorf("VersionKey(%q, %q) = %q, want error", tt.path, tt.version, key)
		}
	}
}

func TestParseVersionKeyInvalid(t *testing.T) {
	for _, key := range []string{
		"",
		"meta/example.com/m/list",
		"mod/example.com/m",
		"mod/example.com/m/@v/v1",                // no extension
		"mod/example.com/m/@v/v1.0.0",            // "0" is not a module file extension
		"mod/github.com/Foo/bar/@v/v1.0.0.zip",   // upper case is not a valid escaped path
		"mod/example.com/m/@v/v1.0.0-RC1.zip",    // nor a valid escaped version
		"mod/example.com/m/@v/v1.0.0/x/y.zip",    // slash in version
		"mod/example.com/m/@v/!!v1.0.0.zip",      // bad escape
		"mod/example.com/../m/@v/v1.0.0.zip",     // dot-dot element
		"mod/example.com/m/@v/sub/@v/v1.0.0.zip", // second @v
	} {
		if p, v, e, err := store.ParseVersionKey(key); err == nil {
			t.Errorf("ParseVersionKey(%q) = %q, %q, %q; want error", key, p, v, e)
		}
	}
}

func TestCheckKey(t *testing.T) {
	for _, tt := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"a/b/c.zip", true},
		{"mod/github.com/!foo/@v/v1.0.0+incompatible.zip", true},
		{"a/.b", true},
		{"a/..b", true},
		{"a/b..", true},
		{"...", true},
		{"", false},
		{"/", false},
		{"/abs", false},
		{"a/../b", false},
		{"a//b", false},
		{"./a", false},
		{"a/.", false},
		{"a/..", false},
		{"..", false},
		{".", false},
		{"a/", false},
		{"a\\b", false},
		{"..\\a", false},
		{"a\x00b", false},
	} {
		err := store.CheckKey(tt.key)
		if tt.ok && err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", tt.key, err)
		}
		if !tt.ok && !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalidKey", tt.key, err)
		}
	}
}

func TestMetaKey(t *testing.T) {
	key, err := store.MetaKey("github.com/Foo/bar", "list")
	if err != nil || key != "meta/github.com/!foo/bar/@/list" {
		t.Errorf("MetaKey = %q, %v", key, err)
	}
	if _, err := store.MetaKey("bad path/..", "list"); err == nil {
		t.Error("MetaKey accepted an invalid module path")
	}
}

func TestQueryKeyStable(t *testing.T) {
	// The key is persisted: it must not change between releases.
	key, err := store.QueryKey("github.com/Foo/bar", "master")
	if err != nil {
		t.Fatal(err)
	}
	const want = "meta/github.com/!foo/bar/@/query/fc613b4dfd6736a7bd268c8a0e74ed0d"
	if key != want {
		t.Errorf("QueryKey = %q, want %q", key, want)
	}
	again, _ := store.QueryKey("github.com/Foo/bar", "master")
	if again != key {
		t.Errorf("QueryKey not deterministic: %q vs %q", key, again)
	}
	seen := map[string]string{}
	for _, q := range []string{"master", "main", "Master", "feature/x y", "../../etc", "v1.2.3", ""} {
		k, err := store.QueryKey("github.com/Foo/bar", q)
		if err != nil {
			t.Fatalf("QueryKey(%q): %v", q, err)
		}
		if err := store.CheckKey(k); err != nil {
			t.Errorf("QueryKey(%q) = %q: %v", q, k, err)
		}
		if prev, dup := seen[k]; dup {
			t.Errorf("QueryKey(%q) == QueryKey(%q) = %q", q, prev, k)
		}
		seen[k] = q
	}
}
