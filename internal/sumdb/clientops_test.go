package sumdb

import (
	"fmt"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb"

	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// sharedStorageVerifiers returns two verifiers, each over its own Disk of
// one directory: two modgate processes sharing their storage.
func sharedStorageVerifiers(t *testing.T) [2]*Verifier {
	t.Helper()
	_, vkey := testKeys(t)
	root := t.TempDir()
	var vs [2]*Verifier
	for i := range vs {
		d, err := store.NewDisk(root)
		if err != nil {
			t.Fatal(err)
		}
		vs[i] = NewVerifier(Config{DB: DB{Name: testDBName, Key: vkey}, Store: d, Logger: testLogger(t)})
		t.Cleanup(func() { vs[i].Close() })
	}
	return vs
}

// TestWriteConfigConflicts: a lookup's WriteConfig replaces the tree head
// it read, and only that one: when another lookup, of another process
// sharing the storage, moved it since, it is a write conflict.
func TestWriteConfigConflicts(t *testing.T) {
	vs := sharedStorageVerifiers(t)
	ctx := t.Context()
	file := vs[0].state.latestFile()
	a := newLookupOps(ctx, vs[0], "a")
	b := newLookupOps(ctx, vs[1], "b")

	readConfig := func(o *lookupOps) []byte {
		t.Helper()
		data, err := o.ReadConfig(file)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	stored := func() string {
		t.Helper()
		data, err := vs[0].state.latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}

	a0, b0 := readConfig(a), readConfig(b)
	if len(a0) != 0 || len(b0) != 0 {
		t.Fatalf("ReadConfig of fresh storage: %q, %q", a0, b0)
	}
	if err := b.WriteConfig(file, b0, []byte("head 1")); err != nil {
		t.Fatalf("first WriteConfig: %v", err)
	}
	if err := a.WriteConfig(file, a0, []byte("head 1'")); err != sumdb.ErrWriteConflict {
		t.Errorf("WriteConfig from a head moved by another process = %v, want ErrWriteConflict", err)
	}
	if got := stored(); got != "head 1" {
		t.Errorf("stored head = %q, want head 1", got)
	}
	// As the x/mod Client does on a conflict: read again, write again.
	a1 := readConfig(a)
	if err := a.WriteConfig(file, a1, []byte("head 2")); err != nil {
		t.Fatalf("WriteConfig after reading again: %v", err)
	}
	// b passes a head it did not read last: compared with storage.
	if err := b.WriteConfig(file, []byte("head 1"), []byte("head 2'")); err != sumdb.ErrWriteConflict {
		t.Errorf("WriteConfig from a replaced head = %v, want ErrWriteConflict", err)
	}
	if err := b.WriteConfig(file, []byte("head 2"), []byte("head 3")); err != nil {
		t.Errorf("WriteConfig from the stored head, not read by this lookup: %v", err)
	}
	if got := stored(); got != "head 3" {
		t.Errorf("stored head = %q, want head 3", got)
	}
}

// TestTreeHeadSwapRace: lookups of two processes that read the same tree
// head and race to move it forward: exactly one succeeds, through
// WriteConfig (the x/mod Client's lookups) as through swapLatest (advance).
func TestTreeHeadSwapRace(t *testing.T) {
	vs := sharedStorageVerifiers(t)
	ctx := t.Context()
	file := vs[0].state.latestFile()
	const racers = 8
	for round := range 6 {
		head, err := vs[0].state.latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ops := make([]*lookupOps, racers)
		for i := range ops {
			ops[i] = newLookupOps(ctx, vs[i%2], fmt.Sprint(i))
			if _, err := ops[i].ReadConfig(file); err != nil {
				t.Fatal(err)
			}
		}
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				next := fmt.Appendf(nil, "round %d racer %d", round, i)
				if round%2 == 0 {
					errs[i] = ops[i].WriteConfig(file, head, next)
				} else {
					errs[i] = vs[i%2].state.swapLatest(ctx, head, next)
				}
			})
		}
		close(start)
		wg.Wait()
		t.Logf("round %d: racers moving the tree head from %q", round, head)
		winner := testenv.SoleWinner(t, errs, sumdb.ErrWriteConflict)
		want := fmt.Sprintf("round %d racer %d", round, winner)
		for _, v := range vs {
			if got, _ := v.state.latest(ctx); string(got) != want {
				t.Errorf("round %d: stored head %q, want the winner's %q", round, got, want)
			}
		}
	}
}
