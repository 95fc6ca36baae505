// Package sumdbe2e tests modgate's checksum database support end to end:
// the real modgate binary and the real go command, against in-process
// checksum databases over fixture modules (offline), and against the
// machine's real module proxy with the go command's default checksum
// database (skipped without one, failed when CI=true).
package sumdbe2e

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
