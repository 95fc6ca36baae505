package testenv

import (
	"errors"
	"testing"
)

// SoleWinner checks the outcome of racers that each tried one conditional
// write: exactly one succeeded and every other failed with lost (its
// precondition). It returns the winner's index, failing the test now when
// there is none.
func SoleWinner(t testing.TB, errs []error, lost error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("racers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, lost):
			t.Errorf("racer %d: %v, want success or %v", i, err, lost)
		}
	}
	if winner < 0 {
		t.Fatalf("no racer won (want one; the others fail with %v)", lost)
	}
	return winner
}
