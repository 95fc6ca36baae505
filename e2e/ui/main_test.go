// Package ui checks modgate's web UI (/ui/) in headless Chromium, driven
// over the DevTools protocol (chromedp): the real modgate binary, real
// downloads by the real go command first, then every page at a phone's
// and a laptop's width, with screenshots kept as test artifacts in
// $TEST_ARTIFACTS_DIR/ui/ (default <repo>/test-output/ui/).
//
// Chromium is Debian's (.ci/run installs it): without it the tests skip,
// and fail under CI=true.
package ui

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
