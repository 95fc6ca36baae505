package testenv

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// Servers that take their port as a flag or in a configuration file
// (versitygw, sshd, redis-server) are given one that was free a moment
// ago; another process may take it before the server binds it. Their
// fixtures start them with RetryOnTakenPort, marking such a start with
// ErrPortTaken (see PortTaken).

// ErrPortTaken marks a server start that failed because another process
// had its port.
var ErrPortTaken = errors.New("the port was taken")

// portAttempts bounds how many ports RetryOnTakenPort tries.
const portAttempts = 5

// FreePort returns a port of 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PortTaken returns err marked with ErrPortTaken when the server's output
// says its address was in use, and err as it is otherwise.
func PortTaken(output string, err error) error {
	if strings.Contains(strings.ToLower(output), "address already in use") {
		return fmt.Errorf("%w: %v", ErrPortTaken, err)
	}
	return err
}

// RetryOnTakenPort calls start, which picks a new port each time, until
// it succeeds, fails for another reason than ErrPortTaken, or has tried
// five ports; it returns the last error.
func RetryOnTakenPort(start func() error) error {
	for attempt := 1; ; attempt++ {
		err := start()
		if err == nil || !errors.Is(err, ErrPortTaken) || attempt == portAttempts {
			return err
		}
	}
}
