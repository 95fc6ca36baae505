package store_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/store"
)

// TestDiskPutRemovedDirectories: a Put succeeds while another process
// removes the directories it finds empty (retention does, after removing
// a module's last version), whichever moment they go, even when the
// remover never stops: the missing directories are placed in one rename
// with the file already inside, so a remover cannot win every time.
func TestDiskPutRemovedDirectories(t *testing.T) {
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{"mod/example.com/m/@v", "mod/example.com/m", "mod/example.com"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, dir := range dirs {
					os.Remove(filepath.Join(d.Root(), filepath.FromSlash(dir)))
				}
				runtime.Gosched()
			}
		})
	}
	for i := range 300 {
		key := fmt.Sprintf("mod/example.com/m/@v/v1.0.%d.mod", i)
		body := fmt.Sprintf("module example.com/m // %d\n", i)
		if err := d.Put(t.Context(), key, strings.NewReader(body)); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("put %d: %v", i, err)
		}
		// Read it back while the removers still run: the file holds its
		// directories.
		r, _, err := d.Open(t.Context(), key)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("open %d: %v", i, err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if string(got) != body {
			t.Errorf("object %d = %q, want %q", i, got, body)
		}
		if err := d.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	// Nothing stays behind in the staging directory.
	entries, err := os.ReadDir(filepath.Join(d.Root(), ".tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the staging directory: %s", e.Name())
	}
}

// TestDiskPutConcurrentNewDirectories: writers that all find a module's
// directories missing at once each place their file, whoever's tree
// lands first.
func TestDiskPutConcurrentNewDirectories(t *testing.T) {
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Go(func() {
				key := fmt.Sprintf("mod/example.com/r%d/@v/v1.0.%d.mod", round, w)
				errs <- d.Put(t.Context(), key, strings.NewReader("module x\n"))
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var n int
		d.List(t.Context(), fmt.Sprintf("mod/example.com/r%d/", round), func(string) error { n++; return nil })
		if n != 8 {
			t.Fatalf("round %d: %d objects listed, want 8", round, n)
		}
	}
	fi, err := os.Stat(filepath.Join(d.Root(), "mod", "example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o755 {
		t.Errorf("a placed directory has mode %v, want 0755", perm)
	}
}

// TestDiskCleanStagingTrees: a directory tree a dead process left in the
// staging directory, with its file inside, goes once it is an hour old;
// a fresh one stays.
func TestDiskCleanStagingTrees(t *testing.T) {
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(d.Root(), ".tmp")
	mk := func(name string) string {
		tree := filepath.Join(staging, name)
		inner := filepath.Join(tree, "m", "@v")
		if err := os.MkdirAll(inner, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(inner, "v1.0.0.zip"), make([]byte, 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		return tree
	}
	old, fresh := mk("dir-old"), mk("dir-fresh")
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	n, size, err := d.CleanStaging(t.Context())
	if err != nil || n != 1 || size != 1000 {
		t.Errorf("CleanStaging = %d files, %d bytes, %v; want 1, 1000, nil", n, size, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old tree is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("the fresh tree is gone: %v", err)
	}
}

// TestDiskPutTreeChangesUnderIt: the two ways the tree can change between
// Put finding directories missing and placing them each make it try
// again, and it succeeds: a remover takes the parent (the placed tree
// then goes one level higher), or another writer places the same
// directory first (the file then goes into theirs, which keeps both).
func TestDiskPutTreeChangesUnderIt(t *testing.T) {
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	root := d.Root()
	if err := d.Put(ctx, "mod/example.com/other/@v/list", strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "mod/example.com/other/@v/list"); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, "mod", "example.com", "other", "@v"))
	os.Remove(filepath.Join(root, "mod", "example.com", "other"))

	t.Run("ParentRemoved", func(t *testing.T) {
		var tops []string
		defer store.SetBeforePlaceHook(func(top string) {
			tops = append(tops, top)
			if len(tops) == 1 {
				// The remover takes example.com, now empty.
				if err := os.Remove(filepath.Dir(top)); err != nil {
					t.Errorf("remove parent: %v", err)
				}
			}
		})()
		if err := d.Put(ctx, "mod/example.com/a/@v/v1.0.0.mod", strings.NewReader("module a\n")); err != nil {
			t.Fatal(err)
		}
		want := []string{filepath.Join(root, "mod", "example.com", "a"), filepath.Join(root, "mod", "example.com")}
		if !slices.Equal(tops, want) {
			t.Errorf("placed at %q, want %q", tops, want)
		}
	})
	t.Run("PlacedByAnother", func(t *testing.T) {
		calls := 0
		defer store.SetBeforePlaceHook(func(top string) {
			calls++
			if calls == 1 {
				// Another writer's tree lands first.
				if err := d.Put(ctx, "mod/example.com/b/@v/v1.0.0.info", strings.NewReader("{}")); err != nil {
					t.Errorf("other put: %v", err)
				}
			}
		})()
		if err := d.Put(ctx, "mod/example.com/b/@v/v1.0.0.mod", strings.NewReader("module b\n")); err != nil {
			t.Fatal(err)
		}
		var keys []string
		d.List(ctx, "mod/example.com/b/", func(k string) error { keys = append(keys, k); return nil })
		want := []string{"mod/example.com/b/@v/v1.0.0.info", "mod/example.com/b/@v/v1.0.0.mod"}
		if !slices.Equal(keys, want) {
			t.Errorf("keys %q, want %q", keys, want)
		}
	})
	entries, _ := os.ReadDir(filepath.Join(root, ".tmp"))
	for _, e := range entries {
		t.Errorf("left in the staging directory: %s", e.Name())
	}
}
