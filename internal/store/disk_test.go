package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/store/storetest"
)

func newDisk(t testing.TB, root string) *store.Disk {
	t.Helper()
	d, err := store.NewDisk(root)
	if err != nil {
		t.Fatalf("NewDisk: %v", err)
	}
	return d
}

// stagingFiles returns the names of the files in the staging directory.
func stagingFiles(t testing.TB, d *store.Disk) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.Root(), store.StagingDir))
	if err != nil {
		t.Fatalf("reading staging dir: %v", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestDiskCompliance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		d := newDisk(t, t.TempDir())
		// Whatever the subtest did (failed, cancelled or concurrent Puts),
		// no temp file may be left behind.
		t.Cleanup(func() {
			if names := stagingFiles(t, d); len(names) > 0 {
				t.Errorf("staging dir not empty after test: %q", names)
			}
		})
		return d
	})
}

func TestDiskRejectsEscapingKeys(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	secret := filepath.Join(parent, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newDisk(t, root)
	ctx := t.Context()

	keys := append(slices.Clone(storetest.InvalidKeys),
		"../secret", "a/../../secret", "../root/x", "..\\secret",
		// The staging directory is reserved.
		".tmp", ".tmp/put-123", ".tmp/x/y")
	for _, key := range keys {
		if _, _, err := d.Open(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Open(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := d.Put(ctx, key, strings.NewReader("pwned")); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := d.Delete(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
		t.Errorf("file outside root: %q, %v", b, err)
	}
	for _, prefix := range []string{"../", "../secret", "a/../../", ".tmp/"} {
		err := d.List(ctx, prefix, func(k string) error {
			t.Errorf("List(%q) listed %q", prefix, k)
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("List(%q) = %v", prefix, err)
		}
	}

	// The containment check behind CheckKey, on its own.
	for _, rel := range []string{"", ".", "..", "../x", "a/../../x", "/etc/passwd", "a/b/../../.."} {
		if p, err := store.JoinUnder(d, rel); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("JoinUnder(%q) = %q, %v; want ErrInvalidKey", rel, p, err)
		}
	}
	for _, rel := range []string{"a", "a/b", "a/./b", "a/../b"} {
		p, err := store.JoinUnder(d, rel)
		if err != nil || !strings.HasPrefix(p, d.Root()+string(filepath.Separator)) {
			t.Errorf("JoinUnder(%q) = %q, %v; want a path under the root", rel, p, err)
		}
	}
}

// TestDiskCrash simulates a process killed in the middle of a Put: a
// partial temp file in the staging dir must never become visible.
func TestDiskCrash(t *testing.T) {
	root := t.TempDir()
	ctx := t.Context()
	d := newDisk(t, root)
	key, _ := store.VersionKey("example.com/crash", "v1.0.0", "zip")
	if err := d.Put(ctx, "meta/example.com/crash/list", strings.NewReader("v0.9.0\n")); err != nil {
		t.Fatal(err)
	}
	// "kill -9" after writing half the zip to the staging dir.
	partial := filepath.Join(root, store.StagingDir, "put-4242")
	if err := os.WriteFile(partial, []byte("PK\x03\x04 half a zip"), 0o600); err != nil {
		t.Fatal(err)
	}

	d = newDisk(t, root) // restart
	if _, _, err := d.Open(ctx, key); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Open(%q) after crash = %v, want ErrNotExist", key, err)
	}
	var keys []string
	if err := d.List(ctx, "", func(k string) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"meta/example.com/crash/list"}) {
		t.Errorf("List after crash = %q", keys)
	}
	// The store works normally afterwards.
	if err := d.Put(ctx, key, strings.NewReader("full zip")); err != nil {
		t.Fatal(err)
	}
	if b := readKey(t, d, key); b != "full zip" {
		t.Errorf("after restart: %q", b)
	}
}

func readKey(t testing.TB, s store.Store, key string) string {
	t.Helper()
	rc, _, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDiskCaseDistinctModules(t *testing.T) {
	d := newDisk(t, t.TempDir())
	ctx := t.Context()
	upper, err := store.VersionKey("github.com/Foo/bar", "v1.0.0", "mod")
	if err != nil {
		t.Fatal(err)
	}
	lower, err := store.VersionKey("github.com/foo/bar", "v1.0.0", "mod")
	if err != nil {
		t.Fatal(err)
	}
	if upper == lower {
		t.Fatalf("keys collide: %q", upper)
	}
	if err := d.Put(ctx, upper, strings.NewReader("module github.com/Foo/bar\n")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, lower, strings.NewReader("module github.com/foo/bar\n")); err != nil {
		t.Fatal(err)
	}
	if got := readKey(t, d, upper); got != "module github.com/Foo/bar\n" {
		t.Errorf("%s = %q", upper, got)
	}
	if got := readKey(t, d, lower); got != "module github.com/foo/bar\n" {
		t.Errorf("%s = %q", lower, got)
	}
	// On disk, both are distinct all-lower-case files, so they stay
	// distinct on a case-insensitive filesystem too.
	for _, key := range []string{upper, lower} {
		p := filepath.Join(d.Root(), filepath.FromSlash(key))
		if _, err := os.Stat(p); err != nil {
			t.Errorf("file for %q: %v", key, err)
		}
		if rel, _ := filepath.Rel(d.Root(), p); rel != strings.ToLower(rel) {
			t.Errorf("file %q is not lower case", rel)
		}
	}
}

func TestDiskOpenReturnsFile(t *testing.T) {
	d := newDisk(t, t.TempDir())
	if err := d.Put(t.Context(), "a/b", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	rc, _, err := d.Open(t.Context(), "a/b")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, ok := rc.(*os.File)
	if !ok {
		t.Fatalf("Open returned %T, want *os.File (for sendfile)", rc)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 {
		t.Errorf("object mode = %v, want 0644", fi.Mode().Perm())
	}
}

// TestDiskKeyConflicts: on disk a key cannot be both an object and a
// "directory" of other keys. Such Puts fail cleanly.
func TestDiskKeyConflicts(t *testing.T) {
	d := newDisk(t, t.TempDir())
	ctx := t.Context()
	if err := d.Put(ctx, "a/b", strings.NewReader("file")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "a/b/c", strings.NewReader("below a file")); err == nil {
		t.Error("Put(a/b/c) with a/b an object succeeded")
	}
	if err := d.Put(ctx, "a", strings.NewReader("over a directory")); err == nil {
		t.Error("Put(a) with a/b an object succeeded")
	}
	if got := readKey(t, d, "a/b"); got != "file" {
		t.Errorf("a/b = %q", got)
	}
	if names := stagingFiles(t, d); len(names) > 0 {
		t.Errorf("failed Puts left temp files: %q", names)
	}
}

// TestDiskPutStreams checks that Put does not buffer the object in memory.
func TestDiskPutStreams(t *testing.T) {
	d := newDisk(t, t.TempDir())
	const size = 64 << 20
	// Warm up the buffer pool and the directory.
	if err := d.Put(t.Context(), "big/warm", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := d.Put(t.Context(), "big/obj", storetest.DataReader(7, size)); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("Put of %d MiB allocated %d bytes; it should stream", size>>20, alloc)
	}
}

func TestDiskPing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	d := newDisk(t, root)
	if err := d.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if names := stagingFiles(t, d); len(names) > 0 {
		t.Errorf("Ping left %q", names)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := d.Ping(t.Context()); err == nil {
		t.Error("Ping succeeded with the root removed")
	}
}

func TestNewDiskRootIsFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := store.NewDisk(f); err == nil {
		t.Error("NewDisk on a regular file succeeded")
	}
}

func BenchmarkDiskOpen(b *testing.B) {
	d := newDisk(b, b.TempDir())
	key, _ := store.VersionKey("github.com/example/bench", "v1.0.0", "info")
	content := bytes.Repeat([]byte("x"), 4096)
	if err := d.Put(b.Context(), key, bytes.NewReader(content)); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8192)
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		rc, _, err := d.Open(b.Context(), key)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.ReadFull(rc, buf)
		if n != len(content) || err != io.ErrUnexpectedEOF {
			b.Fatalf("read %d, %v", n, err)
		}
		rc.Close()
	}
}

func BenchmarkDiskPut1MiB(b *testing.B) {
	d := newDisk(b, b.TempDir())
	key, _ := store.VersionKey("github.com/example/bench", "v1.0.0", "zip")
	content, err := io.ReadAll(storetest.DataReader(1, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Put(b.Context(), key, bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiskPutNewModule: the first file of a module, whose
// directories do not exist yet (the slow path of a Put: they are built
// around the file and placed in one rename).
func BenchmarkDiskPutNewModule(b *testing.B) {
	d := newDisk(b, b.TempDir())
	content := []byte("module example.com/bench\n")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key, _ := store.VersionKey(fmt.Sprintf("example.com/b%d", i), "v1.0.0", "mod")
		i++
		if err := d.Put(b.Context(), key, bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDiskLongNames: a module path element longer than a file name may be
// is an invalid key (the HTTP layer answers 400), not a storage failure
// (500) from the filesystem.
func TestDiskLongNames(t *testing.T) {
	d := newDisk(t, t.TempDir())
	ctx := t.Context()
	long := "example.com/" + strings.Repeat("a", 300)
	if _, err := store.VersionKey(long, "v1.0.0", "zip"); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("VersionKey with a 300-byte element: %v, want ErrInvalidKey", err)
	}
	if _, err := store.MetaKey(long, "list"); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("MetaKey with a 300-byte element: %v, want ErrInvalidKey", err)
	}
	if _, err := store.QueryKey(long, "main"); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("QueryKey with a 300-byte element: %v, want ErrInvalidKey", err)
	}
	if _, err := store.VersionPrefix(long); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("VersionPrefix with a 300-byte element: %v, want ErrInvalidKey", err)
	}
	// Keys built by hand reach the filesystem only if they fit.
	deep := "mod/" + strings.Repeat("abcdefgh/", 120) + "x" // 1085 bytes, short elements
	for _, key := range []string{
		"mod/example.com/" + strings.Repeat("a", 300) + "/@v/v1.0.0.zip",
		"mod/example.com/m/@v/v1.0.0-" + strings.Repeat("r", 250) + ".zip",
		deep,
	} {
		if err := d.Put(ctx, key, strings.NewReader("x")); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%.40q...) = %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := d.Open(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Open(%.40q...) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := d.Stat(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Stat(%.40q...) = %v, want ErrInvalidKey", key, err)
		}
		if err := d.Delete(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Delete(%.40q...) = %v, want ErrInvalidKey", key, err)
		}
		if err := store.CheckKey(key); err == nil || len(err.Error()) > 200 {
			t.Errorf("CheckKey(%.40q...) = %v, want a short error", key, err)
		}
	}
	// The limits are not off by one: 255 bytes and 1024 bytes fit.
	for _, key := range []string{
		"mod/example.com/" + strings.Repeat("a", 255) + "/@v/v1.0.0.zip",
		"mod/" + strings.Repeat("abcdefgh/", 113) + "xxx", // 1024 bytes
	} {
		if err := store.CheckKey(key); err != nil {
			t.Errorf("CheckKey(%.40q...) (%d bytes) = %v", key, len(key), err)
		}
		if err := d.Put(ctx, key, strings.NewReader("x")); err != nil {
			t.Errorf("Put(%.40q...) = %v", key, err)
		}
	}
}
