// Package e2e drives the real modgate binary and the real go command
// against a local fixture upstream. Everything is offline and deterministic.
package e2e

import (
	"os"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinary()
	os.Exit(code)
}
