//go:build unix && !aix

package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/store/storetest"
)

// The crash tests run the test binary again as a helper process that writes
// to a Disk and is then killed or left hanging: real processes, real locks.
const (
	helperEnv     = "MODGATE_STORE_TEST_HELPER"
	helperRootEnv = "MODGATE_STORE_TEST_ROOT"
	// helperChunk is what the "put" helper writes before it stalls.
	helperChunk = 1 << 20
	// helperKey is the key the "lock" and "count" helpers use.
	helperKey = "sumdb/db.example/latest"
	// helperIncrements is how many increments the "count" helper makes.
	helperIncrements = 40
)

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role, os.Getenv(helperRootEnv)))
	}
	os.Exit(m.Run())
}

// runHelper is the helper process. It reports on stdout when it is in the
// middle of its write, then waits to be killed (or for stdin to close).
func runHelper(role, root string) int {
	d, err := store.NewDisk(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch role {
	case "hold":
		// A fetch in progress: a CreateTemp file, written and still open.
		f, err := d.CreateTemp("fetch-*.zip")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if _, err := f.WriteString("PK\x03\x04 half a zip"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println(filepath.Base(f.Name()))
		io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
		return 0                      // exit without closing or removing f
	case "put":
		// A Put in progress: the reader hands over one chunk, then
		// announces that the chunk is in the staging file and stalls.
		r := &stallingReader{chunk: helperChunk}
		err := d.Put(context.Background(), "mod/example.com/m/@v/v1.0.0.zip", r)
		fmt.Fprintln(os.Stderr, "Put returned:", err)
		return 2
	case "lock":
		// A conditional put between its comparison and its rename: it
		// holds the key's lock until killed.
		if _, err := store.LockKey(context.Background(), d, helperKey); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin) // blocks until killed
		return 2
	case "count":
		// Another modgate advancing a shared document: helperIncrements
		// compare-and-swap increments of a counter, started on "go".
		fmt.Println("ready")
		if line, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil || line != "go\n" {
			fmt.Fprintln(os.Stderr, "no go:", line, err)
			return 2
		}
		for range helperIncrements {
			if err := storetest.Increment(context.Background(), d, helperKey); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
		}
		return 0
	}
	return 2
}

type stallingReader struct{ chunk int }

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.chunk == 0 {
		// Put calls Read again only after writing what it has.
		fmt.Println("writing")
		io.Copy(io.Discard, os.Stdin) // blocks until killed
		return 0, errors.New("stdin closed")
	}
	n := min(len(p), r.chunk)
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.chunk -= n
	return n, nil
}

// startHelper starts the helper process and returns it with the first line
// it printed.
func startHelper(t *testing.T, role, root string) (*exec.Cmd, io.WriteCloser, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, helperRootEnv+"="+root)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper %s: %v", role, err)
	}
	return cmd, stdin, strings.TrimSpace(line)
}

// writeLeftover creates an unlocked file in the staging directory, as a
// process killed mid-write leaves it, modified age ago.
func writeLeftover(t *testing.T, root, name string, age time.Duration) {
	t.Helper()
	p := filepath.Join(root, store.StagingDir, name)
	if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-age)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

func TestDiskStagingCleanup(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, store.StagingDir), 0o755); err != nil {
		t.Fatal(err)
	}
	// Unlocked leftovers go at start, however young.
	writeLeftover(t, root, "put-stale", 2*store.StaleTempAge)
	writeLeftover(t, root, "put-fresh", 0)
	writeLeftover(t, root, "fetch-1.zip", time.Second)
	d := newDisk(t, root)
	if names := stagingFiles(t, d); len(names) > 0 {
		t.Errorf("staging after NewDisk = %q, want empty", names)
	}
	// And when asked, with a count.
	writeLeftover(t, root, "put-1", 0)
	writeLeftover(t, root, "put-2", time.Minute)
	n, size, err := d.CleanStaging(t.Context())
	if err != nil || n != 2 || size != 2*int64(len("partial")) {
		t.Errorf("CleanStaging = %d, %d, %v; want 2 files of 7 bytes", n, size, err)
	}
	if names := stagingFiles(t, d); len(names) > 0 {
		t.Errorf("staging after CleanStaging = %q, want empty", names)
	}
	// An empty new file may be a writer's between creation and lock: it
	// stays until it is a minute old.
	empty := filepath.Join(root, store.StagingDir, "put-empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, _, err := d.CleanStaging(t.Context()); err != nil || n != 0 {
		t.Errorf("CleanStaging removed a new empty file: %d, %v", n, err)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(empty, old, old); err != nil {
		t.Fatal(err)
	}
	if n, _, err := d.CleanStaging(t.Context()); err != nil || n != 1 {
		t.Errorf("CleanStaging of an old empty file = %d, %v; want 1", n, err)
	}
}

