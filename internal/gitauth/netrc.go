package gitauth

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// NetrcEntry is one complete "machine" entry of a .netrc file.
type NetrcEntry struct {
	Machine  string
	Login    string
	Password string
}

// ParseNetrc returns the complete machine entries of a .netrc file, in
// file order, read the way the go command reads one, so that a file that
// works for `go mod download` works for modgate:
//
//   - keywords and their values come in pairs on one line; an entry may
//     spread over several lines, and a "machine" starts a new one;
//   - an entry counts once it has a machine, a login and a password;
//   - "macdef" skips the lines after it up to the first empty line;
//   - a lone "default" at the end of a line ends the file: the default
//     entry, which would hand a password to every host, is never used;
//   - anything else ("account", unknown words) is passed over.
//
// It never fails: what it does not understand, it skips.
func ParseNetrc(data string) []NetrcEntry {
	var (
		entries []NetrcEntry
		cur     NetrcEntry
		inMacro bool
	)
	for line := range strings.SplitSeq(data, "\n") {
		if inMacro {
			// A macro body ends at an empty line; the go command means
			// an empty one, not one of spaces, nor a lone "\r".
			inMacro = line != ""
			continue
		}
		words := strings.Fields(line)
		for len(words) >= 2 {
			keyword, value := words[0], words[1]
			words = words[2:]
			switch keyword {
			case "machine":
				cur = NetrcEntry{Machine: value}
			case "login":
				cur.Login = value
			case "password":
				cur.Password = value
			case "macdef":
				// The macro's body starts on the next line; the rest of
				// this one is still read.
				inMacro = true
			}
			if cur.Machine != "" && cur.Login != "" && cur.Password != "" {
				entries = append(entries, cur)
				cur = NetrcEntry{}
			}
		}
		if len(words) == 1 && words[0] == "default" {
			break
		}
	}
	return entries
}

// DefaultNetrc returns the .netrc file the go command would read: $NETRC
// when set, else .netrc in the home directory (_netrc on Windows when that
// exists), else "" when there is no home directory.
func DefaultNetrc() string {
	if env := os.Getenv("NETRC"); env != "" {
		return env
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	if runtime.GOOS == "windows" {
		legacy := filepath.Join(home, "_netrc")
		if _, err := os.Stat(legacy); err == nil {
			return legacy
		}
	}
	return filepath.Join(home, ".netrc")
}

// maxNetrcSize bounds what is read of a .netrc file: a real one is a few
// hundred bytes; a path pointing at something else must not fill memory.
const maxNetrcSize = 1 << 20

// readNetrc reads and parses the netrc file at path. It also returns a
// warning (or "") about who else may read the file.
func readNetrc(path string) ([]NetrcEntry, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, "", err
	}
	if !info.Mode().IsRegular() {
		return nil, "", fmt.Errorf("netrc file %s is not a regular file", path)
	}
	// The size is checked on what is read, not on Stat: the file may grow
	// in between.
	data, err := io.ReadAll(io.LimitReader(f, maxNetrcSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading netrc file %s: %w", path, err)
	}
	if len(data) > maxNetrcSize {
		return nil, "", fmt.Errorf("netrc file %s is larger than %d bytes", path, maxNetrcSize)
	}
	return ParseNetrc(string(data)), NetrcPermissionWarning(path, info), nil
}

// NetrcPermissionWarning returns a warning for the log when a netrc file
// (or anything holding passwords) may be read or written by users other
// than its owner, and "" when it may not or when the platform has no such
// permission bits.
func NetrcPermissionWarning(path string, info fs.FileInfo) string {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		return ""
	}
	// Group read is allowed: a Kubernetes Secret is mounted 0440 for the
	// pod's fsGroup, and a service group may be meant to read it.
	perm := info.Mode().Perm()
	if perm&0o027 == 0 {
		return ""
	}
	return fmt.Sprintf("netrc file %s holds passwords but its mode is %#o, so other users may read or change it; restrict it with chmod 600 (or 640)", path, perm)
}
