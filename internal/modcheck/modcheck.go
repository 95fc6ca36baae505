// Package modcheck decides whether module files are what they claim to be,
// before anything is stored: a .info names the version that was asked for,
// a go.mod parses and has a module line, a zip passes the go command's own
// checks (zip.go). It also computes the h1: hashes that go.sum and the
// checksum database record.
package modcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
)

// Info is the JSON document served at @v/V.info and @latest.
type Info struct {
	Version string
	Time    time.Time
}

// ParseInfo parses a .info document and checks that it names a canonical
// version valid for path. want, if not empty, is the version that was asked
// for; a canonical request must be answered with exactly that version.
func ParseInfo(data []byte, path, want string) (Info, error) {
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return Info{}, fmt.Errorf("malformed .info JSON: %v", err)
	}
	if info.Version == "" {
		return Info{}, fmt.Errorf(".info has no Version")
	}
	if module.CanonicalVersion(info.Version) != info.Version {
		return Info{}, fmt.Errorf(".info names non-canonical version %q", info.Version)
	}
	if err := module.Check(path, info.Version); err != nil {
		return Info{}, fmt.Errorf(".info names a version invalid for the path: %v", err)
	}
	if want != "" && info.Version != want {
		return Info{}, fmt.Errorf(".info names version %s, but %s was requested", info.Version, want)
	}
	return info, nil
}

// CheckGoMod checks that a go.mod parses and has a module line.
//
// The declared path is deliberately not required to equal path: forks used
// through replace directives and renamed repositories (the go command only
// complains about those when it loads a build list) legitimately serve a
// go.mod naming another module, and a proxy must serve them byte for byte.
// Tampering is caught by the checksum database instead.
func CheckGoMod(data []byte, path, version string) error {
	f, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		return fmt.Errorf("go.mod does not parse: %v", err)
	}
	if f.Module == nil {
		return fmt.Errorf("go.mod has no module line")
	}
	return nil
}

// HashGoMod returns the h1: hash of a go.mod as go.sum records it.
func HashGoMod(data []byte) (string, error) {
	return dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}