// TestDiskCleanStagingSparesLockedFiles: another process sharing the data
// directory (a rolling restart) has a fetch in progress; a new Disk on the
// same directory and its periodic clean remove every unlocked leftover, of
// any age, and leave that one alone. Once the process is gone, its file is
// a leftover too.
func TestDiskCleanStagingSparesLockedFiles(t *testing.T) {
	root := t.TempDir()
	helper, stdin, held := startHelper(t, "hold", root)
	writeLeftover(t, root, "put-old", 2*store.StaleTempAge)
	writeLeftover(t, root, "put-new", 0)

	d := newDisk(t, root) // cleans at start
	if names := stagingFiles(t, d); !slices.Equal(names, []string{held}) {
		t.Fatalf("staging after NewDisk = %q, want only the helper's %q", names, held)
	}
	writeLeftover(t, root, "fetch-9.zip", 0)
	if n, _, err := d.CleanStaging(t.Context()); err != nil || n != 1 {
		t.Errorf("CleanStaging = %d, %v; want 1 removed", n, err)
	}
	if names := stagingFiles(t, d); !slices.Equal(names, []string{held}) {
		t.Fatalf("staging after CleanStaging = %q, want only the helper's %q", names, held)
	}

	// The helper exits without cleaning up: its lock dies with it.
	stdin.Close()
	if err := helper.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if names := stagingFiles(t, d); !slices.Equal(names, []string{held}) {
		t.Fatalf("staging after the helper exited = %q, want its %q", names, held)
	}
	n, size, err := d.CleanStaging(t.Context())
	if err != nil || n != 1 || size != int64(len("PK\x03\x04 half a zip")) {
		t.Errorf("CleanStaging after the helper exited = %d, %d, %v; want its file", n, size, err)
	}
	if names := stagingFiles(t, d); len(names) > 0 {
		t.Errorf("staging = %q, want empty", names)
	}
}

// TestDiskCleanStagingAfterKill: a process killed with SIGKILL in the
// middle of a Put leaves its partial file; the next clean removes it,
// whether periodic (CleanStaging) or at the next start (NewDisk). While the
// process lives, its file is not touched.
func TestDiskCleanStagingAfterKill(t *testing.T) {
	for _, next := range []string{"CleanStaging", "NewDisk"} {
		t.Run(next, func(t *testing.T) {
			root := t.TempDir()
			d := newDisk(t, root)
			helper, _, line := startHelper(t, "put", root)
			if line != "writing" {
				t.Fatalf("helper said %q", line)
			}
			partial := stagingFiles(t, d)
			if len(partial) != 1 || !strings.HasPrefix(partial[0], "put-") {
				t.Fatalf("staging during the Put = %q, want one put- file", partial)
			}
			if n, _, err := d.CleanStaging(t.Context()); err != nil || n != 0 {
				t.Fatalf("CleanStaging during the Put removed %d files (%v)", n, err)
			}

			if err := helper.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			if err := helper.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("helper ended with %v, want killed", err)
			}
			if names := stagingFiles(t, d); !slices.Equal(names, partial) {
				t.Fatalf("staging after the kill = %q, want the partial %q", names, partial)
			}

			switch next {
			case "CleanStaging":
				n, size, err := d.CleanStaging(t.Context())
				if err != nil || n != 1 || size != helperChunk {
					t.Errorf("CleanStaging = %d, %d, %v; want 1 file of %d bytes", n, size, err, helperChunk)
				}
			case "NewDisk":
				d = newDisk(t, root)
			}
			if names := stagingFiles(t, d); len(names) > 0 {
				t.Errorf("staging after %s = %q, want empty", next, names)
			}
			if _, err := d.Stat(t.Context(), "mod/example.com/m/@v/v1.0.0.zip"); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("the killed Put's object: %v, want ErrNotExist", err)
			}
		})
	}
}

