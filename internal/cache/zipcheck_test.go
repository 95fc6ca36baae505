package cache

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/protocol"
)

// A downloaded zip that fails the checks blames the origin (InvalidError,
// shown to clients); one that could not be read is modgate's own failure,
// whose error names a server file and must not reach clients that way.
func TestZipCheckError(t *testing.T) {
	bad := errors.New("invalid module zip: zip: not a valid zip file")
	var inv *protocol.InvalidError
	if err := zipCheckError("proxy.example", "m@v1.0.0 .zip", bad); !errors.As(err, &inv) {
		t.Errorf("invalid zip: %v, want an InvalidError", err)
	}
	local := &fs.PathError{Op: "open", Path: "/srv/modgate/.staging/fetch-1.zip", Err: errors.New("too many open files")}
	err := zipCheckError("proxy.example", "m@v1.0.0 .zip", local)
	if errors.As(err, &inv) {
		t.Errorf("unreadable scratch file: %v, an InvalidError", err)
	}
	if !strings.Contains(err.Error(), local.Path) {
		t.Errorf("unreadable scratch file: %v lost its cause for the log", err)
	}
}
