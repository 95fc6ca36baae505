package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/modgate/modgate/internal/store"
)

// TestDiskPutRemovedDirectories: a Put succeeds while another process
// removes the directories it finds empty (retention does, after removing
// a module's last version), whichever moment they go.
func TestDiskPutRemovedDirectories(t *testing.T) {
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{"mod/example.com/m/@v", "mod/example.com/m", "mod/example.com"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
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
	defer func() { close(stop); wg.Wait() }()
	for i := range 100 {
		key := fmt.Sprintf("mod/example.com/m/@v/v1.0.%d.mod", i)
		if err := d.Put(t.Context(), key, strings.NewReader("module example.com/m\n")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if err := d.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
}
