package testenv

import (
	"errors"
	"testing"
)

// TestRetryOnTakenPort: a start whose port was taken is tried again, up to
// five ports; any other failure ends it at once.
func TestRetryOnTakenPort(t *testing.T) {
	taken := PortTaken("listen tcp 127.0.0.1:4000: bind: Address already in use", errors.New("exited"))
	if !errors.Is(taken, ErrPortTaken) {
		t.Fatalf("PortTaken did not mark %v", taken)
	}
	if err := PortTaken("permission denied", errors.New("exited")); errors.Is(err, ErrPortTaken) {
		t.Fatalf("PortTaken marked %v", err)
	}

	calls := 0
	err := RetryOnTakenPort(func() error {
		if calls++; calls < 3 {
			return taken
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("two taken ports then a start: %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	if err := RetryOnTakenPort(func() error { calls++; return taken }); !errors.Is(err, ErrPortTaken) || calls != portAttempts {
		t.Errorf("every port taken: %v after %d calls, want ErrPortTaken after %d", err, calls, portAttempts)
	}
	calls = 0
	other := errors.New("no such file")
	if err := RetryOnTakenPort(func() error { calls++; return other }); err != other || calls != 1 {
		t.Errorf("another failure: %v after %d calls, want it after 1", err, calls)
	}
}