// TestDiskCreateTemp covers what the compliance suite's FilePutter tests
// cannot know about the disk store: the CreateTemp file is in the staging
// directory, locked against CleanStaging while open, and is a leftover once
// closed without PutFile.
func TestDiskCreateTemp(t *testing.T) {
	d := newDisk(t, t.TempDir())
	ctx := t.Context()
	var fp store.FilePutter = d

	f, err := fp.CreateTemp("fetch-*.zip")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if filepath.Dir(f.Name()) != fp.StagingDir() || !strings.HasPrefix(filepath.Base(f.Name()), "fetch-") || !strings.HasSuffix(f.Name(), ".zip") {
		t.Errorf("CreateTemp made %q, want fetch-*.zip in %s", f.Name(), fp.StagingDir())
	}
	if _, err := f.WriteString("zip content"); err != nil {
		t.Fatal(err)
	}
	// Open, so locked: a clean in this same process leaves it alone too.
	if n, _, err := d.CleanStaging(ctx); err != nil || n != 0 {
		t.Fatalf("CleanStaging removed %d open files (%v)", n, err)
	}
	if err := fp.PutFile(ctx, "mod/example.com/m/@v/v1.0.0.zip", f.Name()); err != nil {
		t.Fatal(err)
	}
	if got := readKey(t, d, "mod/example.com/m/@v/v1.0.0.zip"); got != "zip content" {
		t.Errorf("stored %q", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if names := stagingFiles(t, d); len(names) > 0 {
		t.Errorf("staging after PutFile = %q", names)
	}

	// Closed without PutFile (a fetch that gave up without removing it):
	// a leftover.
	g, err := fp.CreateTemp("fetch-*.zip")
	if err != nil {
		t.Fatal(err)
	}
	g.WriteString("half a zip")
	g.Close()
	if n, _, err := d.CleanStaging(ctx); err != nil || n != 1 {
		t.Errorf("CleanStaging of a closed staging file = %d, %v; want 1", n, err)
	}

	if _, err := fp.CreateTemp("../escape-*"); err == nil {
		t.Error("CreateTemp accepted a pattern with a path separator")
	}
}

// TestDiskCleanStagingDuringWrites: a clean running all the time never
// makes a write fail, including the ones whose staging file it sees
// between creation and locking.
func TestDiskCleanStagingDuringWrites(t *testing.T) {
	d := newDisk(t, t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cleaned := make(chan int)
	go func() {
		total := 0
		for ctx.Err() == nil {
			n, _, err := d.CleanStaging(ctx)
			if err != nil && ctx.Err() == nil {
				t.Errorf("CleanStaging: %v", err)
			}
			total += n
		}
		cleaned <- total
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				key := fmt.Sprintf("meta/example.com/w%d/@/list", w)
				if err := d.Put(ctx, key, strings.NewReader(fmt.Sprint(i))); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				f, err := d.CreateTemp("fetch-*.zip")
				if err != nil {
					t.Errorf("CreateTemp: %v", err)
					return
				}
				f.WriteString("zip")
				if err := d.PutFile(ctx, fmt.Sprintf("mod/example.com/w%d/@v/v1.0.%d.zip", w, i), f.Name()); err != nil {
					t.Errorf("PutFile: %v", err)
				}
				f.Close()
				if err := d.Ping(ctx); err != nil {
					t.Errorf("Ping: %v", err)
				}
			}
		})
	}
	wg.Wait()
	cancel()
	if n := <-cleaned; n != 0 {
		t.Errorf("CleanStaging removed %d files of writes in progress", n)
	}
}
