//go:build unix && !aix

package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/store/storetest"
	"github.com/modgate/modgate/internal/testenv"
)

// Conditional puts exclude each other across processes sharing the data
// dir. Two Disks over one directory in this process stand for two
// processes (flock locks belong to open files, not to processes); the
// helper processes of staging_test.go are the real thing.

// TestDiskPutIfTwoDisks: racers split between two Disks over the same
// directory, all replacing the same object, and a counter incremented
// through both.
func TestDiskPutIfTwoDisks(t *testing.T) {
	root := t.TempDir()
	disks := []*store.Disk{newDisk(t, root), newDisk(t, root)}
	ctx := t.Context()
	const key = "sumdb/db.example/latest"
	const racers = 8
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		etag := store.IfAbsent
		if round > 0 {
			info, err := disks[round%2].Stat(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			etag = info.ETag
		}
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				content := fmt.Sprintf("round %d racer %d", round, i)
				errs[i] = disks[i%2].PutIf(ctx, key, strings.NewReader(content), etag)
			})
		}
		close(start)
		wg.Wait()
		t.Logf("round %d", round)
		winner := testenv.SoleWinner(t, errs, store.ErrPreconditionFailed)
		want := fmt.Sprintf("round %d racer %d", round, winner)
		for _, d := range disks {
			if got := readKey(t, d, key); got != want {
				t.Errorf("round %d: %q, want the winner's %q", round, got, want)
			}
		}
	}

	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 10 {
				if err := storetest.Increment(ctx, disks[i%2], "counter"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := readKey(t, disks[0], "counter"); got != "40" {
		t.Errorf("counter = %s, want 40: updates were lost", got)
	}
	for _, d := range disks {
		if names := stagingFiles(t, d); len(names) > 0 {
			t.Errorf("staging after the conditional puts = %q, want empty", names)
		}
	}
}

// TestDiskPutIfTwoProcesses: this process and a helper process increment
// one counter at the same time; no increment is lost.
func TestDiskPutIfTwoProcesses(t *testing.T) {
	root := t.TempDir()
	d := newDisk(t, root)
	helper, stdin, line := startHelper(t, "count", root)
	if line != "ready" {
		t.Fatalf("helper said %q", line)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	const mine = 40
	for range mine {
		if err := storetest.Increment(t.Context(), d, helperKey); err != nil {
			t.Fatal(err)
		}
	}
	if err := helper.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	want := strconv.Itoa(mine + helperIncrements)
	if got := readKey(t, d, helperKey); got != want {
		t.Errorf("counter = %s, want %s: updates were lost", got, want)
	}
	if names := stagingFiles(t, d); len(names) > 0 {
		t.Errorf("staging = %q, want empty", names)
	}
}

// onWaitCtx is a context that calls onWait the first time something waits
// for it (calls Done). A conditional put given it calls onWait when it
// starts waiting for the key's lock: tests act at that moment, without
// timing anything.
type onWaitCtx struct {
	context.Context
	once   sync.Once
	onWait func()
}

func (c *onWaitCtx) Done() <-chan struct{} {
	c.once.Do(c.onWait)
	return c.Context.Done()
}

// cancelOnWait returns a context that is cancelled as soon as something
// waits for it.
func cancelOnWait(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(parent)
	return &onWaitCtx{Context: ctx, onWait: cancel}
}

// TestDiskPutIfLockDiesWithProcess: a process killed in the middle of a
// conditional put, holding its key's lock, blocks that key's conditional
// puts while it lives (they wait, and give up with their context), and not
// after: the kernel releases its lock, and the next put takes over and
// removes the lock file it left.
func TestDiskPutIfLockDiesWithProcess(t *testing.T) {
	root := t.TempDir()
	d := newDisk(t, root)
	ctx := t.Context()
	if err := d.Put(ctx, helperKey, strings.NewReader("tree 1\n")); err != nil {
		t.Fatal(err)
	}
	old, err := d.Stat(ctx, helperKey)
	if err != nil {
		t.Fatal(err)
	}
	helper, _, line := startHelper(t, "lock", root)
	if line != "locked" {
		t.Fatalf("helper said %q", line)
	}
	if locked, err := store.KeyLocked(d, helperKey); err != nil || !locked {
		t.Fatalf("KeyLocked while the helper holds it = %v, %v", locked, err)
	}
	// A clean leaves a held lock file alone.
	if n, _, err := d.CleanStaging(ctx); err != nil || n != 0 {
		t.Errorf("CleanStaging removed %d files (%v) while the lock is held", n, err)
	}
	// Other keys are not blocked.
	if err := d.PutIf(ctx, "other", strings.NewReader("x"), store.IfAbsent); err != nil {
		t.Errorf("PutIf of another key: %v", err)
	}
	err = d.PutIf(cancelOnWait(ctx), helperKey, strings.NewReader("tree 2\n"), old.ETag)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("PutIf while another process holds the lock = %v, want it to wait (and give up)", err)
	}
	if got := readKey(t, d, helperKey); got != "tree 1\n" {
		t.Errorf("object after the abandoned PutIf: %q", got)
	}

	if err := helper.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	helper.Wait()
	lockName := filepath.Base(store.LockFile(d, helperKey))
	if names := stagingFiles(t, d); len(names) != 1 || names[0] != lockName {
		t.Fatalf("staging after the kill = %q, want the lock file %s", names, lockName)
	}
	if locked, err := store.KeyLocked(d, helperKey); err != nil || locked {
		t.Fatalf("KeyLocked after the holder died = %v, %v", locked, err)
	}
	if err := d.PutIf(ctx, helperKey, strings.NewReader("tree 2\n"), old.ETag); err != nil {
		t.Fatalf("PutIf after the holder died: %v", err)
	}
	if got := readKey(t, d, helperKey); got != "tree 2\n" {
		t.Errorf("object = %q, want tree 2", got)
	}
	if names := stagingFiles(t, d); len(names) > 0 {
		t.Errorf("staging after the next PutIf = %q, want empty", names)
	}
}

// TestDiskCleanStagingLockFiles: the lock file a dead holder left goes with
// the periodic clean once it is no longer new (it is empty), and a put
// waiting for a lock file that its holder removes takes a new one.
func TestDiskCleanStagingLockFiles(t *testing.T) {
	root := t.TempDir()
	d := newDisk(t, root)
	ctx := t.Context()
	const key = "sumdb/db.example/latest"
	lock := store.LockFile(d, key)
	if err := os.WriteFile(lock, nil, 0o600); err != nil { // as a dead holder leaves it
		t.Fatal(err)
	}
	if n, _, err := d.CleanStaging(ctx); err != nil || n != 0 {
		t.Errorf("CleanStaging removed a new lock file: %d, %v", n, err)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	if n, _, err := d.CleanStaging(ctx); err != nil || n != 1 {
		t.Errorf("CleanStaging of an old unlocked lock file = %d, %v; want 1", n, err)
	}

	// A holder releases the lock, removing its file, while a put waits
	// for the lock of that file: the put notices that its file lost the
	// name, and locks a new one.
	unlock, err := store.LockKey(ctx, d, key)
	if err != nil {
		t.Fatal(err)
	}
	released := &onWaitCtx{Context: ctx, onWait: unlock}
	if err := d.PutIf(released, key, strings.NewReader("x"), store.IfAbsent); err != nil {
		t.Fatalf("PutIf after the holder released: %v", err)
	}
	if got := readKey(t, d, key); got != "x" {
		t.Errorf("object = %q", got)
	}
	if locked, err := store.KeyLocked(d, key); err != nil || locked {
		t.Errorf("KeyLocked after the puts = %v, %v", locked, err)
	}
	if names := stagingFiles(t, d); len(names) > 0 {
		t.Errorf("staging = %q, want empty", names)
	}
}

// BenchmarkDiskPutIf measures one compare-and-swap of a small document
// (a signed tree head is about 200 bytes): a Stat for the ETag, then
// PutIf. "Put" is the plain Put of the same document, for comparison;
// "lock" the key's lock alone; "contended" four goroutines over two Disks
// incrementing one counter (ns/op per successful swap, retries included).
func BenchmarkDiskPutIf(b *testing.B) {
	doc := bytes.Repeat([]byte("x"), 200)
	const key = "sumdb/db.example/latest"
	b.Run("Put", func(b *testing.B) {
		d := newDisk(b, b.TempDir())
		b.ReportAllocs()
		for b.Loop() {
			if err := d.Put(b.Context(), key, bytes.NewReader(doc)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncontended", func(b *testing.B) {
		d := newDisk(b, b.TempDir())
		if err := d.Put(b.Context(), key, bytes.NewReader(doc)); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			info, err := d.Stat(b.Context(), key)
			if err != nil {
				b.Fatal(err)
			}
			if err := d.PutIf(b.Context(), key, bytes.NewReader(doc), info.ETag); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lock", func(b *testing.B) {
		// The lock alone, taken and released: what PutIf adds to a Put
		// besides the comparison's stat.
		d := newDisk(b, b.TempDir())
		b.ReportAllocs()
		for b.Loop() {
			unlock, err := store.LockKey(b.Context(), d, key)
			if err != nil {
				b.Fatal(err)
			}
			unlock()
		}
	})
	b.Run("contended", func(b *testing.B) {
		root := b.TempDir()
		disks := []*store.Disk{newDisk(b, root), newDisk(b, root)}
		b.ReportAllocs()
		var wg sync.WaitGroup
		var mu sync.Mutex
		left := b.N
		for i := range 4 {
			wg.Go(func() {
				for {
					mu.Lock()
					if left == 0 {
						mu.Unlock()
						return
					}
					left--
					mu.Unlock()
					if err := storetest.Increment(b.Context(), disks[i%2], "counter"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if got := readKey(b, disks[0], "counter"); got != strconv.Itoa(b.N) {
			b.Errorf("counter = %s, want %d", got, b.N)
		}
	})
}
