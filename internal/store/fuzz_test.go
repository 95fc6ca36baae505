package store_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/store"
)

var fileExts = []string{"info", "mod", "zip", "ziphash"}

// keyIsSafe fails unless key is one the disk store may use: it passes
// CheckKey, stays under the root, and fits the limits.
func keyIsSafe(t *testing.T, d *store.Disk, key string) {
	t.Helper()
	if err := store.CheckKey(key); err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	if len(key) > store.MaxKeyLen {
		t.Fatalf("key %q: %d bytes", key, len(key))
	}
	for elem := range strings.SplitSeq(key, "/") {
		if elem == "" || elem == "." || elem == ".." || len(elem) > store.MaxKeyElemLen {
			t.Fatalf("key %q: element %q", key, elem)
		}
	}
	p, err := store.JoinUnder(d, key)
	if err != nil || !strings.HasPrefix(p, d.Root()+string(filepath.Separator)) {
		t.Fatalf("key %q resolves to %q (%v), outside %s", key, p, err, d.Root())
	}
}

func FuzzVersionKey(f *testing.F) {
	for _, s := range []struct{ path, version string }{
		{"golang.org/x/mod", "v0.43.0"},
		{"github.com/Foo/Bar", "v1.2.3"},
		{"github.com/BurntSushi/toml", "v2.0.0+incompatible"},
		{"github.com/foo/bar/v2", "v2.0.0-RC1"},
		{"example.com/m", "v0.0.0-20240101120000-abcdef123456"},
		{"gopkg.in/yaml.v3", "v3.0.1"},
		{"example.com/a.b-c_d~e", "v1.0.0"},
		{"example.com/../x", "v1.0.0"},
		{"example.com/m", "v1.0.0/../../x"},
		{"example.com/" + strings.Repeat("a", 300), "v1.0.0"},
		{"example.com/m", "v1.0.0-" + strings.Repeat("R", 250)},
	} {
		for i := range fileExts {
			f.Add(s.path, s.version, uint8(i))
		}
	}
	f.Add("example.com/m", "v1.0.0", uint8(200)) // not a module file
	d := newDisk(f, f.TempDir())
	f.Fuzz(func(t *testing.T, path, version string, extIdx uint8) {
		ext := "bogus"
		if int(extIdx) < len(fileExts) {
			ext = fileExts[extIdx]
		}
		key, err := store.VersionKey(path, version, ext)
		if err != nil {
			return
		}
		if ext == "bogus" {
			t.Fatalf("VersionKey accepted extension %q: %q", ext, key)
		}
		keyIsSafe(t, d, key)
		if !strings.HasPrefix(key, "mod/") || key != strings.ToLower(key) {
			t.Fatalf("key %q: not under mod/, or not lower case", key)
		}
		p, v, e, err := store.ParseVersionKey(key)
		if err != nil || p != path || v != version || e != ext {
			t.Fatalf("ParseVersionKey(%q) = %q, %q, %q, %v; want %q, %q, %q", key, p, v, e, err, path, version, ext)
		}
		prefix, err := store.VersionPrefix(path)
		if err != nil || !strings.HasPrefix(key, prefix) {
			t.Fatalf("VersionPrefix(%q) = %q, %v; not a prefix of %q", path, prefix, err, key)
		}
	})
}

func FuzzParseVersionKey(f *testing.F) {
	for _, k := range []string{
		"mod/golang.org/x/mod/@v/v0.43.0.mod",
		"mod/github.com/!foo/!bar/@v/v1.2.3.zip",
		"mod/github.com/foo/bar/v2/@v/v2.0.0-!r!c1.ziphash",
		"mod/example.com/m/@v/v1.0.0.info",
		"mod/example.com/m/@v/v1.0.0",
		"mod/github.com/Foo/bar/@v/v1.0.0.zip",
		"mod/example.com/m/@v/!!v1.0.0.zip",
		"mod/example.com/../m/@v/v1.0.0.zip",
		"mod/example.com/m/@v/sub/@v/v1.0.0.zip",
		"meta/example.com/m/@/list",
		"",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		p, v, e, err := store.ParseVersionKey(key)
		if err != nil {
			return
		}
		// Exactly one key per module file: parsing then building gives
		// the key back.
		again, err := store.VersionKey(p, v, e)
		if err != nil || again != key {
			t.Fatalf("ParseVersionKey(%q) = %q, %q, %q; VersionKey of that = %q, %v", key, p, v, e, again, err)
		}
	})
}

func FuzzCheckKey(f *testing.F) {
	for _, k := range []string{
		"a", "a/b/c.zip", "mod/github.com/!foo/@v/v1.0.0+incompatible.zip",
		"a/.b", "...", "", "/", "/abs", "a/../b", "a//b", "./a", "a/.", "..",
		"a\\b", "..\\a", "a\x00b", ".tmp/put-1", "C:/x", "C:x", "a/b/",
		strings.Repeat("a", 256), strings.Repeat("a/", 512) + "a",
	} {
		f.Add(k)
	}
	d := newDisk(f, f.TempDir())
	f.Fuzz(func(t *testing.T, key string) {
		err := store.CheckKey(key)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidKey) {
				t.Fatalf("CheckKey(%q) = %v, not ErrInvalidKey", key, err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("CheckKey(%d bytes): error of %d bytes", len(key), len(err.Error()))
			}
			return
		}
		keyIsSafe(t, d, key)
	})
}

func FuzzMetaAndQueryKey(f *testing.F) {
	for _, s := range []struct{ path, arg string }{
		{"github.com/Foo/bar", "master"},
		{"github.com/Foo/bar", "feature/x y"},
		{"golang.org/x/mod", "../../etc"},
		{"example.com/m", ""},
		{"example.com/m", "list"},
		{"example.com/m", "latest"},
		{"example.com/m", "query/../../x"},
		{"example.com/" + strings.Repeat("a", 250), "v1.2.3"},
	} {
		f.Add(s.path, s.arg)
	}
	d := newDisk(f, f.TempDir())
	f.Fuzz(func(t *testing.T, path, arg string) {
		if key, err := store.QueryKey(path, arg); err == nil {
			keyIsSafe(t, d, key)
			prefix, perr := store.MetaKey(path, "query")
			if perr != nil || !strings.HasPrefix(key, prefix+"/") {
				t.Fatalf("QueryKey(%q, %q) = %q, not under MetaKey(%q, \"query\") = %q (%v)", path, arg, key, path, prefix, perr)
			}
			// Distinct queries, distinct keys.
			if other, _ := store.QueryKey(path, arg+"x"); other == key {
				t.Fatalf("QueryKey(%q, %q) == QueryKey(.., %q)", path, arg, arg+"x")
			}
		}
		if key, err := store.MetaKey(path, arg); err == nil {
			keyIsSafe(t, d, key)
			// Never a module file's key, nor in the staging directory.
			if !strings.HasPrefix(key, "meta/") {
				t.Fatalf("MetaKey(%q, %q) = %q", path, arg, key)
			}
		}
	})
}
