package coord

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestLocalLocksSweep: leases never released (their holders forgot) do not
// accumulate in the table.
func TestLocalLocksSweep(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := &LocalLocks{Now: func() time.Time { return now }}
	ctx := context.Background()
	const n = 1000
	for round := range 5 {
		for i := range n {
			if _, ok, err := l.TryLock(ctx, fmt.Sprint(round, "/", i), time.Second); err != nil || !ok {
				t.Fatalf("TryLock: %v, %v", ok, err)
			}
		}
		now = now.Add(2 * time.Second)
	}
	if len(l.held) > 3*n {
		t.Errorf("%d entries kept after %d leases expired", len(l.held), 5*n)
	}
}
